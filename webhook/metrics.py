"""The Prometheus metrics of the server, in a registry of its own.

Label children are bound once per (endpoint, decision), so counting a review on the hot path
is a dictionary look-up and three updates.
"""

from __future__ import annotations

import datetime as dt
from typing import Final

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, Info, generate_latest

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


class Metrics:
    """Reviews by endpoint and decision, latency, body size, certificate expiry, version."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self._reviews = Counter(
            "multinode_webhook_reviews",
            "Admission reviews answered, by endpoint and decision",
            ["endpoint", "decision"],
            registry=self.registry,
        )
        self._rejected = Counter(
            "multinode_webhook_rejected_requests",
            "Requests refused before review (4xx), by endpoint and HTTP status",
            ["endpoint", "code"],
            registry=self.registry,
        )
        self._latency = Histogram(
            "multinode_webhook_review_duration_seconds",
            "Time to answer one review",
            ["endpoint"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self._size = Histogram(
            "multinode_webhook_request_body_bytes",
            "Size of request bodies",
            ["endpoint"],
            buckets=SIZE_BUCKETS,
            registry=self.registry,
        )
        self._expiry = Gauge(
            "multinode_webhook_certificate_expiry_seconds",
            "Seconds until the serving certificate expires",
            registry=self.registry,
        )
        Info("multinode_webhook_build", "Version of the webhook", registry=self.registry).info(
            {"version": __version__}
        )
        self._counted: dict[tuple[str, str], tuple[Counter, Histogram, Histogram]] = {}

    def review(self, endpoint: str, decision: str, *, seconds: float, size: int) -> None:
        key = (endpoint, decision)
        bound = self._counted.get(key)
        if bound is None:
            bound = self._counted[key] = (
                self._reviews.labels(endpoint, decision),
                self._latency.labels(endpoint),
                self._size.labels(endpoint),
            )
        reviews, latency, size_histogram = bound
        reviews.inc()
        latency.observe(seconds)
        size_histogram.observe(size)

    def rejected(self, endpoint: str, code: int) -> None:
        self._rejected.labels(endpoint, str(code)).inc()

    def certificate_expires(self, when: dt.datetime | None) -> None:
        seconds = (when - dt.datetime.now(dt.UTC)).total_seconds() if when else 0.0
        self._expiry.set(seconds)

    def render(self) -> bytes:
        return generate_latest(self.registry)
