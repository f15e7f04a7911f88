"""One pass through admission: a review's request in, its response and what happened out.

The pass reads the pod (`read_pod`), answers at once from the decisions the server keeps, else
asks the core which scripts the pod needs (`scripts_needed`), has the ones it has not seen
parsed by the parse pool (each in a sandbox process, while the event loop serves other
reviews), and calls the core's `decide` once with them in hand. Nothing re-enters the core and
no exception carries work. Any error of ours is answered by the error policy: admitted unchanged
with a warning (fail open), or refused with a 500 under `--on-error deny`.

What happened is returned (`Answer`), not counted here: metrics, the review log and Events
observe each answer around the pass (`webhook.transport.admission_app`).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

from webhook.core import admission
from webhook.core.model import Decision, Options
from webhook.core.mutate import Decisions, decide
from webhook.core.names import Reason, Rule
from webhook.core.parsed import Needed, Rewrites, known
from webhook.core.read import PodFacts, read_pod
from webhook.core.script import ScriptRewrite
from webhook.core.selection import scripts_needed
from webhook.offline.isolation import ParserFailed
from webhook.runtime.parsepool import Late, ParsePool, Shed
from webhook.runtime.ratelimit import RateLimit
from webhook.runtime.sandbox import Unavailable

QUEUE_FULL: Final = "parse-queue-full"
QUEUE_LATE: Final = "parse-queue-late"
NO_WORKER: Final = "parse-worker-unavailable"
SHED_REASONS: Final = (QUEUE_FULL, QUEUE_LATE, NO_WORKER)
# A review waits for its scripts' parse for at most this share of its deadline: the answer
# still has to be written and sent.
PARSE_SHARE: Final = 0.9
UNPARSED_LOGGED_PER_SECOND: Final = 10

# What decides, given a pod's facts and its scripts' rewrites: the core's `decide`, or a test's.
Decide = Callable[..., Decision]

log = logging.getLogger("multinode_webhook.app")


class DeadlineExceeded(RuntimeError):
    """The review took longer than its internal budget."""


@dataclass(frozen=True, slots=True)
class Answer:
    """A review's response and what led to it: the decision (None when the error policy
    answered), the scripts sent to the parse pool, and why a first-seen script went unparsed
    (one of `SHED_REASONS`), or whether the review overran its deadline."""

    response: admission.AdmissionReviewResponse
    decision: Decision | None
    first_seen: int = 0
    shed: str | None = None
    overran: bool = False


class Admission:
    """The server's admission pass; it owns the decisions and response fields it keeps."""

    def __init__(
        self,
        *,
        options: Options,
        pool: ParsePool,
        deadline_seconds: float,
        deny: bool,
        decide: Decide = decide,
    ) -> None:
        self._options = options
        self._pool = pool
        self._deadline = deadline_seconds
        self._deny = deny
        self._decide = decide
        self._decisions = Decisions(options)
        self._answers: admission.Answers = admission.Answers(1024)
        self._unparsed_logs = RateLimit(UNPARSED_LOGGED_PER_SECOND)

    async def answer(
        self, request: admission.ReviewRequest, *, shadow: bool, started: float
    ) -> Answer:
        """The review's answer; `started` is its `time.perf_counter()` on arrival."""
        sent: list[Needed] = []  # the scripts sent to the pool, whatever becomes of them
        try:
            context = request.context(shadow=shadow)
            facts = read_pod(request.pod, context=context, options=self._options)
            decision = self._decisions.get(facts)
            if decision is None:
                rewrites = await self._parsed(facts, request=request, started=started, sent=sent)
                decision = self._decisions.keep(facts, self._decide(facts, rewrites=rewrites))
            elapsed = time.perf_counter() - started
            if elapsed > self._deadline:
                overrun = DeadlineExceeded(f"review took {elapsed:.3f}s, over its budget")
                return Answer(self._failed(request, overrun), None, len(sent), overran=True)
            if self._deny and _script_unparsed(decision):
                failed = ParserFailed("the bash parser crashed or overran on a script of the pod")
                return Answer(self._failed(request, failed), None, len(sent))
            response = admission.allow(request, decision, answers=self._answers)
            return Answer(response, decision, len(sent))
        except (Shed, Late, Unavailable) as error:
            return Answer(self._unparsed(request, error), None, len(sent), _SHED[type(error)])
        except Exception as error:
            return Answer(self._failed(request, error), None, len(sent))

    async def _parsed(
        self,
        facts: PodFacts,
        *,
        request: admission.ReviewRequest,
        started: float,
        sent: list[Needed],
    ) -> Rewrites:
        """The rewrites of every script the pod needs, those not seen yet parsed by the pool
        by the review's deadline; `sent` gains each one sent to it."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._deadline * PARSE_SHARE - (time.perf_counter() - started)
        rewrites: dict[tuple[str, frozenset[Rule]], ScriptRewrite] = {}
        for needed in scripts_needed(facts):
            found = self._pool.known(needed)
            if found is None:
                sent.append(needed)
                tenant = request.namespace or ""
                found = await self._pool.parse(needed, tenant=tenant, deadline=deadline)
            rewrites[needed.key] = found
        return known(rewrites)

    def _unparsed(
        self, request: admission.ReviewRequest, error: Shed | Late | Unavailable
    ) -> admission.AdmissionReviewResponse:
        """The error policy's answer for a pod whose script could not be parsed in time."""
        reason = _SHED[type(error)]
        allowed, left_out = self._unparsed_logs.allow()
        if allowed:
            fields: dict[str, object] = {"uid": request.uid, "reason": reason, "error": str(error)}
            if left_out:
                fields["not_logged"] = left_out
            log.warning("a first-seen script was not parsed", extra={"fields": fields})
        message = f"multinode-webhook {reason}: {error}"
        return admission.failed(request, message=message, deny=self._deny)

    def _failed(
        self, request: admission.ReviewRequest, error: Exception
    ) -> admission.AdmissionReviewResponse:
        log.error(
            "review failed",
            exc_info=not isinstance(error, (DeadlineExceeded, ParserFailed)),
            extra={"fields": {"uid": request.uid, "error": str(error)}},
        )
        message = f"multinode-webhook internal error: {type(error).__name__}"
        return admission.failed(request, message=message, deny=self._deny)


_SHED: Final[dict[type[Exception], str]] = {
    Shed: QUEUE_FULL,
    Late: QUEUE_LATE,
    Unavailable: NO_WORKER,
}


def _script_unparsed(decision: Decision) -> bool:
    failed = (Reason.PARSER_FAILED, Reason.PARSE_TIMEOUT)
    return any(step.verdict in failed for step in decision.trace)
