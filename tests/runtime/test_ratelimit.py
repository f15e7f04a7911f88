"""The rate limit of the server's own log lines."""

from __future__ import annotations

from webhook.runtime.ratelimit import RateLimit


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_rate_limit_allows_a_burst_then_counts_what_it_refuses() -> None:
    clock = FakeClock()
    limit = RateLimit(3, clock=clock)
    assert [limit.allow() for _ in range(5)] == [
        (True, 0),
        (True, 0),
        (True, 0),
        (False, 0),
        (False, 0),
    ]
    clock.now = 1.0
    assert limit.allow() == (True, 2)
    assert limit.allow() == (True, 0)
