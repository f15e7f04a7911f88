"""Ctrl-C as a terminal sends it, and the processes it reaches: a command started in a process
group of its own, the moments its start-up races the signal (its children as they appear), and
what is left of the group after. Read from /proc (Linux), so that a test waits for a state,
never for a time."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from tests.support.pace import patience


def takes_sigint(pid: int) -> bool:
    """Whether SIGINT would reach the process now: neither held back nor ignored."""
    status = Path(f"/proc/{pid}/status").read_text(encoding="ascii")
    masks = dict(line.split(":\t", 1) for line in status.splitlines() if line.startswith("Sig"))
    bit = 1 << (signal.SIGINT - 1)
    return not (int(masks["SigBlk"], 16) | int(masks["SigIgn"], 16)) & bit


@contextlib.contextmanager
def started(*args: str, stdin: int | None = None) -> Iterator[subprocess.Popen[str]]:
    """`multinode-webhook ARGS` in a process group of its own, as a terminal's foreground job;
    whatever of the group still runs after is killed, as after a test that failed first."""
    process = subprocess.Popen(
        [sys.executable, "-m", "webhook", *args],
        stdin=stdin,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        yield process
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.communicate()


def interrupted(process: subprocess.Popen[str]) -> tuple[int, str]:
    """Ctrl-C: SIGINT to the whole process group; the exit code and stderr once it ends. One
    still running long after is killed, and the test fails."""
    os.killpg(process.pid, signal.SIGINT)
    try:
        _, err = process.communicate(timeout=patience(60))
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        _, err = process.communicate()
        raise AssertionError(f"still running long after Ctrl-C; stderr:\n{err}") from None
    return process.returncode, err


def children(pid: int) -> list[int]:
    """The process's children, those of any of its threads."""
    found: list[int] = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        with contextlib.suppress(OSError):  # the thread, or the process, ended meanwhile
            found += [int(child) for child in (task / "children").read_text().split()]
    return found


def command_line(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:  # ended meanwhile
        return ""


def spawned_workers(pid: int) -> list[int]:
    """The process's children that `multiprocessing` spawned as workers (not its resource
    tracker, nor a child it forked)."""
    return [child for child in children(pid) if "spawn_main" in command_line(child)]


def until(found: Callable[[], list[int]], process: subprocess.Popen[str]) -> list[int]:
    """What `found` answers once it is not empty, asked as often as can be: the moment a
    test signals at. Fails if the process ends first."""
    deadline = time.monotonic() + patience(60)
    while not (now := found()):
        assert process.poll() is None, f"ended first:\n{process.communicate()[1]}"
        assert time.monotonic() < deadline, "timed out waiting for the process's children"
        time.sleep(0.001)
    return now


def _running_in(group: int) -> list[str]:
    running = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:  # ended meanwhile
            continue
        state, process_group = fields[0], int(fields[2])
        if process_group == group and state != "Z":  # a zombie has ended; init reaps it
            running.append(f"{stat.parent.name} {command_line(int(stat.parent.name))}")
    return running


def left_behind(group: int) -> list[str]:
    """The processes of a process group still running once its leader has ended and the
    moment has passed that its resource tracker takes to see its last user gone: empty when
    none is. Any found is killed, so as not to slow the tests after."""
    deadline = time.monotonic() + patience(30)
    while (running := _running_in(group)) and time.monotonic() < deadline:
        time.sleep(0.02)
    if running:
        os.killpg(group, signal.SIGKILL)
    return running
