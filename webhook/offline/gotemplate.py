"""The subset of Go's `text/template` that KServe's LLMInferenceServiceConfig presets may use:
the one template renderer of the project (the LLMInferenceService renderer, the policy's preset
compiler and the tests use it).

KServe renders a merged config by running its JSON text as a template over the
LLMInferenceService (`ReplaceVariables`). This reads the actions as Go's parser does (field
paths, string, raw string, character and number constants, `true`/`false`/`nil`, function
calls, parenthesised and `|` pipelines, `(…).Field`, `$`, comments and the `{{-`/`-}}`
trimming) and runs `if`/`else if`/`else`/`end` with Go's builtins `and`, `or` (both
short-circuit), `not`, `eq`/`ne`/`lt`/`le`/`gt`/`ge`, `len`, `index`, `slice`, `print`,
`printf` (its common verbs, with width, the `-`, `0`, `+` and space flags, and a precision for
floats and strings), `println`, and the three functions KServe's renderer registers
(`ChildName`, `shutdownTimeout`, `kvTransferConfig`). Anything else (`range`, `with`,
variables, `html`, a function nobody registers, printf's `#`, `*` or `[n]`, a byte escape past
ASCII, a hexadecimal float) raises `TemplateError` naming the action, so a new construct in a
release is noticed rather than rendered wrong; what Go's parser refuses is refused too.

Values are the service's JSON read as its Go struct (gobuiltins.py says how Go's builtins and
printing treat them). One leniency: a field
of an absent object reads as no value, where Go stops at the nil pointer; the presets of
KServe before v0.21 read `.Spec.Parallelism.DataLocal` unguarded, and are previewed for
services without parallelism all the same.

It is long because a template engine is one job: lexer, parser and evaluator read the same
nodes; Go's values and builtins are apart, in `webhook.offline.gobuiltins`.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

from webhook.offline.gobuiltins import (
    BUILTINS,
    Function,
    TemplateError,
    go_type,
    text_of,
    truth,
)

# The parsed form of an action's pipeline.


@dataclass(frozen=True, slots=True)
class Field:
    """`.A.B` (from the data; `.` alone is the data itself)."""

    path: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Constant:
    """A string, number, character, `true`, `false` or `nil` constant."""

    value: Any


@dataclass(frozen=True, slots=True)
class Call:
    """A function and its arguments (a `|` pipeline's value is the last one)."""

    name: str
    args: tuple[Node, ...]


@dataclass(frozen=True, slots=True)
class Chain:
    """`(pipeline).A.B`: fields of a parenthesised pipeline's value."""

    node: Node
    path: tuple[str, ...]


Node = Field | Constant | Call | Chain


@dataclass(frozen=True, slots=True)
class GoAction:
    """One `{{ … }}` of a template: its text (trimmed), its keyword (`if`, `else`, `else if`,
    `end`, or "" for a value) and its pipeline (None for `else` and `end`)."""

    text: str
    keyword: str
    node: Node | None


# Go's lexer: the items of an action's text.
_ITEM: Final = re.compile(
    r"""(?P<space>\s+)
      | (?P<string>"(?:[^"\\\n]|\\.)*")
      | (?P<raw>`[^`]*`)
      | (?P<char>'(?:[^'\\\n]|\\[^\n]+?)')
      | (?P<number>[+-]?(?:0[xX][0-9a-fA-F_]+|0[oO][0-7_]+|0[bB][01_]+
            |(?:[0-9][0-9_]*(?:\.[0-9_]*)?|\.[0-9][0-9_]*)(?:[eE][+-]?[0-9_]+)?))
      | (?P<field>(?:\.[A-Za-z_][A-Za-z0-9_]*)+|\.)
      | (?P<variable>\$[A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*)
      | (?P<word>[A-Za-z_][A-Za-z0-9_]*)
      | (?P<punct>[()|])
      | (?P<other>:?=|.)""",
    re.VERBOSE | re.DOTALL,
)
_ESCAPE: Final = re.compile(
    r"\\(?:([abfnrtv\\'\"])|x([0-9a-fA-F]{2})|([0-7]{3})|u([0-9a-fA-F]{4})|U([0-9a-fA-F]{8})|(.))",
    re.DOTALL,
)
# Go's `and` and `or` evaluate their arguments one at a time and return the first that decides
# (the truth that stops them), or the last: `evaluate` runs them.
_SHORT_CIRCUIT: Final = {"and": False, "or": True}
# Go's builtins this renderer leaves out: no preset escapes for HTML, JavaScript or URLs.
_GO_NOT_RENDERED: Final = frozenset({"call", "html", "js", "urlquery"})
_SIMPLE: Final = {"a": "\a", "b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t", "v": "\v"}
_ACTIONS_NOT_RENDERED: Final = frozenset(
    {"range", "with", "define", "template", "block", "break", "continue"}
)


def _unescaped(body: str, *, quote: str) -> str:
    def one(match: re.Match[str]) -> str:
        simple, hex2, octal, u4, u8, bad = match.groups()
        if simple is not None:
            if simple in "'\"" and simple != quote:
                raise TemplateError(f"unknown escape sequence \\{simple}")
            return _SIMPLE.get(simple, simple)
        if bad is not None:
            raise TemplateError(f"unknown escape sequence \\{bad}")
        # Go's \x and octal escapes write bytes: past ASCII, a byte is no character alone.
        byte = int(hex2, 16) if hex2 is not None else int(octal, 8) if octal is not None else None
        if byte is not None:
            if byte > 0x7F:
                raise TemplateError(f"a byte escape past ASCII ({match.group()}) is not supported")
            return chr(byte)
        point = int(u4 or u8, 16)
        if 0xD800 <= point <= 0xDFFF or point > 0x10FFFF:
            raise TemplateError(f"escape sequence is invalid Unicode code point {match.group()}")
        return chr(point)

    return _ESCAPE.sub(one, body)


_INTEGER: Final = re.compile(
    r"[+-]?(?:0[xX](?:_?[0-9a-fA-F])+|0[oO](?:_?[0-7])+|0[bB](?:_?[01])+|0(?:_?[0-7])*"
    r"|[1-9](?:_?[0-9])*)"
)
_DECIMALS: Final = r"[0-9](?:_?[0-9])*"
_FLOAT: Final = re.compile(
    rf"[+-]?(?:(?:{_DECIMALS})?\.(?:{_DECIMALS})?(?:[eE][+-]?{_DECIMALS})?"
    rf"|{_DECIMALS}[eE][+-]?{_DECIMALS})"
)
_INT64: Final = 1 << 63


def _number(text: str) -> int | float:
    """A number constant as Go reads it (underscores only between digits, a leading 0 for
    octal); hexadecimal floats and imaginary numbers are refused."""
    digits = text.replace("_", "")
    if _INTEGER.fullmatch(text):
        octal = re.fullmatch(r"[+-]?0[0-7]+", digits)
        whole = int(digits, 8) if octal else int(digits, 0)
        if not -_INT64 <= whole < _INT64:
            raise TemplateError(f"number {text} overflows int64")
        return whole
    if _FLOAT.fullmatch(text) and any(c.isdigit() for c in digits):
        fraction = float(digits)
        if math.isinf(fraction):
            raise TemplateError(f"number {text} overflows float64")
        return fraction
    raise TemplateError(f"bad number syntax: {text!r}")


def _tokens(text: str) -> list[tuple[str, str]]:
    """The items of an action; as in Go, two items stand apart unless a parenthesis or `|`
    is between them, or a field follows a `)`."""
    found: list[tuple[str, str]] = []
    joined = False
    for match in _ITEM.finditer(text):
        kind = match.lastgroup or "other"
        if kind == "space":
            joined = False
            continue
        item = match.group()
        if joined and found:
            before = found[-1][1]
            apart = before in "(|" or item in ")|" or (before == ")" and kind == "field")
            if not apart:
                raise TemplateError(f"unexpected {item!r} right after {before!r}")
        found.append((kind, item))
        joined = True
    return found


class _Parser:
    """Go's parse of one pipeline from the tokens of an action."""

    def __init__(self, tokens: list[tuple[str, str]]) -> None:
        self.tokens = tokens
        self.at = 0

    def peek(self) -> tuple[str, str] | None:
        return self.tokens[self.at] if self.at < len(self.tokens) else None

    def pipeline(self) -> Node:
        node = self.command(None)
        while self.peek() == ("punct", "|"):
            self.at += 1
            node = self.command(node)
        return node

    def command(self, piped: Node | None) -> Node:
        operands: list[Node | str] = []
        while (token := self.peek()) is not None and token not in (
            ("punct", ")"),
            ("punct", "|"),
        ):
            operands.append(self.operand())
        if not operands:
            raise TemplateError("missing value for command")
        head, *rest = operands
        if isinstance(head, str):
            args = [a for a in rest if not isinstance(a, str)]
            if len(args) != len(rest):
                raise TemplateError("a function name used as a value")
            return Call(head, (*args, *(() if piped is None else (piped,))))
        if rest or piped is not None:
            raise TemplateError("can't give argument to non-function")
        if head == Constant(None):
            raise TemplateError("nil is not a command")
        return head

    def operand(self) -> Node | str:
        kind, text = self.tokens[self.at]
        self.at += 1
        if kind == "punct" and text == "(":
            node = self.pipeline()
            if self.peek() != ("punct", ")"):
                raise TemplateError("unclosed left paren")
            self.at += 1
            after = self.peek()
            if after is not None and after[0] == "field" and after[1] != ".":
                self.at += 1
                return Chain(node, tuple(after[1][1:].split(".")))
            return node
        if kind == "field":
            return Field(tuple(text[1:].split(".")) if text != "." else ())
        if kind == "variable":
            if text != "$" and not text.startswith("$."):
                raise TemplateError(f"variable {text} (variables are not supported)")
            return Field(tuple(text[2:].split(".")) if text != "$" else ())
        if kind == "string":
            return Constant(_unescaped(text[1:-1], quote='"'))
        if kind == "raw":
            return Constant(text[1:-1].replace("\r", ""))
        if kind == "char":
            body = _unescaped(text[1:-1], quote="'")
            if len(body) != 1:
                raise TemplateError(f"malformed character constant {text}")
            return Constant(ord(body))
        if kind == "number":
            return Constant(_number(text))
        if kind == "word":
            if text in ("true", "false"):
                return Constant(text == "true")
            if text == "nil":
                return Constant(None)
            if text in _GO_NOT_RENDERED:
                raise TemplateError(f"the function {text!r} is not supported")
            if text not in FUNCTIONS and text not in _SHORT_CIRCUIT:
                raise TemplateError(f'function "{text}" not defined')
            return text
        raise TemplateError(f"unexpected {text!r} in command")


def parse_pipeline(text: str) -> Node:
    """The pipeline of an action's text (without its keyword). Raises `TemplateError`."""
    parser = _Parser(_tokens(text))
    node = parser.pipeline()
    if parser.peek() is not None:
        raise TemplateError(f"unexpected {parser.peek()[1]!r} in operand")  # type: ignore[index]
    return node


def _action(text: str) -> GoAction | None:
    """An action's text read: None for a comment."""
    if text.startswith("/*"):
        if not text.endswith("*/"):
            raise TemplateError("unclosed comment")
        return None
    word = re.match(r"[A-Za-z_][A-Za-z0-9_]*", text)
    keyword = word.group() if word else ""
    if keyword in ("else", "end"):
        rest = text[len(keyword) :].strip()
        if keyword == "else" and re.match(r"if(?![A-Za-z0-9_])", rest):
            return GoAction(text, "else if", parse_pipeline(rest[2:]))
        if rest:
            raise TemplateError(f"unexpected {rest!r} in {keyword}")
        return GoAction(text, keyword, None)
    if keyword == "if":
        return GoAction(text, "if", parse_pipeline(text[2:]))
    if keyword in _ACTIONS_NOT_RENDERED:
        raise TemplateError(f"the action {keyword!r} is not supported")
    return GoAction(text, "", parse_pipeline(text))


_OPEN: Final = "{{"
_BLANKS: Final = frozenset(" \t\r\n")
_CLOSE: Final = "}}"


def _scan(template: str) -> Iterator[tuple[str, str, bool, bool]]:
    """(literal text before, action text, trim before, trim after) of each action, then the
    text after the last (with an empty action text). Go's lexer: quotes inside an action may
    hold `}}`."""
    position = 0
    while (start := template.find(_OPEN, position)) >= 0:
        inner = start + len(_OPEN)
        # A trim marker is a dash and one blank, which belong to the delimiter.
        left = template[inner : inner + 1] == "-" and template[inner + 1 : inner + 2] in _BLANKS
        if left:
            inner += 2
        end = _action_end(template, inner)
        if end < 0:
            raise TemplateError(f"unclosed action at {template[start : start + 40]!r}")
        body = template[inner:end]
        right = len(body) >= 2 and body[-1] == "-" and body[-2] in _BLANKS
        if right:
            body = body[:-2]
        if not body.startswith("/*"):
            body = body.strip()
            if body.startswith("/*"):
                raise TemplateError(f"{{{{ {body} }}}}: a comment must open right after {{{{")
        yield template[position:start], body, left, right
        position = end + len(_CLOSE)
    yield template[position:], "", False, False


def _action_end(template: str, at: int) -> int:
    quote = ""
    index = at
    while index < len(template):
        char = template[index]
        if quote:
            if char == "\\" and quote != "`":
                index += 2
                continue
            if char == quote:
                quote = ""
        elif char in "\"`'":
            quote = char
        elif template.startswith(_CLOSE, index):
            return index
        elif template.startswith("/*", index):
            close = template.find("*/", index + 2)
            if close < 0:
                return -1
            index = close + 2
            continue
        index += 1
    return -1


def pieces(template: str) -> list[str | GoAction]:
    """The template's literal text and actions in order (comments dropped), with the
    `{{-`/`-}}` trimming done: `{{- ` eats the blanks before, ` -}}` the blanks after.
    Raises `TemplateError`, naming the action, for one this renderer does not know."""
    found: list[str | tuple[GoAction | None, bool, bool]] = []
    scanned = list(_scan(template))
    for text, body, left, right in scanned[:-1]:
        found.append(text)
        try:
            found.append((_action(body), left, right))
        except TemplateError as error:
            raise TemplateError(f"{{{{ {body} }}}}: {error}") from None
    found.append(scanned[-1][0])
    for index, piece in enumerate(found):
        if isinstance(piece, tuple):
            _, left, right = piece
            before, after = found[index - 1], found[index + 1]
            if left and isinstance(before, str):
                found[index - 1] = before.rstrip(" \t\r\n")
            if right and isinstance(after, str):
                found[index + 1] = after.lstrip(" \t\r\n")
    out: list[str | GoAction] = []
    for piece in found:
        if isinstance(piece, str):
            if out and isinstance(out[-1], str):
                out[-1] += piece
            else:
                out.append(piece)
        elif piece[0] is not None:
            out.append(piece[0])
    return out


# KServe's own functions (ReplaceVariables).

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
    **BUILTINS,
    "ChildName": _child_name,
    "shutdownTimeout": _shutdown_timeout,
    "kvTransferConfig": _kv_transfer_config,
}


def _walk(value: Any, path: Sequence[str]) -> Any:
    for name in path:
        if value is None:
            return None
        if not isinstance(value, Mapping):
            raise TemplateError(f"can't evaluate field {name} in type {go_type(value)}")
        value = value.get(name)
    return value


def evaluate(node: Node, data: Mapping[str, Any]) -> Any:
    """The value of a parsed pipeline over `data`. Raises `TemplateError`."""
    if isinstance(node, Field):
        return _walk(data, node.path)
    if isinstance(node, Constant):
        return node.value
    if isinstance(node, Chain):
        return _walk(evaluate(node.node, data), node.path)
    if not node.args and node.name in _SHORT_CIRCUIT:
        raise TemplateError(f"wrong number of args for {node.name}: want at least 1 got 0")
    if node.name in _SHORT_CIRCUIT:
        stop = _SHORT_CIRCUIT[node.name]
        value = None
        for arg in node.args:
            value = evaluate(arg, data)
            if truth(value) == stop:
                break
        return value
    args = [evaluate(arg, data) for arg in node.args]
    try:
        return FUNCTIONS[node.name](*args)
    except TypeError:
        raise TemplateError(f"wrong number or type of args for {node.name}") from None
    except (ValueError, KeyError, AttributeError) as error:
        if isinstance(error, TemplateError):
            raise
        raise TemplateError(f"error calling {node.name}: {error}") from None


def render(template: str, data: Mapping[str, Any]) -> str:
    """Run `template` over `data` as Go's text/template would, for the subset above. Raises
    `TemplateError` naming the action that failed."""
    out: list[str] = []
    # A stack of (this branch is taken, an earlier branch of the if was taken, its `else`
    # was met).
    stack: list[tuple[bool, bool, bool]] = []
    for piece in pieces(template):
        live = all(taken for taken, _, _ in stack)
        if isinstance(piece, str):
            if live:
                out.append(piece)
            continue
        try:
            if piece.keyword == "if":
                taken = live and truth(evaluate(piece.node, data))  # type: ignore[arg-type]
                stack.append((taken, taken, False))
            elif piece.keyword in ("else", "else if"):
                if not stack or stack[-1][2]:
                    raise TemplateError("unexpected else")
                _, done, _ = stack.pop()
                outer = all(taken for taken, _, _ in stack)
                taken = outer and not done
                if taken and piece.keyword == "else if":
                    taken = truth(evaluate(piece.node, data))  # type: ignore[arg-type]
                stack.append((taken, done or taken, piece.keyword == "else"))
            elif piece.keyword == "end":
                if not stack:
                    raise TemplateError("unexpected end")
                stack.pop()
            elif live:
                out.append(text_of(evaluate(piece.node, data)))  # type: ignore[arg-type]
        except TemplateError as error:
            raise TemplateError(f"{{{{ {piece.text} }}}}: {error}") from None
    if stack:
        raise TemplateError("unterminated if in template")
    return "".join(out)
