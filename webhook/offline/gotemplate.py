"""The subset of Go's `text/template` that KServe's LLMInferenceServiceConfig presets use: the
one template renderer of the project (the LLMInferenceService renderer and the tests use it).

KServe renders a merged config by running its JSON text as a template over the
LLMInferenceService (`ReplaceVariables`). The presets use field paths, `or`, `and`,
`if`/`else`/`end`, the `{{-`/`-}}` trimming and three functions (SOURCES.md of the corpus);
this renders exactly that, and raises on anything else so a new construct is noticed.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Final

_ACTION: Final = re.compile(r"\{\{(- )?\s*(.*?)\s*( -)?\}\}", re.DOTALL)
_TOKEN: Final = re.compile(r"`[^`]*`|\"[^\"]*\"|\S+")
Function = Callable[..., Any]


def _truth(value: Any) -> bool:
    # Go's `if`: false, 0, nil and empty values are false.
    return bool(value)


def _or(*values: Any) -> Any:
    return next((v for v in values if _truth(v)), values[-1])


def _and(*values: Any) -> Any:
    return next((v for v in values if not _truth(v)), values[-1])


# knative's kmeta.ChildName: a name past Kubernetes' 63 characters keeps a head of its parent
# and the parent's MD5 in hex, so that distinct long parents stay distinct.
_LONGEST: Final = 63
_HEAD: Final = _LONGEST - 32


def _child_name(parent: str, suffix: str) -> str:
    if len(parent) <= _LONGEST - len(suffix):
        return parent + suffix
    if _HEAD - len(suffix) <= 0:
        joined = parent[:_HEAD] + hashlib.md5((parent + suffix).encode()).hexdigest()
        return joined + suffix[: max(0, _LONGEST - len(joined))]
    return parent[: _HEAD - len(suffix)] + hashlib.md5(parent.encode()).hexdigest() + suffix


def _shutdown_timeout(spec: Mapping[str, Any] | None, prestop: int) -> int:
    grace = int((spec or {}).get("terminationGracePeriodSeconds", 60))
    return max(0, grace - prestop - min(5, grace))


def _kv_transfer_config(offloading: Mapping[str, Any] | None) -> str:
    if not offloading:
        return ""
    config = json.dumps(
        {"kv_connector": "OffloadingConnector", "kv_role": "kv_both"}, separators=(",", ":")
    )
    # Written into the config's JSON text: its quotes arrive escaped.
    return "--kv-transfer-config '" + config.replace('"', '\\"') + "'"


FUNCTIONS: Final[dict[str, Function]] = {
    "or": _or,
    "and": _and,
    "ChildName": _child_name,
    "shutdownTimeout": _shutdown_timeout,
    "kvTransferConfig": _kv_transfer_config,
}


def _value(token: str, data: Mapping[str, Any]) -> Any:
    if token.startswith("."):
        value: Any = data
        for field in token[1:].split("."):
            value = value.get(field) if isinstance(value, Mapping) else None
        return value
    if token == "nil":
        return None
    if token[0] in '`"':
        return token[1:-1]
    if token.isdigit():
        return int(token)
    raise ValueError(f"unsupported template value {token!r}")


def _evaluate(expression: str, data: Mapping[str, Any]) -> Any:
    tokens = _TOKEN.findall(expression)
    if tokens[0] in FUNCTIONS:
        return FUNCTIONS[tokens[0]](*(_value(t, data) for t in tokens[1:]))
    if len(tokens) != 1:
        raise ValueError(f"unsupported template pipeline {expression!r}")
    return _value(tokens[0], data)


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return "<no value>" if value is None else str(value)


@dataclass(frozen=True, slots=True)
class Action:
    """One `{{ … }}` of a template: its pipeline, `if …`, `else` or `end`, trimmed."""

    text: str


def pieces(template: str) -> list[str | Action]:
    """The template's literal text and actions in order, with the `{{-`/`-}}` trimming done:
    `{{- ` eats the blanks before, ` -}}` the blanks after."""
    found: list[str | tuple[str, bool, bool]] = []
    position = 0
    for match in _ACTION.finditer(template):
        found.append(template[position : match.start()])
        found.append((match.group(2), bool(match.group(1)), bool(match.group(3))))
        position = match.end()
    found.append(template[position:])
    for index, piece in enumerate(found):
        if isinstance(piece, tuple):
            _, left, right = piece
            before, after = found[index - 1], found[index + 1]
            if left and isinstance(before, str):
                found[index - 1] = before.rstrip()
            if right and isinstance(after, str):
                found[index + 1] = after.lstrip()
    return [piece if isinstance(piece, str) else Action(piece[0]) for piece in found]


def render(template: str, data: Mapping[str, Any]) -> str:
    """Run `template` over `data` as Go's text/template would, for the presets' subset."""
    out: list[str] = []
    # A stack of (this branch is taken, an earlier branch of the if was taken).
    stack: list[tuple[bool, bool]] = []
    for piece in pieces(template):
        live = all(taken for taken, _ in stack)
        if isinstance(piece, str):
            if live:
                out.append(piece)
            continue
        action = piece.text
        if action.startswith("if "):
            taken = live and _truth(_evaluate(action[3:], data))
            stack.append((taken, taken))
        elif action == "else":
            _, done = stack.pop()
            outer = all(taken for taken, _ in stack)
            stack.append((outer and not done, True))
        elif action == "end":
            stack.pop()
        elif live:
            out.append(_text(_evaluate(action, data)))
    if stack:
        raise ValueError("unterminated if in template")
    return "".join(out)
