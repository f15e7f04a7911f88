"""The HTTP surface: the HTTPS admission app and the plain-HTTP operations app.

`/mutate` and `/mutate/shadow` are served by a small ASGI handler in front of FastAPI: they
are on the path of every pod creation, and FastAPI's request machinery would cost about half
of their throughput. `/preview`, `/healthz`, `/readyz` and `/metrics` are ordinary FastAPI
routes. Every route calls the same core as the CLI.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Final

import msgspec
import orjson
from fastapi import FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Receive, Scope, Send

from webhook import __version__
from webhook.adapters.certs import CertificateReloader
from webhook.adapters.config import Settings
from webhook.core import admission
from webhook.core.model import Context, Decision
from webhook.core.mutate import decide
from webhook.core.names import Mode, Reason, Rule
from webhook.core.parsed import Needed, ParsedScripts
from webhook.core.raw import label_pair
from webhook.core.script import ScriptRewrite, rewrite_script
from webhook.core.view import ReviewView, pod_name
from webhook.offline.preview import FORMATS, NEWEST
from webhook.runtime.admit import SHED_REASONS, Admission, Answer, Decide
from webhook.runtime.events import EventQueue
from webhook.runtime.parsepool import ParsePool
from webhook.runtime.ratelimit import RateLimit
from webhook.runtime.warmup import WarmUp
from webhook.transport.logs import ReviewLog
from webhook.transport.metrics import CONTENT_TYPE, ERROR, Metrics
from webhook.transport.preview_worker import PreviewRefused, PreviewWorker

MUTATE: Final = "/mutate"
MUTATE_SHADOW: Final = "/mutate/shadow"
PREVIEW: Final = "/preview"
ENDPOINTS: Final = (MUTATE, MUTATE_SHADOW, PREVIEW)
OTHER: Final = "other"
JSON_TYPES: Final = ("application/json",)
YAML_TYPES: Final = ("application/yaml", "application/x-yaml", "text/yaml", "text/x-yaml")
PREVIEW_DECISION: Final = "preview"
PREVIEW_MEDIA: Final = {
    "table": "text/plain; charset=utf-8",
    "json": "application/json",
    "yaml": "application/yaml",
    "patch": "application/jsonl",
    "diff": "text/x-diff",
    "manifest": "application/yaml",
}

log = logging.getLogger("multinode_webhook.app")


class RequestError(Exception):
    """A request we refuse with a 4xx status and a JSON error."""

    def __init__(self, status: int, message: str, *, uid: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.uid = uid


# Refused requests are logged one line each, but a flood of them cannot fill the disk.
REFUSALS_LOGGED_PER_SECOND: Final = 10


@dataclass
class AppState:
    """What the routes share: settings, metrics, the TLS reloader, the admission pass and
    the per-review log.

    `decide` is the core's in production, and `parse` the core's parse; tests hand in ones that
    fail on purpose. `scripts` keeps the rewrites of the scripts the server has seen, and
    `parses` parses those it has not, in sandbox processes shared out fairly.
    """

    settings: Settings
    metrics: Metrics = field(default_factory=Metrics)
    tls: CertificateReloader | None = None
    decide: Decide = decide
    parse: Callable[[str, frozenset[Rule]], ScriptRewrite] = rewrite_script
    review_log: ReviewLog = field(init=False)
    refusals: RateLimit = field(default_factory=lambda: RateLimit(REFUSALS_LOGGED_PER_SECOND))
    previews: PreviewWorker = field(default_factory=PreviewWorker)
    scripts: ParsedScripts = field(default_factory=ParsedScripts)
    parses: ParsePool = field(init=False)
    admission: Admission = field(init=False)
    # What owners are told, sent after admission (`send_events`).
    events: EventQueue = field(init=False)
    # Set on SIGTERM: /readyz fails and every admission response closes its connection.
    draining: bool = False
    # Warm start, when the server runs one: /readyz fails until it is done.
    warm: WarmUp | None = None

    def refused(self, endpoint: str, error: RequestError) -> None:
        """Count a refused request, and log it while the rate limit allows."""
        # Any other path counts as one label value: a client must not grow the metrics.
        self.metrics.rejected(endpoint if endpoint in ENDPOINTS else OTHER, error.status)
        allowed, left_out = self.refusals.allow()
        if allowed:
            fields = {"endpoint": endpoint, "status": error.status, "error": str(error)}
            if left_out:
                fields["refusals_not_logged"] = left_out
            log.warning("request refused", extra={"fields": fields})

    def unready(self) -> str | None:
        """Why `/readyz` fails, or None when the replica is ready."""
        if self.draining:
            return "draining for shutdown"
        if self.warm is not None and not self.warm.ready.is_set():
            return "parsing the cluster's runtime scripts (warm start)"
        if self.tls is None or not self.tls.valid():
            return "no valid certificate"
        if (reason := self.parses.unavailable) is not None:
            return reason
        return None

    def certificate_metrics(self) -> None:
        """Bring the certificate's expiry and the refused reloads, the parse workers replaced
        or not started, and warm start's dropped scripts up to date in the metrics."""
        if self.tls is not None:
            self.metrics.certificate_expires(self.tls.expires)
            self.metrics.certificate_reload_errors(self.tls.reload_errors)
        self.metrics.parse_workers(
            replaced=self.parses.replaced, start_failures=self.parses.start_failures
        )
        if self.warm is not None:
            self.metrics.warm_dropped(self.warm.dropped)

    def __post_init__(self) -> None:
        self.review_log = ReviewLog(level=self.settings.log_level, fmt=self.settings.log_format)
        self.metrics.zero(endpoints=(MUTATE, MUTATE_SHADOW), shed_reasons=SHED_REASONS)
        self.events = EventQueue(metrics=self.metrics)
        if not self.settings.events:
            self.events.off()
        self.parses = ParsePool(
            workers=self.settings.parse_workers,
            budget=self.settings.parse_budget_seconds,
            queue_limit=self.settings.parse_queue,
            tenant_limit=self.settings.parse_queue_per_namespace,
            scripts=self.scripts,
            parse=self.parse,
            on_failure=self._parse_failed,
        )
        self.admission = Admission(
            options=self.settings.options(),
            pool=self.parses,
            deadline_seconds=self.settings.deadline_seconds,
            deny=self.settings.on_error == "deny",
            decide=self.decide,
        )

    def _parse_failed(self, needed: Needed, reason: Reason, namespace: str) -> None:
        """Count and log a parse that crashed or overran its worker."""
        fields = {"namespace": namespace, "container": needed.container}
        if reason is Reason.PARSE_TIMEOUT:
            self.metrics.parse_timed_out()
            log.error(
                "a parse overran its budget; its worker was replaced", extra={"fields": fields}
            )
        else:
            self.metrics.parser_crashed()
            log.error("the bash parser crashed; its worker was replaced", extra={"fields": fields})


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


def _error_body(message: str, *, uid: str | None = None) -> bytes:
    return orjson.dumps({"error": message} if uid is None else {"error": message, "uid": uid})


def _too_large(decision: Decision) -> bool:
    return any(step.verdict is Reason.SCRIPT_TOO_LARGE for step in decision.trace)


# The fields admission reads, decoded straight from a body; every other field is skipped.
_DECODER: Final = msgspec.json.Decoder(ReviewView)
# What the typed decode rejects: a body that is not JSON, or whose fields of an object type hold
# something else, or nested past the decoder's depth. The full parse then says what is wrong.
_UNTYPED: Final = (msgspec.DecodeError, msgspec.ValidationError, RecursionError, UnicodeError)


def decode_review(body: bytes) -> admission.ReviewRequest:
    """The AdmissionReview in `body`, or a 400 naming what is wrong with it.

    Decoded straight into the typed view: `orjson.loads` built a dict for every field of the
    review, about 3 times the work. The typed decode skips the fields it does not read
    without checking their UTF-8, so the body is checked for it too; a body the typed decode
    rejects is parsed whole, and `parse_review` on that names the problem as it always has.
    One difference remains: a number past the range of a float, in a field admission does not
    read, is skipped here where the full parse refuses it. Nesting is bounded as before: the
    typed decoder stops at the interpreter's recursion limit (1000, under the full parse's
    1024), and a body it stops on is parsed whole.
    """
    try:
        view = _DECODER.decode(body)
        body.decode("utf-8")
    except _UNTYPED:
        return parse_body(body)
    try:
        return admission.read_review(view)
    except admission.ReviewError as error:
        uid = view.request.uid if view.request is not None else None
        raise _not_a_review(error, uid) from None


def parse_body(body: bytes) -> admission.ReviewRequest:
    """The review parsed whole: the path of a body the typed decode rejects."""
    try:
        document = orjson.loads(body)
    except orjson.JSONDecodeError as error:
        raise RequestError(400, f"body is not valid JSON: {error}") from None
    try:
        return admission.parse_review(document)
    except admission.ReviewError as error:
        request = document.get("request") if isinstance(document, dict) else None
        raise _not_a_review(
            error, request.get("uid") if isinstance(request, dict) else None
        ) from None


def _not_a_review(error: admission.ReviewError, uid: object) -> RequestError:
    """The 400 for a body that is not an AdmissionReview we can answer, echoing its uid when
    the body got far enough to hold one."""
    message = f"not an AdmissionReview we can answer: {error}"
    return RequestError(400, message, uid=uid if isinstance(uid, str) and uid else None)


def _json_errors(app: FastAPI, state: AppState) -> None:
    """Every HTTP error of the framework's own (404, 405, ...) as `{"error": ...}`, counted
    and logged as a refusal."""

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, error: StarletteHTTPException) -> Response:
        state.refused(request.url.path, RequestError(error.status_code, str(error.detail)))
        return JSONResponse(
            {"error": str(error.detail)}, status_code=error.status_code, headers=error.headers
        )


class AdmissionHandler:
    """`POST /mutate` and `POST /mutate/shadow`, straight on ASGI: the body read and checked,
    the admission pass run (`webhook.runtime.admit`), the answer sent, then observed by the
    metrics, the review log and the Event queue, in that order, none of them inside the pass."""

    def __init__(self, state: AppState) -> None:
        self.state = state
        self.review_log = state.review_log

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        endpoint = scope["path"]
        started = time.perf_counter()
        try:
            if scope["method"] != "POST":
                raise RequestError(405, f"{endpoint} takes POST")
            body = await read_body(
                scope, receive, limit=self.state.settings.body_limit, accept=JSON_TYPES
            )
            if not body:
                raise RequestError(400, "body is empty")
            request = decode_review(body)
        except RequestError as error:
            self.state.refused(endpoint, error)
            body = _error_body(str(error), uid=error.uid)
            close = error.status == 413 or self.state.draining
            await send_json(send, error.status, body, close=close)
            return
        shadow = endpoint == MUTATE_SHADOW
        answer = await self.state.admission.answer(request, shadow=shadow, started=started)
        # Draining, the client is told to take its next review elsewhere, after this answer:
        # a connection closed under a review it had already sent would lose that review.
        await send_json(send, 200, orjson.dumps(answer.response), close=self.state.draining)
        seconds = time.perf_counter() - started
        self._measured(endpoint, answer, seconds=seconds, size=len(body))
        self.state.events.tell(request, answer.decision, answer.response)
        if self.review_log.enabled:
            self._logged(endpoint, request, answer, seconds=seconds)

    def _measured(self, endpoint: str, answer: Answer, *, seconds: float, size: int) -> None:
        """The answer in the metrics."""
        metrics = self.state.metrics
        decision = answer.decision
        metrics.review(endpoint, decision.action if decision else ERROR, seconds=seconds, size=size)
        for _ in range(answer.first_seen):
            metrics.first_seen_script()
        if answer.shed is not None:
            metrics.parse_shed(answer.shed)
        if answer.overran:
            metrics.deadline_overrun()
        if decision is not None and not decision.cacheable and _too_large(decision):
            metrics.script_too_large(endpoint)

    def _logged(
        self, endpoint: str, request: admission.ReviewRequest, answer: Answer, *, seconds: float
    ) -> None:
        """The answer's line in the review log."""
        decision = answer.decision
        self.review_log(
            {
                "endpoint": endpoint,
                "uid": request.uid,
                "namespace": request.namespace,
                "pod": pod_name(request.pod),
                "operation": request.operation,
                "dryRun": request.dry_run,
                "decision": decision.action if decision else ERROR,
                "reason": decision.reason if decision else "internal-error",
                "duration_ms": round(seconds * 1000, 3),
            }
        )


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
    _json_errors(app, state)

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
            rendered = await state.previews.render(
                text, context=context, options=options, fmt=format, kserve_version=kserve_version
            )
        except PreviewRefused as refused:
            raise RequestError(refused.status, str(refused)) from None
        # One count per request, however many objects it held.
        seconds = time.perf_counter() - started
        state.metrics.review(PREVIEW, PREVIEW_DECISION, seconds=seconds, size=len(body))
        return Response(rendered, media_type=PREVIEW_MEDIA[format])

    return app


def guarded(asgi: ASGIApp, state: AppState, *, limit: int, load: Callable[[], int]) -> ASGIApp:
    """`asgi` behind a cap, and quiet when shutdown cuts it short.

    Over `limit` open connections or requests in flight (`load`, this one included), a
    request is answered 503 and its connection closed: uvicorn's own `limit_concurrency` does
    the same with a plain-text body, and every error of ours is JSON. A request still running
    when the shutdown grace ends is cancelled by uvicorn, which would log the cancellation as
    an application error with its traceback; it is answered 503 and logged in one line.
    """

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await asgi(scope, receive, send)
            return
        if load() > limit:
            error = RequestError(503, f"over {limit} open connections or requests; retry")
            state.refused(scope["path"], error)
            await send_json(send, 503, _error_body(str(error)), close=True)
            return
        try:
            await asgi(scope, receive, send)
        except asyncio.CancelledError:
            log.info("request cut short at shutdown", extra={"fields": {"path": scope["path"]}})
            # uvicorn refuses a second response when the first had begun: nothing more to say.
            with contextlib.suppress(RuntimeError):
                await send_json(send, 503, _error_body("the server is shutting down"), close=True)

    return app


def admission_app(state: AppState) -> Callable[[Scope, Receive, Send], Any]:
    """The admission listener's app: `/mutate` and `/mutate/shadow`, and nothing else."""
    admission_handler = AdmissionHandler(state)

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        path = scope["path"]
        if path in (MUTATE, MUTATE_SHADOW):
            await admission_handler(scope, receive, send)
            return
        message = f"no route {path} on the admission port"
        if path == PREVIEW:
            message = "/preview is served on its own port (--preview-port)"
        state.refused(path, RequestError(404, message))
        await send_json(send, 404, _error_body(message), close=state.draining)

    return app


def ops_app(state: AppState) -> FastAPI:
    """The plain-HTTP listener: liveness, readiness and metrics."""
    app = FastAPI(
        title="multinode-webhook operations", docs_url=None, redoc_url=None, openapi_url=None
    )
    _json_errors(app, state)

    @app.get("/healthz")
    async def healthz() -> Response:
        return JSONResponse({"status": "ok"})

    @app.get("/readyz")
    async def readyz() -> Response:
        reason = state.unready()
        if reason is not None:
            return JSONResponse({"status": "not ready", "reason": reason}, 503)
        return JSONResponse({"status": "ready"})

    @app.get("/metrics")
    async def metrics() -> Response:
        state.certificate_metrics()
        state.metrics.ready(state.unready() is None)
        return Response(state.metrics.render(), media_type=CONTENT_TYPE)

    return app
