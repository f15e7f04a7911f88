"""Running the `multinode-webhook` command line as a user does: a subprocess, its output read;
and `in_process`, its `main` called here, for the tables that ask many inputs one question
each (exit codes, one-line errors) and would otherwise start an interpreter for every row."""

from __future__ import annotations

import contextlib
import io
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

from tests.support.pace import patience
from webhook.cli import main


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


def in_process(
    *args: str, stdin: str = "", env: dict[str, str] | None = None, cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    """`main(ARGS)` in this process, with `stdin` as its input and `env` added to the
    environment (in `cwd`): what `cli` answers, without the process around it. The process's
    own exit (its hooks, a signal) is what `cli` is for."""
    out, err = io.StringIO(), io.StringIO()
    with (
        _recursion_limit(PYTHON_DEFAULT_RECURSION_LIMIT),
        _environment(env or {}),
        contextlib.chdir(cwd or Path.cwd()),
        contextlib.redirect_stdout(out),
        contextlib.redirect_stderr(err),
        _stdin(stdin),
    ):
        try:
            code = main(list(args))
        except SystemExit as exit_:
            code = exit_.code if isinstance(exit_.code, int) else 0 if exit_.code is None else 1
    return subprocess.CompletedProcess(list(args), code, out.getvalue(), err.getvalue())


# What a fresh interpreter allows: a test run may have raised it (Hypothesis does), and the
# readers' depth bounds are what a user's process meets first.
PYTHON_DEFAULT_RECURSION_LIMIT = 1000


@contextlib.contextmanager
def _recursion_limit(limit: int) -> Iterator[None]:
    before = sys.getrecursionlimit()
    sys.setrecursionlimit(limit)
    try:
        yield
    finally:
        sys.setrecursionlimit(before)


@contextlib.contextmanager
def _environment(added: dict[str, str]) -> Iterator[None]:
    before = {name: os.environ.get(name) for name in added}
    os.environ.update(added)
    try:
        yield
    finally:
        for name, value in before.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


@contextlib.contextmanager
def _stdin(text: str) -> Iterator[None]:
    before = sys.stdin
    # With a byte buffer under it, as a process's own stdin has.
    sys.stdin = io.TextIOWrapper(io.BytesIO(text.encode("utf-8", "surrogateescape")))
    try:
        yield
    finally:
        sys.stdin = before
