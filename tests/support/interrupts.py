"""Ctrl-C and the processes it reaches, read from /proc (Linux)."""

from __future__ import annotations

import signal
from pathlib import Path


def takes_sigint(pid: int) -> bool:
    """Whether SIGINT would reach the process now: neither held back nor ignored."""
    status = Path(f"/proc/{pid}/status").read_text(encoding="ascii")
    masks = dict(line.split(":\t", 1) for line in status.splitlines() if line.startswith("Sig"))
    bit = 1 << (signal.SIGINT - 1)
    return not (int(masks["SigBlk"], 16) | int(masks["SigIgn"], 16)) & bit
