"""Review counters and histograms, as the Prometheus text exposition shows them."""

from __future__ import annotations

import pytest
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample

from webhook.adapters.config import Settings
from webhook.transport.metrics import Metrics
from webhook.transport.state import AppState

LATENCY = "multinode_webhook_review_duration_seconds"
SIZE = "multinode_webhook_request_body_bytes"
REVIEWS = "multinode_webhook_reviews"


def _samples(metrics: Metrics, family: str) -> list[Sample]:
    text = metrics.exposition().decode()
    return [s for f in text_string_to_metric_families(text) if f.name == family for s in f.samples]


def _value(metrics: Metrics, family: str, sample: str, **labels: str) -> float:
    [value] = [s.value for s in _samples(metrics, family) if (s.name, s.labels) == (sample, labels)]
    return value


@pytest.mark.parametrize(
    ("seconds", "first_bucket"),
    [
        (0.0001, "0.00025"),
        (0.00025, "0.00025"),  # a bucket counts what is less than or equal to its bound
        (0.0003, "0.0005"),
        (1.0, "1.0"),
        (1.5, "+Inf"),
    ],
)
def test_latency_lands_in_the_first_bucket_that_holds_it(seconds: float, first_bucket: str) -> None:
    metrics = Metrics()
    metrics.review("/mutate", "patched", seconds=seconds, size=10)
    buckets = [
        (s.labels["le"], s.value) for s in _samples(metrics, LATENCY) if s.name.endswith("_bucket")
    ]
    assert [le for le, _ in buckets][-1] == "+Inf"
    assert next(le for le, count in buckets if count == 1) == first_bucket
    assert [count for _, count in buckets] == sorted(count for _, count in buckets)
    assert _value(metrics, LATENCY, f"{LATENCY}_sum", endpoint="/mutate") == seconds


def test_reviews_are_counted_by_endpoint_and_decision() -> None:
    metrics = Metrics()
    for endpoint, decision in [("/mutate", "patched")] * 3 + [("/mutate/shadow", "shadow")]:
        metrics.review(endpoint, decision, seconds=0.001, size=5000)
    total = f"{REVIEWS}_total"
    assert _value(metrics, REVIEWS, total, endpoint="/mutate", decision="patched") == 3
    assert _value(metrics, REVIEWS, total, endpoint="/mutate/shadow", decision="shadow") == 1
    bucket = f"{SIZE}_bucket"
    assert _value(metrics, SIZE, bucket, endpoint="/mutate", le="4096.0") == 0
    assert _value(metrics, SIZE, bucket, endpoint="/mutate", le="16384.0") == 3
    assert _value(metrics, SIZE, f"{SIZE}_count", endpoint="/mutate") == 3


def test_the_series_alerts_count_are_there_at_zero_before_their_first_count() -> None:
    state = AppState(Settings())
    metrics = state.metrics
    for endpoint in ("/mutate", "/mutate/shadow"):
        assert (
            _value(metrics, REVIEWS, f"{REVIEWS}_total", endpoint=endpoint, decision="error") == 0
        )
    shed = "multinode_webhook_parse_shed"
    for reason in ("parse-queue-full", "parse-queue-late"):
        assert _value(metrics, shed, f"{shed}_total", reason=reason) == 0
    state.parses.close()


@pytest.mark.parametrize(("ready", "value"), [(True, 1.0), (False, 0.0)])
def test_readiness_is_a_gauge(ready: bool, value: float) -> None:
    metrics = Metrics()
    metrics.ready(ready)
    assert _value(metrics, "multinode_webhook_ready", "multinode_webhook_ready") == value
