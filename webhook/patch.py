"""RFC 6902 JSON Patch operations and RFC 6901 pointers, built explicitly, never diffed."""

from __future__ import annotations

from typing import Any, NotRequired, TypedDict


class PatchOp(TypedDict):
    """One JSON Patch operation as it goes on the wire."""

    op: str
    path: str
    value: NotRequired[Any]


def escape(token: str | int) -> str:
    """One reference token: `~` and `/` escaped, in that order (RFC 6901 §4)."""
    return str(token).replace("~", "~0").replace("/", "~1")


def pointer(*tokens: str | int) -> str:
    """A JSON pointer from unescaped tokens."""
    return "".join("/" + escape(token) for token in tokens)


def replace(path: str, value: Any) -> PatchOp:
    return {"op": "replace", "path": path, "value": value}


def add(path: str, value: Any) -> PatchOp:
    return {"op": "add", "path": path, "value": value}


def remove(path: str) -> PatchOp:
    return {"op": "remove", "path": path}
