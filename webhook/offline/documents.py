"""Text to Kubernetes objects and back: JSON or (multi-document) YAML in, readable YAML out."""

from __future__ import annotations

import json
import re
from typing import Any, Final

import yaml

_SAFE_LOADER: Final = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_DOCUMENT_MARKER: Final = re.compile(r"^---[ \t]*(?:#.*)?\n", re.MULTILINE)


class InputError(ValueError):
    """The input is not JSON or YAML holding Kubernetes objects; the message is one line."""


def _one_line(error: Exception) -> str:
    return " ".join(str(error).split())


def load(text: str, *, allow_aliases: bool = True) -> list[Any]:
    """Every non-empty document of a JSON text or a YAML stream.

    A server reading untrusted YAML passes `allow_aliases=False`: a few aliases can stand
    for a structure far larger than the text (the "billion laughs").
    """
    stripped = text.lstrip()
    try:
        if stripped.startswith(("{", "[")):
            try:
                return [json.loads(text)]
            except ValueError as error:
                if stripped.startswith("{"):
                    raise InputError(f"invalid JSON: {_one_line(error)}") from None
        if not allow_aliases and any(
            isinstance(event, yaml.AliasEvent) for event in yaml.parse(text, Loader=_SAFE_LOADER)
        ):
            raise InputError("YAML aliases (*name) are not accepted here")
        documents = list(yaml.load_all(text, Loader=_SAFE_LOADER))
    except yaml.YAMLError as error:
        raise InputError(f"invalid YAML: {_one_line(error)}") from None
    except RecursionError:
        raise InputError("input is nested too deeply") from None
    return [document for document in documents if document is not None]


def split(text: str) -> list[tuple[str, str]]:
    """A YAML stream cut at its `---` lines: (marker line or "", document text) pairs.

    Joining every pair gives the text back exactly, so unchanged documents can be re-emitted as
    they were written.
    """
    pieces: list[tuple[str, str]] = []
    marker, start = "", 0
    for match in _DOCUMENT_MARKER.finditer(text):
        pieces.append((marker, text[start : match.start()]))
        marker, start = match.group(0), match.end()
    pieces.append((marker, text[start:]))
    return [(m, body) for m, body in pieces if m or body]


def load_one(text: str) -> Any:
    """The single document of one piece of `split`, or None for an empty one."""
    try:
        return yaml.load(text, Loader=_SAFE_LOADER)
    except yaml.YAMLError as error:
        raise InputError(f"invalid YAML: {_one_line(error)}") from None


class _Dumper(yaml.SafeDumper):
    """Multi-line strings (scripts) as literal blocks, so diffs read line by line."""


def _string(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_Dumper.add_representer(str, _string)


def dump(document: Any) -> str:
    """YAML that keeps the keys in the object's own order."""
    return yaml.dump(document, Dumper=_Dumper, sort_keys=False, allow_unicode=True, width=120)
