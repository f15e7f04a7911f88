"""The preview listener's app: `POST /preview`, what admission would do to the objects of a
body, written out in the preview worker process."""

from __future__ import annotations

import logging
import time
from typing import Final

from fastapi import FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response

from webhook import __version__
from webhook.core.model import Context
from webhook.core.names import Mode
from webhook.core.raw import label_pair
from webhook.offline.preview import FORMATS, NEWEST
from webhook.transport.http import (
    JSON_TYPES,
    PREVIEW,
    YAML_TYPES,
    RequestError,
    json_errors,
    read_body,
)
from webhook.transport.metrics import ERROR
from webhook.transport.preview_worker import PreviewFailed, PreviewRefused
from webhook.transport.state import AppState

log = logging.getLogger("multinode_webhook.app")

PREVIEW_DECISION: Final = "preview"
PREVIEW_MEDIA: Final = {
    "table": "text/plain; charset=utf-8",
    "json": "application/json",
    "yaml": "application/yaml",
    "patch": "application/jsonl",
    "diff": "text/x-diff",
    "manifest": "application/yaml",
}


def _labels(pairs: list[str]) -> dict[str, str] | None:
    if not pairs:
        return None
    try:
        return dict(label_pair(pair) for pair in pairs)
    except ValueError as error:
        raise RequestError(400, f"namespaceLabel: {error}") from None


def preview_app(state: AppState) -> FastAPI:
    options = state.settings.options()
    app = FastAPI(
        title="multinode-webhook",
        version=__version__,
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
    )
    json_errors(app, refused=state.refused)

    @app.exception_handler(RequestError)
    async def refused(_: Request, error: RequestError) -> Response:
        state.refused(PREVIEW, error)
        return JSONResponse({"error": str(error)}, status_code=error.status)

    @app.exception_handler(RequestValidationError)
    async def invalid(_: Request, error: RequestValidationError) -> Response:
        fields = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in error.errors())
        state.refused(PREVIEW, RequestError(400, fields))
        return JSONResponse({"error": fields}, status_code=400)

    @app.post(PREVIEW)
    async def preview(
        request: Request,
        *,
        namespace: str | None = None,
        namespace_label: list[str] = Query(default=[], alias="namespaceLabel"),  # noqa: B008
        mode: str = Mode.OPT_IN,
        format: str = "json",
        kserve_version: str = Query(default=NEWEST, alias="kserveVersion"),
    ) -> Response:
        started = time.perf_counter()
        if format not in FORMATS:
            raise RequestError(400, f"format must be one of {', '.join(FORMATS)}")
        if mode not in tuple(Mode):
            raise RequestError(400, f"mode must be one of {', '.join(Mode)}")
        body = await read_body(
            request.scope,
            request.receive,
            limit=state.settings.preview_body_limit,
            accept=JSON_TYPES + YAML_TYPES,
        )
        try:
            text = body.decode("utf-8")
        except UnicodeDecodeError:
            raise RequestError(400, "body is not UTF-8") from None
        context = Context(
            namespace=namespace, namespace_labels=_labels(namespace_label), mode=Mode(mode)
        )
        try:
            text = await state.previews.preview(
                text, context=context, options=options, fmt=format, kserve_version=kserve_version
            )
        except PreviewRefused as refused:
            raise RequestError(refused.status, str(refused)) from None
        except PreviewFailed as failed:
            # As admission answers its own faults: one line in the log, the kind to the client.
            log.error("preview failed", extra={"fields": {"error": str(failed)}})
            seconds = time.perf_counter() - started
            state.metrics.review(PREVIEW, ERROR, seconds=seconds, size=len(body))
            message = f"multinode-webhook internal error: {failed.kind}"
            return JSONResponse({"error": message}, status_code=500)
        # One count per request, however many objects it held.
        seconds = time.perf_counter() - started
        state.metrics.review(PREVIEW, PREVIEW_DECISION, seconds=seconds, size=len(body))
        return Response(text, media_type=PREVIEW_MEDIA[format])

    return app
