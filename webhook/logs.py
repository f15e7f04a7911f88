"""Log lines as JSON objects or as `key=value` text, one line per record.

Ordinary records go through `logging`. The one line per admission review is written by
`ReviewLog` straight to stderr in the same format: on the pod-creation path the logging
machinery (caller lookup, record, handler lock) would cost more than the review itself.
"""

from __future__ import annotations

import datetime as dt
import logging
import sys
from typing import IO, Any

import orjson

FIELDS = "fields"
REVIEW_LOGGER = "multinode_webhook.review"


def _line(
    fmt: str, *, created: float, level: str, logger: str, msg: str, fields: dict[str, Any]
) -> str:
    time = dt.datetime.fromtimestamp(created, dt.UTC).isoformat(timespec="milliseconds")
    if fmt == "json":
        body = {"time": time, "level": level, "logger": logger, "msg": msg, **fields}
        return orjson.dumps(body, default=str).decode()
    pairs = " ".join(f"{key}={value}" for key, value in fields.items())
    return f"{time} {level.upper():7} {msg} {pairs}".rstrip()


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

    def __call__(self, fields: dict[str, Any]) -> None:
        if not self.enabled:
            return
        stream = self.stream or sys.stderr
        created = dt.datetime.now(dt.UTC).timestamp()
        stream.write(
            _line(
                self.fmt,
                created=created,
                level="info",
                logger=REVIEW_LOGGER,
                msg="review",
                fields=fields,
            )
            + "\n"
        )
        stream.flush()


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
