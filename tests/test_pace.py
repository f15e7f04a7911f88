"""The tests' hang guards scale with the machine (tests/support/pace.py)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from tests.support.builders import REPO
from tests.support.pace import SCALE


def _patience_of_30s(pace: str | None) -> float:
    env = {k: v for k, v in os.environ.items() if k != "MULTINODE_TEST_PACE"}
    if pace is not None:
        env["MULTINODE_TEST_PACE"] = pace
    done = subprocess.run(
        [sys.executable, "-c", "from tests.support.pace import patience; print(patience(30))"],
        capture_output=True,
        text=True,
        check=True,
        cwd=REPO,
        env=env,
    )
    return float(done.stdout)


@pytest.mark.parametrize(("pace", "seconds"), [("3", 90.0), ("1", 30.0), ("0.5", 15.0)])
def test_the_pace_can_be_set(pace: str, seconds: float) -> None:
    assert _patience_of_30s(pace) == seconds


def test_a_measured_pace_never_shortens_a_guard() -> None:
    assert SCALE >= 1
    assert _patience_of_30s(None) >= 30
