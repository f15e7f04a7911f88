"""Reading raw Kubernetes JSON defensively: a field of the wrong type reads as absent.

Objects are tested as `dict`, which is what every JSON and YAML parser here produces: the
`Mapping` ABC check costs several times more and this runs on every admission review.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def mapping(value: object) -> Mapping[str, Any]:
    """The value when it is an object, else an empty one."""
    return value if isinstance(value, dict) else {}


def string(value: object) -> str:
    """The value when it is a string, else the empty string."""
    return value if isinstance(value, str) else ""


def string_list(value: object) -> bool:
    """Whether the value is a list of strings (as `command` and `args` must be)."""
    return isinstance(value, list) and all(isinstance(item, str) for item in value)
