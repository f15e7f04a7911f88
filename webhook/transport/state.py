"""What the listeners share: the settings, metrics, the TLS reloader, the admission pass and
its parse pool, the preview worker, the Event queue, warm start, and whether the replica is
ready (`unready`)."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Final

from webhook.adapters.certs import CertificateReloader
from webhook.adapters.config import Settings
from webhook.core.mutate import decide
from webhook.core.names import Reason, Rule
from webhook.core.parsed import Needed, ParsedScripts
from webhook.core.script import ScriptRewrite, rewrite_script
from webhook.runtime.admit import SHED_REASONS, Admission, Decide
from webhook.runtime.events import EventQueue
from webhook.runtime.parsepool import ParsePool
from webhook.runtime.ratelimit import RateLimit
from webhook.runtime.warmup import WarmUp
from webhook.transport.http import ENDPOINTS, MUTATE, MUTATE_SHADOW, OTHER, RequestError
from webhook.transport.logs import ReviewLog
from webhook.transport.metrics import Metrics
from webhook.transport.preview_worker import PreviewWorker

log = logging.getLogger("multinode_webhook.app")

# Refused requests are logged one line each, but a flood of them cannot fill the disk.
REFUSALS_LOGGED_PER_SECOND: Final = 10


@dataclass
class AppState:
    """What the routes share: settings, metrics, the TLS reloader, the admission pass and
    the per-review log.

    `decide` is the core's in production, and `rewrite` the core's script rewrite; tests hand
    in ones that fail on purpose. `scripts` keeps the rewrites of the scripts the server has
    seen, and `parses` parses those it has not, in sandbox processes shared out fairly.
    """

    settings: Settings
    metrics: Metrics = field(default_factory=Metrics)
    tls: CertificateReloader | None = None
    decide: Decide = decide
    rewrite: Callable[[str, frozenset[Rule]], ScriptRewrite] = rewrite_script
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
            rewrite=self.rewrite,
            on_failure=self._parse_went_wrong,
        )
        self.admission = Admission(
            options=self.settings.options(),
            pool=self.parses,
            deadline_seconds=self.settings.deadline_seconds,
            deny=self.settings.on_error == "deny",
            decide=self.decide,
        )

    def _parse_went_wrong(self, needed: Needed, reason: Reason, namespace: str) -> None:
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
