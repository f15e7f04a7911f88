"""The benchmark scripts as a user first runs them: one that needs what this machine lacks
says so in one line, with no traceback."""

from __future__ import annotations

import os
import subprocess
import sys

from tests.support.builders import REPO


def test_the_latency_bench_without_an_api_server_says_what_it_needs() -> None:
    env = {k: v for k, v in os.environ.items() if k != "KUBEBUILDER_ASSETS"}
    done = subprocess.run(
        [sys.executable, str(REPO / "bench" / "admission_latency.py")],
        capture_output=True,
        text=True,
        check=False,
        env=env,
        cwd=REPO,
        timeout=120,
    )
    assert done.returncode == 2, done.stderr
    [line] = done.stderr.strip().splitlines()
    assert line.startswith("admission_latency: KUBEBUILDER_ASSETS must name a folder"), line
