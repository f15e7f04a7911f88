"""Log lines as JSON objects or as `key=value` text, one line per record.

Ordinary records go through `logging`. The one line per admission review is written by
`ReviewLog` straight to stderr in the same format: on the pod-creation path the logging
machinery (caller lookup, record, handler lock) would cost more than the review itself. In the
server, the review lines of one event-loop iteration leave in one write at its end: under load
that is about one write for every eight reviews (strace, 16 connections), where each line was a
system call of its own. A `logging` record written in the same iteration may come out before
review lines that preceded it; every line carries its time.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import sys
import time
from typing import IO, Any, Final

import orjson

FIELDS = "fields"
REVIEW_LOGGER = "multinode_webhook.review"
LISTENERS_LOGGER: Final = "multinode_webhook.listeners"


class _Clock:
    """RFC 3339 UTC timestamps to the millisecond, the date and time formatted once a second.

    Formatting a datetime costs more than the rest of a review's log line.
    """

    def __init__(self) -> None:
        # One attribute, so a thread never pairs one second with another's text.
        self._cached = (-1, "")

    def __call__(self, created: float) -> str:
        second = int(created)
        cached, prefix = self._cached
        if second != cached:
            prefix = dt.datetime.fromtimestamp(second, dt.UTC).strftime("%Y-%m-%dT%H:%M:%S")
            self._cached = (second, prefix)
        millis = min(int((created - second) * 1000), 999)
        return f"{prefix}.{millis:03d}+00:00"


_clock = _Clock()


def _line(
    fmt: str, *, created: float, level: str, logger: str, msg: str, fields: dict[str, Any]
) -> str:
    stamp = _clock(created)
    if fmt == "json":
        body = {"time": stamp, "level": level, "logger": logger, "msg": msg, **fields}
        return orjson.dumps(body, default=str).decode()
    pairs = " ".join(f"{key}={value}" for key, value in fields.items())
    return f"{stamp} {level.upper():7} {msg} {pairs}".rstrip()


class _Formatter(logging.Formatter):
    def __init__(self, fmt: str) -> None:
        super().__init__()
        self.fmt = fmt

    def format(self, record: logging.LogRecord) -> str:
        fields = dict(getattr(record, FIELDS, {}))
        if record.exc_info and self.fmt == "json":
            fields["error"] = self.formatException(record.exc_info)
        line = _line(
            self.fmt,
            created=record.created,
            level=record.levelname.lower(),
            logger=record.name,
            msg=record.getMessage(),
            fields=fields,
        )
        if record.exc_info and self.fmt == "text":
            line += "\n" + self.formatException(record.exc_info)
        return line


class ReviewLog:
    """Writes the per-review line, when the level lets info lines through."""

    def __init__(self, *, level: str, fmt: str, stream: IO[str] | None = None) -> None:
        self.enabled = logging.getLevelName(level.upper()) <= logging.INFO
        self.fmt = fmt
        self.stream = stream
        self._pending: list[str] = []
        self._loop: asyncio.AbstractEventLoop | None = None

    def batch(self, loop: asyncio.AbstractEventLoop) -> None:
        """From now on, write the lines of one event-loop iteration together, at its end."""
        self._loop = loop

    def __call__(self, fields: dict[str, Any]) -> None:
        if not self.enabled:
            return
        line = _line(
            self.fmt,
            created=time.time(),
            level="info",
            logger=REVIEW_LOGGER,
            msg="review",
            fields=fields,
        )
        if self._loop is None:
            self._write(line + "\n")
            return
        if not self._pending:
            self._loop.call_soon(self.flush)
        self._pending.append(line + "\n")

    def flush(self) -> None:
        """Write the lines held for the end of this iteration."""
        if self._pending:
            text = "".join(self._pending)
            self._pending.clear()
            self._write(text)

    def _write(self, text: str) -> None:
        stream = self.stream or sys.stderr
        stream.write(text)
        stream.flush()


class _Once(logging.Filter):
    """Lets each of uvicorn's lifecycle lines through once: every listener is a uvicorn server
    of its own in one process, and each would print "Started server process" again.

    Each line uvicorn logs is the listeners' and comes under their logger's name: uvicorn logs
    its start and stop lines as `uvicorn.error`, which reads as an error where there is none.
    """

    LIFECYCLE: Final = frozenset(
        {
            "Started server process [%d]",
            "Waiting for application startup.",
            "Application startup complete.",
            "Shutting down",
            "Waiting for application shutdown.",
            "Application shutdown complete.",
            "Finished server process [%d]",
        }
    )

    def __init__(self) -> None:
        super().__init__()
        self.seen: set[str] = set()

    def filter(self, record: logging.LogRecord) -> bool:
        record.name = LISTENERS_LOGGER
        if record.msg not in self.LIFECYCLE:
            return True
        line = record.getMessage()
        if line in self.seen:
            return False
        self.seen.add(line)
        return True


def configure(*, level: str, fmt: str) -> None:
    """Route every logger, uvicorn's included, to stderr in the chosen format."""
    # Records never show thread or process details: skip collecting them.
    logging.logThreads = False
    logging.logProcesses = False
    logging.logMultiprocessing = False
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_Formatter(fmt))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        logging.getLogger(name).handlers[:] = []
        logging.getLogger(name).propagate = True
    uvicorn = logging.getLogger("uvicorn.error")
    uvicorn.filters[:] = [_Once()]
