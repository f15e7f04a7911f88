"""RFC 6902 JSON Patch operations and RFC 6901 pointers, built explicitly, never diffed.

An operation is immutable and hashable down to its value (arrays held as tuples, objects as
`JsonObject`s), so one patch can be shared by every pod that gets it and cached by its value.
`to_json` gives the wire form: fresh lists and dicts that a caller may encode, apply or change.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Literal, NamedTuple, NotRequired, TypedDict

OpName = Literal["add", "remove", "replace", "test"]


class JsonObject(tuple[tuple[str, Any], ...]):
    """A JSON object, frozen: its (key, value) pairs in order. A tuple, so hashable; a type of
    its own, so it is told apart from an array when thawed."""

    __slots__ = ()


class PatchOp(NamedTuple):
    """One operation; `value` is unused by `remove`."""

    op: OpName
    path: str
    value: Any = None


class PatchJson(TypedDict):
    """One operation as it goes on the wire."""

    op: OpName
    path: str
    value: NotRequired[Any]


def escape(token: str | int) -> str:
    """One reference token: `~` and `/` escaped, in that order (RFC 6901 §4)."""
    return str(token).replace("~", "~0").replace("/", "~1")


def pointer(*tokens: str | int) -> str:
    """A JSON pointer from unescaped tokens."""
    return "".join("/" + escape(token) for token in tokens)


def _freeze(value: Any) -> Any:
    if isinstance(value, Mapping):
        return JsonObject((key, _freeze(item)) for key, item in value.items())
    if isinstance(value, list | tuple):
        return tuple(_freeze(item) for item in value)
    return value


def _thaw(value: Any) -> Any:
    # Exact type tests, strings first: this runs on every patched review, and the ABC check
    # of `Mapping` costs more than the copy itself.
    kind = type(value)
    if kind is tuple:
        return [item if type(item) is str else _thaw(item) for item in value]
    if kind is JsonObject:
        return {key: _thaw(item) for key, item in value}
    return value


def replace(path: str, value: Any) -> PatchOp:
    return PatchOp("replace", path, _freeze(value))


def add(path: str, value: Any) -> PatchOp:
    return PatchOp("add", path, _freeze(value))


def remove(path: str) -> PatchOp:
    return PatchOp("remove", path)


def test(path: str, value: Any) -> PatchOp:
    return PatchOp("test", path, _freeze(value))


def to_json(ops: Sequence[PatchOp]) -> list[PatchJson]:
    """The operations as plain JSON values, new on every call."""
    wire: list[PatchJson] = []
    for op in ops:
        if op.op == "remove":
            wire.append({"op": op.op, "path": op.path})
        else:
            wire.append({"op": op.op, "path": op.path, "value": _thaw(op.value)})
    return wire
