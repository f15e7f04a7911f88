"""Reading raw Kubernetes JSON defensively: a field of the wrong type reads as absent.

Objects are tested as `dict`, which is what every JSON and YAML parser here produces: the
`Mapping` ABC check costs several times more and this runs on every admission review.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Final


def mapping(value: object) -> Mapping[str, Any]:
    """The value when it is an object, else an empty one."""
    return value if isinstance(value, dict) else {}


def string(value: object) -> str:
    """The value when it is a string, else the empty string."""
    return value if isinstance(value, str) else ""


def items(value: object) -> list[Any]:
    """The value when it is a list, else an empty one."""
    return value if isinstance(value, list) else []


def is_string_list(value: object) -> bool:
    """Whether the value is a list of strings (as `command` and `args` must be)."""
    return isinstance(value, list) and all(isinstance(item, str) for item in value)


def text(value: object) -> str | None:
    """None stays None, a string stays itself, any other JSON value becomes its text."""
    return value if value is None or isinstance(value, str) else str(value)


def at(value: object, path: Sequence[str]) -> Any:
    """The value at a path of keys through nested objects; None when a step is missing or
    not an object."""
    for key in path:
        value = mapping(value).get(key)
    return value


def display_name(obj: Mapping[str, Any]) -> str:
    """An object's name for people: `metadata.name`, else its `generateName`, else empty."""
    metadata = mapping(obj.get("metadata"))
    return string(metadata.get("name")) or string(metadata.get("generateName"))


NO_NAME: Final = "(no name)"


def shown_name(obj: Mapping[str, Any]) -> str:
    """`display_name` for a message: `(no name)` rather than nothing, so a line never reads
    `Pod : skipped`."""
    return display_name(obj) or NO_NAME


def label_pair(pair: str) -> tuple[str, str]:
    """`KEY=VALUE` as (key, value); ValueError naming the text when it is not of that form."""
    key, sep, value = pair.partition("=")
    if not sep or not key:
        raise ValueError(f"expected KEY=VALUE, got {pair!r}")
    return key, value
