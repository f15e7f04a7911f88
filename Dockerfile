# syntax=docker/dockerfile:1
# multinode-webhook: the admission server and its CLI, as a non-root image with no build tools.

ARG PYTHON_IMAGE=python:3.11.14-slim-bookworm

FROM ${PYTHON_IMAGE} AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1
WORKDIR /src
RUN python -m venv /opt/multinode-webhook
COPY pyproject.toml README.md ./
COPY webhook ./webhook
RUN /opt/multinode-webhook/bin/pip install --no-cache-dir . \
    && /opt/multinode-webhook/bin/multinode-webhook --version

FROM ${PYTHON_IMAGE}
ARG VERSION=0.1.0
LABEL org.opencontainers.image.title="multinode-webhook" \
      org.opencontainers.image.description="Mutating admission webhook that makes InferenceService args reach KServe multi-node predictors" \
      org.opencontainers.image.version="${VERSION}"
ENV PATH=/opt/multinode-webhook/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1
COPY --from=build /opt/multinode-webhook /opt/multinode-webhook
USER 65532:65532
EXPOSE 8443 8444 8080
ENTRYPOINT ["multinode-webhook"]
CMD ["serve"]
