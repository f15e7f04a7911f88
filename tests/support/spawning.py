"""Faults in starting the worker processes a sandbox spawns: refused (as when the pod is out of
processes) or killed as they start (as by the OOM killer), by standing in for the spawn
context until the test's monkeypatch is undone."""

from __future__ import annotations

import errno
import multiprocessing
import os
import signal
from collections.abc import Callable
from typing import Any

import pytest


class _Faulty:
    """The spawn context, but each process's `start` is `fault(process, start)`."""

    def __init__(self, fault: Callable[[Any], None]) -> None:
        self._real = multiprocessing.get_context("spawn")
        self._fault = fault

    def __getattr__(self, name: str) -> Any:
        return getattr(self._real, name)

    def Process(self, *args: Any, **kwargs: Any) -> Any:
        process = self._real.Process(*args, **kwargs)

        def start() -> None:
            del process.start  # the process is pickled for its child: the class's start, again
            self._fault(process)

        process.start = start  # type: ignore[method-assign]
        return process


def _refuse(_: Any) -> None:
    raise OSError(errno.EAGAIN, "Resource temporarily unavailable")


def _start_and_kill(process: Any) -> None:
    process.start()
    os.kill(process.pid, signal.SIGKILL)


def _spawning(monkeypatch: pytest.MonkeyPatch, fault: Callable[[Any], None]) -> None:
    real = multiprocessing.get_context
    faulty = _Faulty(fault)
    monkeypatch.setattr(
        multiprocessing,
        "get_context",
        lambda method=None: faulty if method == "spawn" else real(method),
    )


def refuse_spawning(monkeypatch: pytest.MonkeyPatch) -> None:
    """No worker process starts."""
    _spawning(monkeypatch, _refuse)


def kill_at_start(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every worker process is killed as it starts."""
    _spawning(monkeypatch, _start_and_kill)
