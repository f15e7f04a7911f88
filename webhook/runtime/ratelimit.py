"""`RateLimit`: a token bucket for what the server does on its own at a bounded rate (log
lines about refusals and errors, in the runtime and the transport alike)."""

from __future__ import annotations

import time
from typing import Any


class RateLimit:
    """At most `per_second` events a second, in bursts of up to that many; `allow` also says
    how many were refused since the last one allowed, so a log can say what it left out."""

    def __init__(self, per_second: float, *, clock: Any = time.monotonic) -> None:
        self.per_second = per_second
        self.clock = clock
        self._tokens = per_second
        self._last = clock()
        self._refused = 0

    def allow(self) -> tuple[bool, int]:
        """(allowed, events refused before this one since the last allowed)."""
        now = self.clock()
        self._tokens = min(self.per_second, self._tokens + (now - self._last) * self.per_second)
        self._last = now
        if self._tokens < 1:
            self._refused += 1
            return False, 0
        self._tokens -= 1
        refused, self._refused = self._refused, 0
        return True, refused
