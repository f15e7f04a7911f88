"""Suite-wide settings.

- Hypothesis profiles: `default` (200 examples, new ones each run), `ci` (the same, derandomized:
  every run draws the same examples; chosen under CI) and `long` (HYPOTHESIS_PROFILE=long, a
  deep random run).
- The shared fixture corpus is required under CI, or with REQUIRE_CORPUS=1: without it the run
  stops at once with one line, rather than passing on the hundreds of tests it skips. A bare
  clone elsewhere skips those tests, saying why.
"""

from __future__ import annotations

import os

import pytest
from hypothesis import HealthCheck, settings

from tests.support import kserve

settings.register_profile(
    "default", max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
settings.register_profile(
    "ci",
    max_examples=200,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.register_profile(
    "long", max_examples=20_000, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
PROFILE = os.environ.get("HYPOTHESIS_PROFILE") or ("ci" if os.environ.get("CI") else "default")
settings.load_profile(PROFILE)


def pytest_report_header() -> str:
    drawn = "the same examples every run" if settings().derandomize else "new examples each run"
    return f"hypothesis profile {PROFILE}: {settings().max_examples} examples, {drawn}"


def pytest_sessionstart(session: pytest.Session) -> None:
    required = os.environ.get("CI") or os.environ.get("REQUIRE_CORPUS")
    if required and not kserve.CORPUS.is_dir():
        pytest.exit(
            f"the shared runtime corpus is required here (CI or REQUIRE_CORPUS) and is missing: "
            f"{kserve.CORPUS}",
            returncode=1,
        )
