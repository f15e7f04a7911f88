"""The HTTP surface: the HTTPS admission app and the plain-HTTP operations app.

`/mutate` and `/mutate/shadow` are served by a small ASGI handler in front of FastAPI: they
are on the path of every pod creation, and FastAPI's request machinery would cost about half
of their throughput. `/preview`, `/healthz`, `/readyz` and `/metrics` are ordinary FastAPI
routes. Every route calls the same core as the CLI.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Final

import orjson
from fastapi import FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.types import Receive, Scope, Send

from webhook import __version__, admission, documents, keys
from webhook.certs import CertificateReloader
from webhook.config import Settings
from webhook.logs import ReviewLog
from webhook.metrics import CONTENT_TYPE, ERROR, Metrics
from webhook.mutate import Decision, mutate
from webhook.preview import FORMATS, Simulation, preview_text, render

MUTATE: Final = "/mutate"
MUTATE_SHADOW: Final = "/mutate/shadow"
PREVIEW: Final = "/preview"
JSON_TYPES: Final = ("application/json",)
YAML_TYPES: Final = ("application/yaml", "application/x-yaml", "text/yaml", "text/x-yaml")
PREVIEW_MEDIA: Final = {
    "json": "application/json",
    "yaml": "application/yaml",
    "patch": "application/jsonl",
    "diff": "text/x-diff",
}

log = logging.getLogger("multinode_webhook.app")

Review = Callable[..., Decision]


class DeadlineExceeded(RuntimeError):
    """The review took longer than its internal budget."""


class RequestError(Exception):
    """A request we refuse with a 4xx status and a JSON error."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


@dataclass
class Server:
    """What the routes share: settings, metrics, the TLS reloader, the review function and
    the per-review log.

    `review` is `mutate` in production; tests hand in one that fails on purpose.
    """

    settings: Settings
    metrics: Metrics = field(default_factory=Metrics)
    tls: CertificateReloader | None = None
    review: Review = mutate
    review_log: ReviewLog = field(init=False)

    def __post_init__(self) -> None:
        self.review_log = ReviewLog(level=self.settings.log_level, fmt=self.settings.log_format)


def _media_type(headers: list[tuple[bytes, bytes]]) -> str:
    for name, value in headers:
        if name == b"content-type":
            return value.split(b";", 1)[0].strip().lower().decode("latin-1")
    return ""


def _content_length(headers: list[tuple[bytes, bytes]]) -> int | None:
    for name, value in headers:
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                raise RequestError(400, "Content-Length is not a number") from None
    return None


async def read_body(
    scope: Scope, receive: Receive, *, limit: int, accept: tuple[str, ...]
) -> bytes:
    """The whole request body, after the content type and size checks of DESIGN §5."""
    headers = scope["headers"]
    media = _media_type(headers)
    if media not in accept:
        raise RequestError(
            415, f"content type must be {' or '.join(accept)}, got {media or 'none'}"
        )
    declared = _content_length(headers)
    if declared is not None and declared > limit:
        raise RequestError(413, f"body of {declared} bytes is over the {limit}-byte limit")
    chunks: list[bytes] = []
    size = 0
    more = True
    while more:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise RequestError(400, "client disconnected before sending the body")
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise RequestError(413, f"body is over the {limit}-byte limit")
        chunks.append(chunk)
        more = message.get("more_body", False)
    return b"".join(chunks)


async def send_json(send: Send, status: int, body: bytes, *, close: bool = False) -> None:
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    if close:
        headers.append((b"connection", b"close"))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def _error_body(message: str) -> bytes:
    return orjson.dumps({"error": message})


class AdmissionHandler:
    """`POST /mutate` and `POST /mutate/shadow`, straight on ASGI."""

    def __init__(self, server: Server) -> None:
        self.server = server
        self.options = server.settings.options()
        self.deny = server.settings.on_error == "deny"
        self.review_log = server.review_log

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        endpoint = scope["path"]
        started = time.perf_counter()
        try:
            if scope["method"] != "POST":
                raise RequestError(405, f"{endpoint} takes POST")
            body = await read_body(
                scope, receive, limit=self.server.settings.body_limit, accept=JSON_TYPES
            )
            if not body:
                raise RequestError(400, "body is empty")
            try:
                document = orjson.loads(body)
            except orjson.JSONDecodeError as error:
                raise RequestError(400, f"body is not valid JSON: {error}") from None
            try:
                request = admission.parse_review(document)
            except admission.ReviewError as error:
                raise RequestError(400, f"not an AdmissionReview we can answer: {error}") from None
        except RequestError as error:
            self.server.metrics.rejected(endpoint, error.status)
            await send_json(send, error.status, _error_body(str(error)), close=error.status == 413)
            return
        response, decision = self._answer(
            request, shadow=endpoint == MUTATE_SHADOW, started=started
        )
        await send_json(send, 200, orjson.dumps(response))
        seconds = time.perf_counter() - started
        outcome = decision.decision if decision else ERROR
        self.server.metrics.review(endpoint, outcome, seconds=seconds, size=len(body))
        if self.review_log.enabled:
            metadata = request.pod.get("metadata")
            metadata = metadata if isinstance(metadata, dict) else {}
            self.review_log(
                {
                    "endpoint": endpoint,
                    "uid": request.uid,
                    "namespace": request.namespace,
                    "pod": metadata.get("name") or metadata.get("generateName") or "",
                    "operation": request.operation,
                    "dryRun": request.dry_run,
                    "decision": outcome,
                    "reason": decision.reason if decision else "internal-error",
                    "duration_ms": round(seconds * 1000, 3),
                }
            )

    def _answer(
        self, request: admission.ReviewRequest, *, shadow: bool, started: float
    ) -> tuple[admission.AdmissionReviewResponse, Decision | None]:
        """The response, failing open (or closed, by setting) on any error of ours."""
        try:
            decision = self.server.review(
                request.pod, context=request.context(shadow=shadow), options=self.options
            )
            elapsed = time.perf_counter() - started
            if elapsed > self.server.settings.deadline_seconds:
                raise DeadlineExceeded(f"review took {elapsed:.3f}s, over its budget")
            return admission.allow(request, decision, encode=orjson.dumps), decision
        except Exception as error:
            log.exception("review failed", extra={"fields": {"uid": request.uid}})
            message = f"multinode-webhook internal error: {type(error).__name__}"
            return admission.failed(request, message=message, deny=self.deny), None


def _labels(pairs: list[str]) -> dict[str, str] | None:
    if not pairs:
        return None
    labels: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise RequestError(400, f"namespaceLabel must be KEY=VALUE, got {pair!r}")
        labels[key] = value
    return labels


def preview_app(server: Server) -> FastAPI:
    options = server.settings.options()
    app = FastAPI(title="multinode-webhook", version=__version__, docs_url=None, redoc_url=None)

    @app.exception_handler(RequestError)
    async def refused(_: Request, error: RequestError) -> Response:
        server.metrics.rejected(PREVIEW, error.status)
        return JSONResponse({"error": str(error)}, status_code=error.status)

    @app.exception_handler(RequestValidationError)
    async def invalid(_: Request, error: RequestValidationError) -> Response:
        server.metrics.rejected(PREVIEW, 400)
        fields = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in error.errors())
        return JSONResponse({"error": fields}, status_code=400)

    @app.post(PREVIEW)
    async def preview(
        request: Request,
        namespace: str | None = None,
        namespace_label: list[str] = Query(default=[], alias="namespaceLabel"),  # noqa: B008
        mode: str = keys.MODE_OPT_IN,
        format: str = "json",
    ) -> Response:
        started = time.perf_counter()
        if format not in FORMATS:
            raise RequestError(400, f"format must be one of {', '.join(FORMATS)}")
        if mode not in keys.MODES:
            raise RequestError(400, f"mode must be one of {', '.join(keys.MODES)}")
        body = await read_body(
            request.scope,
            request.receive,
            limit=server.settings.body_limit,
            accept=JSON_TYPES + YAML_TYPES,
        )
        try:
            text = body.decode("utf-8")
        except UnicodeDecodeError:
            raise RequestError(400, "body is not UTF-8") from None
        sim = Simulation(
            namespace=namespace,
            namespace_labels=_labels(namespace_label),
            mode=mode,
            options=options,
        )
        try:
            results = preview_text(text, sim, allow_aliases=False)
        except documents.InputError as error:
            raise RequestError(400, str(error)) from None
        except RecursionError:
            raise RequestError(400, "input is nested too deeply") from None
        rendered = render(results, format)
        for result in results:
            server.metrics.review(
                PREVIEW, result["decision"], seconds=time.perf_counter() - started, size=len(body)
            )
        return Response(rendered, media_type=PREVIEW_MEDIA[format])

    return app


def https_app(server: Server) -> Callable[[Scope, Receive, Send], Any]:
    """The HTTPS listener's app: admission on the fast path, preview through FastAPI."""
    admission_handler = AdmissionHandler(server)
    fallback = preview_app(server)

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"] in (MUTATE, MUTATE_SHADOW):
            await admission_handler(scope, receive, send)
        else:
            await fallback(scope, receive, send)

    return app


def ops_app(server: Server) -> FastAPI:
    """The plain-HTTP listener: liveness, readiness and metrics."""
    app = FastAPI(
        title="multinode-webhook operations", docs_url=None, redoc_url=None, openapi_url=None
    )

    @app.get("/healthz")
    async def healthz() -> Response:
        return JSONResponse({"status": "ok"})

    @app.get("/readyz")
    async def readyz() -> Response:
        if server.tls is None or not server.tls.valid():
            return JSONResponse({"status": "not ready", "reason": "no valid certificate"}, 503)
        return JSONResponse({"status": "ready"})

    @app.get("/metrics")
    async def metrics() -> Response:
        if server.tls is not None:
            server.metrics.certificate_expires(server.tls.expires)
        return Response(server.metrics.render(), media_type=CONTENT_TYPE)

    return app
