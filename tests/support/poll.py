"""Waiting for the state a test needs, instead of sleeping for it."""

from __future__ import annotations

import time
from collections.abc import Callable

import httpx

from tests.support.pace import patience


def wait(check: Callable[[], bool], what: str, seconds: float = 30) -> None:
    """Until `check()` is true (an HTTP error counts as not yet), or fail naming `what`."""
    deadline = time.monotonic() + patience(seconds)
    while time.monotonic() < deadline:
        try:
            if check():
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")
