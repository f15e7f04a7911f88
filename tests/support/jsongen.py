"""Generated JSON for the tests that throw bodies at admission: any JSON value, and a document
with one field set or removed."""

from __future__ import annotations

import copy
from typing import Any

from hypothesis import strategies as st

# Fields of an AdmissionReview: every one admission reads, and some it does not, down to a
# container's.
REVIEW_PATHS: list[tuple[str | int, ...]] = [
    ("apiVersion",),
    ("kind",),
    ("request",),
    ("request", "uid"),
    ("request", "kind"),
    ("request", "operation"),
    ("request", "namespace"),
    ("request", "name"),
    ("request", "dryRun"),
    ("request", "object"),
    ("request", "object", "metadata"),
    ("request", "object", "metadata", "name"),
    ("request", "object", "metadata", "labels"),
    ("request", "object", "metadata", "annotations"),
    ("request", "object", "metadata", "managedFields"),
    ("request", "object", "spec"),
    ("request", "object", "spec", "containers"),
    ("request", "object", "spec", "containers", 0),
    ("request", "object", "spec", "containers", 0, "name"),
    ("request", "object", "spec", "containers", 0, "command"),
    ("request", "object", "spec", "containers", 0, "args"),
    ("request", "object", "spec", "containers", 0, "env"),
    ("request", "object", "spec", "volumes"),
    ("request", "unknown"),
]


def json_values(*, text: int, keys: int, leaves: int) -> st.SearchStrategy[Any]:
    """Any JSON value: strings up to `text` characters, object keys up to `keys`, at most
    `leaves` scalars."""
    scalars = (
        st.none()
        | st.booleans()
        | st.integers()
        | st.floats(allow_nan=False)
        | st.text(max_size=text)
    )
    return st.recursive(
        scalars,
        lambda inner: (
            st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=keys), inner, max_size=4)
        ),
        max_leaves=leaves,
    )


def with_field(
    document: Any, path: tuple[str | int, ...], value: Any = None, *, remove: bool = False
) -> Any:
    """A copy of `document` with the field at `path` set to `value` (or removed); unchanged
    when the path does not lead into an object or list."""
    document = copy.deepcopy(document)
    target = document
    for key in path[:-1]:
        try:
            target = target[key]
        except (KeyError, IndexError, TypeError):
            return document
    if not isinstance(target, dict | list):
        return document
    if remove:
        if isinstance(target, dict):
            target.pop(path[-1], None)
        return document
    if isinstance(target, list) and not (isinstance(path[-1], int) and path[-1] < len(target)):
        return document
    target[path[-1]] = value  # type: ignore[index]
    return document
