"""The Prometheus metrics of the server, counted with prometheus-client.

One process keeps its metrics in memory, in a registry of its own. Several worker processes
(`--workers > 1`) keep them in prometheus-client's multiprocess files under one directory
(`use_multiprocess`), and every scrape sums all workers, whichever one answers it.

Reviews are counted on a path every pod creation takes, so the labelled children of each
(endpoint, decision) pair are looked up once and kept: `labels()` takes a lock and builds a
key on every call, which would cost about 3 µs a review.
"""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Final, NamedTuple

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client import values as prometheus_values
from prometheus_client.multiprocess import MultiProcessCollector

from webhook import __version__

LATENCY_BUCKETS: Final = (
    0.00025,
    0.0005,
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
)
SIZE_BUCKETS: Final = (1024, 4096, 16384, 65536, 262144, 1048576, 4194304)
CONTENT_TYPE: Final = "text/plain; version=0.0.4; charset=utf-8"
ERROR: Final = "error"
MULTIPROCESS_ENV: Final = "PROMETHEUS_MULTIPROC_DIR"


def use_multiprocess(directory: Path) -> None:
    """Keep the values of every metric made from now on in files under `directory`.

    prometheus-client picks where values live from `PROMETHEUS_MULTIPROC_DIR` once, when it is
    first imported; the server only learns how many workers it runs after that, so it sets the
    variable and makes prometheus-client pick again. Call it before forking the workers and
    before making their `Metrics`.
    """
    os.environ[MULTIPROCESS_ENV] = str(directory)
    prometheus_values.ValueClass = prometheus_values.get_value_class()  # type: ignore[no-untyped-call]


class _ReviewChildren(NamedTuple):
    reviews: Counter
    latency: Histogram
    size: Histogram


class _RunningCount:
    """A counter that follows a running count kept elsewhere (the certificate reloader's, the
    parse pool's, warm start's): each catch-up adds what that count grew by since the last."""

    def __init__(self, counter: Counter) -> None:
        self._counter = counter
        self._seen = 0

    def catch_up(self, count: int) -> None:
        if count > self._seen:
            self._counter.inc(count - self._seen)
            self._seen = count


class Metrics:
    """Reviews by endpoint and decision, latency, body size, refusals, certificate state."""

    def __init__(self, *, multiprocess_dir: Path | None = None) -> None:
        self.multiprocess_dir = multiprocess_dir
        self.registry = CollectorRegistry()
        registry = self.registry
        self._reviews = Counter(
            "multinode_webhook_reviews",
            "Admission reviews answered, by endpoint and decision",
            ["endpoint", "decision"],
            registry=registry,
        )
        self._latency = Histogram(
            "multinode_webhook_review_duration_seconds",
            "Time to answer one review",
            ["endpoint"],
            buckets=LATENCY_BUCKETS,
            registry=registry,
        )
        self._size = Histogram(
            "multinode_webhook_request_body_bytes",
            "Size of request bodies",
            ["endpoint"],
            buckets=SIZE_BUCKETS,
            registry=registry,
        )
        self._children: dict[tuple[str, str], _ReviewChildren] = {}
        self._rejected = Counter(
            "multinode_webhook_rejected_requests",
            "Requests refused before review (4xx, 503), by endpoint and HTTP status",
            ["endpoint", "code"],
            registry=registry,
        )
        self._dropped = Counter(
            "multinode_webhook_connections_dropped",
            "Connections dropped over --max-connections to make room for a request: the one "
            "that had waited longest on its client",
            registry=registry,
        )
        self._too_large = Counter(
            "multinode_webhook_scripts_too_large",
            "Reviews with a script over --max-script-bytes, left unchanged, by endpoint",
            ["endpoint"],
            registry=registry,
        )
        self._parser_crashes = Counter(
            "multinode_webhook_parser_crashes",
            "Scripts whose parse crashed the sandbox worker (replaced); their pods were "
            "admitted unchanged, reason parser-failed",
            registry=registry,
        )
        self._first_seen = Counter(
            "multinode_webhook_first_seen_scripts",
            "Scripts a review found uncached and sent to a sandbox, and waited for (warm start "
            "parses the cluster's known scripts before they come: see multinode_webhook_warm_"
            "scripts_total)",
            registry=registry,
        )
        self._warm = Counter(
            "multinode_webhook_warm_scripts",
            "Scripts of the cluster's runtimes and LLM workloads parsed by warm start",
            registry=registry,
        )
        self._warm_dropped = _RunningCount(
            Counter(
                "multinode_webhook_warm_scripts_dropped",
                "Scripts warm start let go unparsed, its queue full (their first pods parse them)",
                registry=registry,
            )
        )
        self._parse_timeouts = Counter(
            "multinode_webhook_parse_timeouts",
            "Scripts whose parse overran --parse-budget-seconds (the worker was replaced); their "
            "pods were admitted unchanged, reason parse-timeout",
            registry=registry,
        )
        self._parse_shed = Counter(
            "multinode_webhook_parse_shed",
            "Reviews answered by the error policy because their first-seen script found no room "
            "in the parse queue (parse-queue-full) or no turn before the deadline "
            "(parse-queue-late)",
            ["reason"],
            registry=registry,
        )
        self._events = Counter(
            "multinode_webhook_events_written",
            "Kubernetes Events written on the owners of pods (a new series, or a series' count "
            "brought up to date), by type and reason",
            ["type", "reason"],
            registry=registry,
        )
        self._events_dropped = Counter(
            "multinode_webhook_events_dropped",
            "Events not written: the queue was full (queue-full), the owner or its namespace was "
            "over its rate (rate-limited), the owner does not exist (no-owner), or the API "
            "server refused or did not answer (api-error)",
            ["reason"],
            registry=registry,
        )
        self._workers_replaced = _RunningCount(
            Counter(
                "multinode_webhook_parse_workers_replaced",
                "Parse workers found dead before a call (killed while idle, as by the OOM "
                "killer) and replaced",
                registry=registry,
            )
        )
        self._worker_start_failures = _RunningCount(
            Counter(
                "multinode_webhook_parse_worker_start_failures",
                "Attempts to start a parse worker that failed; while none can start, /readyz fails",
                registry=registry,
            )
        )
        self._deadline_overruns = Counter(
            "multinode_webhook_deadline_overruns",
            "Reviews that took longer than --deadline-seconds, answered by the error policy",
            registry=registry,
        )
        self._reload_errors = _RunningCount(
            Counter(
                "multinode_webhook_certificate_reload_errors",
                "Changed certificate pairs refused (unreadable, mismatched, expired or not yet "
                "valid); the last good pair kept serving. Each worker process reloads, and "
                "counts, on its own",
                registry=registry,
            )
        )
        self._expiry = Gauge(
            "multinode_webhook_certificate_expiry_seconds",
            "Seconds until the serving certificate expires",
            registry=registry,
            multiprocess_mode="mostrecent",
        )
        self._ready = Gauge(
            "multinode_webhook_ready",
            "1 while the replica is ready (what /readyz says), else 0",
            registry=registry,
            multiprocess_mode="max",
        )
        # A gauge rather than an Info, which prometheus-client cannot keep across processes;
        # the exposition is the same `multinode_webhook_build_info{version=...} 1.0`.
        Gauge(
            "multinode_webhook_build_info",
            "Version of the webhook",
            ["version"],
            registry=registry,
            multiprocess_mode="max",
        ).labels(__version__).set(1)

    def zero(self, *, endpoints: Sequence[str], shed_reasons: Sequence[str]) -> None:
        """Expose at 0 the labelled series an alert counts: one that first appears at 1 shows
        Prometheus no increase, and the first error after a start would page nobody."""
        for endpoint in endpoints:
            self._reviews.labels(endpoint, ERROR)
        for reason in shed_reasons:
            self._parse_shed.labels(reason)

    def review(self, endpoint: str, decision: str, *, seconds: float, size: int) -> None:
        children = self._children.get((endpoint, decision))
        if children is None:
            children = self._children[endpoint, decision] = _ReviewChildren(
                self._reviews.labels(endpoint, decision),
                self._latency.labels(endpoint),
                self._size.labels(endpoint),
            )
        children.reviews.inc()
        children.latency.observe(seconds)
        children.size.observe(size)

    def script_too_large(self, endpoint: str) -> None:
        self._too_large.labels(endpoint).inc()

    def parser_crashed(self) -> None:
        self._parser_crashes.inc()

    def first_seen_script(self) -> None:
        self._first_seen.inc()

    def warm_script(self) -> None:
        self._warm.inc()

    def parse_timed_out(self) -> None:
        self._parse_timeouts.inc()

    def parse_shed(self, reason: str) -> None:
        self._parse_shed.labels(reason).inc()

    def event_written(self, kind: str, reason: str) -> None:
        self._events.labels(kind, reason).inc()

    def event_dropped(self, reason: str) -> None:
        self._events_dropped.labels(reason).inc()

    def deadline_overrun(self) -> None:
        self._deadline_overruns.inc()

    def rejected(self, endpoint: str, code: int) -> None:
        self._rejected.labels(endpoint, str(code)).inc()

    def connection_dropped(self) -> None:
        self._dropped.inc()

    def certificate_reload_errors(self, count: int) -> None:
        """Catch up with the reloader's running count of refused pairs."""
        self._reload_errors.catch_up(count)

    def parse_workers(self, *, replaced: int, start_failures: int) -> None:
        """Catch up with the parse pool's running counts of workers replaced and not started."""
        self._workers_replaced.catch_up(replaced)
        self._worker_start_failures.catch_up(start_failures)

    def warm_dropped(self, count: int) -> None:
        """Catch up with warm start's running count of scripts let go."""
        self._warm_dropped.catch_up(count)

    def certificate_expires(self, when: dt.datetime | None) -> None:
        seconds = (when - dt.datetime.now(dt.UTC)).total_seconds() if when else 0.0
        self._expiry.set(seconds)

    def ready(self, ready: bool) -> None:
        self._ready.set(1 if ready else 0)

    def exposition(self) -> bytes:
        """Every metric in Prometheus's text format, as `/metrics` answers."""
        if self.multiprocess_dir is None:
            return generate_latest(self.registry)
        # A registry per scrape: the collector reads every worker's files each time.
        registry = CollectorRegistry()
        MultiProcessCollector(registry, path=str(self.multiprocess_dir))  # type: ignore[no-untyped-call]
        return generate_latest(registry)
