"""Log lines as JSON objects or as `key=value` text, one line per record."""

from __future__ import annotations

import datetime as dt
import logging
import sys
from typing import Any

import orjson

FIELDS = "fields"


def _base(record: logging.LogRecord) -> dict[str, Any]:
    return {
        "time": dt.datetime.fromtimestamp(record.created, dt.UTC).isoformat(
            timespec="milliseconds"
        ),
        "level": record.levelname.lower(),
        "logger": record.name,
        "msg": record.getMessage(),
    }


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        line = _base(record) | getattr(record, FIELDS, {})
        if record.exc_info:
            line["error"] = self.formatException(record.exc_info)
        return orjson.dumps(line, default=str).decode()


class TextFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        base = _base(record)
        fields = " ".join(f"{k}={v}" for k, v in getattr(record, FIELDS, {}).items())
        line = f"{base['time']} {base['level'].upper():7} {base['msg']} {fields}".rstrip()
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        return line


def configure(*, level: str, fmt: str) -> None:
    """Route every logger, uvicorn's included, to stderr in the chosen format."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        logging.getLogger(name).handlers[:] = []
        logging.getLogger(name).propagate = True
