"""Running the `multinode-webhook` command line as a user does: a subprocess, its output read."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests.support.pace import patience


def cli(
    *args: str,
    stdin: str | None = None,
    env: dict[str, str] | None = None,
    timeout: float = 120,
    cwd: Path | None = None,
) -> subprocess.CompletedProcess[str]:
    """`multinode-webhook ARGS` (in `cwd`), with `env` added to this process's environment."""
    return subprocess.run(
        [sys.executable, "-m", "webhook", *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=patience(timeout),
        cwd=cwd,
        check=False,
        env={**os.environ, **(env or {})},
    )


def one_line_error(done: subprocess.CompletedProcess[str]) -> str:
    """The error of a command that failed as a usage or input error: exit 2, one stderr line."""
    assert done.returncode == 2, done.stdout + done.stderr
    [line] = done.stderr.strip().splitlines()
    return line
