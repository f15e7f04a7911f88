"""How the reader names what it found where a Kubernetes object belongs."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from webhook.offline import documents
from webhook.offline.migrate import migrate_text
from webhook.offline.preview import preview_text


# preview reads a list's items as objects; migrate wants an object (or a List) per document.
@pytest.mark.parametrize(
    ("document", "in_preview", "in_migrate"),
    [
        ("1", "a number", "a number"),
        ("1.5", "a number", "a number"),
        ("true", "a boolean", "a boolean"),
        ("just words", "a string", "a string"),
        ("2024-01-31", "a date", "a date"),
        ("!!binary aGk=", "binary data", "binary data"),
        ("[[1]]", "a number", "a list"),
        ("[null]", "null", "a list"),
    ],
)
def test_a_value_where_an_object_belongs_is_named_in_plain_words(
    document: str, in_preview: str, in_migrate: str
) -> None:
    readers: list[tuple[Callable[..., Any], str]] = [
        (preview_text, in_preview),
        (migrate_text, in_migrate),
    ]
    for read, found in readers:
        with pytest.raises(documents.InputError) as error:
            read(document, name="<input>")
        assert str(error.value) == f"<input>: expected a Kubernetes object, found {found}"
