"""The admission listener's app: `POST /mutate` and `POST /mutate/shadow`, served by a small
ASGI handler rather than FastAPI (they are on the path of every pod creation, and FastAPI's
request machinery would cost about half of their throughput), and the cap every listener sits
behind (`guarded`)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from typing import Any

import orjson
from starlette.types import ASGIApp, Receive, Scope, Send

from webhook.core import admission
from webhook.core.model import Decision
from webhook.core.names import Reason
from webhook.core.view import pod_name
from webhook.runtime.admit import Answer
from webhook.transport.http import (
    JSON_TYPES,
    MUTATE,
    MUTATE_SHADOW,
    PREVIEW,
    RequestError,
    decode_review,
    error_body,
    read_body,
    send_json,
)
from webhook.transport.metrics import ERROR
from webhook.transport.state import AppState

log = logging.getLogger("multinode_webhook.app")


def _too_large(decision: Decision) -> bool:
    return any(step.verdict is Reason.SCRIPT_TOO_LARGE for step in decision.trace)


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
            body = error_body(str(error), uid=error.uid)
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


def guarded(
    asgi: ASGIApp,
    state: AppState,
    *,
    limit: int,
    load: Callable[[], int],
    make_room: Callable[[], bool],
) -> ASGIApp:
    """`asgi` behind a cap, and quiet when shutdown cuts it short.

    Over `limit` open connections or requests in flight (`load`, this one included), the
    connection that has waited longest on its client is dropped to make room (`make_room`,
    counted); with none to drop, a request is answered 503 and its connection closed: uvicorn's own
    `limit_concurrency` does the same with a plain-text body, and every error of ours is JSON.
    A request still running when the shutdown grace ends is cancelled by uvicorn, which would
    log the cancellation as an application error with its traceback; it is answered 503 and
    logged in one line.
    """

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await asgi(scope, receive, send)
            return
        if load() > limit:
            if make_room():
                state.metrics.connection_dropped()
            else:
                error = RequestError(503, f"over {limit} open connections or requests; retry")
                state.refused(scope["path"], error)
                await send_json(send, 503, error_body(str(error)), close=True)
                return
        try:
            await asgi(scope, receive, send)
        except asyncio.CancelledError:
            log.info("request cut short at shutdown", extra={"fields": {"path": scope["path"]}})
            # uvicorn refuses a second response when the first had begun: nothing more to say.
            with contextlib.suppress(RuntimeError):
                await send_json(send, 503, error_body("the server is shutting down"), close=True)

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
        await send_json(send, 404, error_body(message), close=state.draining)

    return app
