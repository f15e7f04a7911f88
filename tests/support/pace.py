"""How long a test may wait for work this machine does.

A test waits for events (a reply, a line, a state); a deadline is only its guard against a
hang. Those guards are written for an idle 2-core machine and scaled by how much slower this
one is now, measured once at import on a fixed piece of work, so that a loaded runner waits
longer instead of failing. MULTINODE_TEST_PACE=N sets the factor instead.
"""

from __future__ import annotations

import json
import os
import statistics
import time
from typing import Final

# The work below takes about this long on an idle 2-core development machine.
_REFERENCE_SECONDS: Final = 0.04


def _work() -> float:
    started = time.perf_counter()
    data = [{"k": i, "v": str(i) * 3} for i in range(20_000)]
    json.loads(json.dumps(data))
    sum(i * i for i in range(200_000))
    return time.perf_counter() - started


def _measured() -> float:
    return max(1.0, statistics.median(_work() for _ in range(3)) / _REFERENCE_SECONDS)


SCALE: Final = float(os.environ.get("MULTINODE_TEST_PACE") or _measured())


def patience(seconds: float) -> float:
    """A guard of `seconds` on an idle machine, on this one."""
    return seconds * SCALE
