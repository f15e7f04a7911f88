"""What a container's launch command receives: its argv, worked out from the parsed script.

The launch command's words are evaluated the way bash evaluates them, with the container's
`$0` and positional parameters substituted: `"$@"` gives each parameter as one word, an
unquoted `$@`, `$*` or `$0` is split at whitespace (an empty parameter vanishes), `"$*"` joins
them with spaces, and `exec $CMD` splits the string assigned to `CMD`. Every other expansion
(`${MODEL}`, `$(...)`) is shown as written: its value is known only in the running pod. An
unquoted `*`, `?` or `[` is shown as is, which is also what bash passes when nothing in the
working directory matches it. An `eval "vllm serve …"` launch is followed into its string: eval
joins its words with spaces and runs the text as a script of its own.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

from tree_sitter import Node

from webhook.core.rewrite import split_shell
from webhook.core.script import find_launch, indirect_assignment, node_text, parse, positional

_BLANKS: Final = re.compile(r"[ \t\n]+")
_ESCAPE: Final = re.compile(r"\\(.)", re.DOTALL)
_STRING_ESCAPE: Final = re.compile(r'\\([$`"\\])')


@dataclass(frozen=True, slots=True)
class Launch:
    """The launch command of one container and the argv it is handed."""

    kind: str
    argv: tuple[str, ...]
    zero: str = ""  # the script's $0: the first word after it, when there is one


@dataclass(frozen=True, slots=True)
class _Params:
    zero: str
    rest: tuple[str, ...]


def _parameter(node: Node) -> str | None:
    """ "0", "@" or "*" when the expansion only reads that parameter."""
    found = positional(node)
    return found if found in ("0", "@", "*") else None


class _Fields:
    """The words one shell word expands to, built piece by piece."""

    def __init__(self) -> None:
        self.words: list[str] = []
        self.current: str | None = None  # None: nothing yet, so no word

    def add(self, text: str) -> None:
        self.current = (self.current or "") + text

    def split(self, value: str) -> None:
        """An unquoted expansion: split at blanks, joined to what stands on either side."""
        pieces = _BLANKS.split(value)
        if len(pieces) == 1:
            if pieces[0]:
                self.add(pieces[0])
            return
        first, *middle, last = pieces
        if first:
            self.add(first)
        self.end()
        self.words.extend(piece for piece in middle if piece)
        if last:
            self.add(last)

    def exact(self, values: Sequence[str]) -> None:
        """A quoted `"$@"`: every parameter one word; the first and last join their sides."""
        if not values:
            return
        first, *others = values
        self.add(first)
        for value in others:
            self.end()
            self.add(value)

    def end(self) -> None:
        if self.current is not None:
            self.words.append(self.current)
        self.current = None


def _quoted_text(fields: _Fields, text: str) -> None:
    """Literal text between double quotes: `\\` newline vanishes, `\\` keeps only `$`, `` ` ``,
    `"` and itself."""
    fields.add(_STRING_ESCAPE.sub(r"\1", text.replace("\\\n", "")))


def _expand(node: Node, params: _Params, fields: _Fields, *, quoted: bool) -> None:
    kind = node.type
    parameter = _parameter(node)
    if parameter is not None:
        if parameter == "0" and quoted:
            fields.add(params.zero)
        elif parameter == "0":
            fields.split(params.zero)
        elif parameter == "@" and quoted:
            fields.exact(params.rest)
        elif quoted:
            fields.add(" ".join(params.rest))
        else:
            for value in params.rest:
                fields.split(value)
                fields.end()
        return
    if kind == "string":
        named = node.named_children
        if len(named) == 1 and _parameter(named[0]) == "@" and len(node.children) == 3:
            fields.exact(params.rest)  # "$@" alone: no word at all when there are no args
            return
        fields.add("")  # any other "..." is a word, even when empty
        whole = node.text or b""
        end = node.start_byte + 1
        for child in node.children[1:-1]:
            # tree-sitter leaves some blanks out of every child, or inside an expansion's node.
            gap = whole[end - node.start_byte : child.start_byte - node.start_byte]
            text = node_text(child)
            end = child.end_byte
            if child.type == "string_content":
                _quoted_text(fields, gap.decode("utf-8", "surrogatepass") + text)
                continue
            lead = len(text) - len(text.lstrip())
            _quoted_text(fields, gap.decode("utf-8", "surrogatepass") + text[:lead])
            _expand(child, params, fields, quoted=True)
        return
    if kind == "raw_string":
        fields.add(node_text(node)[1:-1])
        return
    if kind == "concatenation":
        for child in node.children:
            _expand(child, params, fields, quoted=quoted)
        return
    if kind == "word" and not quoted:
        fields.add(_ESCAPE.sub(r"\1", node_text(node)))
        return
    fields.add(node_text(node))  # other expansions and substitutions: as written


def _words(nodes: Sequence[Node], params: _Params) -> list[str]:
    fields = _Fields()
    for node in nodes:
        _expand(node, params, fields, quoted=False)
        fields.end()
    return fields.words


def launch_argv(script: str, *, zero: str, params: Sequence[str]) -> Launch | None:
    """The launch command of `script` run as `bash -c script zero *params`, or None when the
    script holds none that can be followed."""
    source = script.encode("utf-8", "surrogatepass")
    root = parse(source)
    found = find_launch(root, source) if root is not None else None
    if root is None or found is None:
        return None
    launch, kind = found
    values = _Params(zero, tuple(params))
    arguments = launch.children_by_field_name("argument")
    assignment = indirect_assignment(root, launch) if kind == "exec-indirection" else None
    value = assignment[1].child_by_field_name("value") if assignment else None
    if value is not None:
        joined = _Fields()
        _expand(value, values, joined, quoted=True)  # an assignment is never split
        joined.end()
        command = [word for word in _BLANKS.split(" ".join(joined.words)) if word]
        return Launch(kind, (*command, *_words(arguments[1:], values)), zero)
    name = launch.child_by_field_name("name")
    argv = _words([name, *arguments] if name is not None else [], values)
    if argv[:1] == ["eval"]:
        inner = launch_argv(" ".join(argv[1:]), zero=zero, params=params)
        return None if inner is None else Launch(kind, inner.argv, zero)
    if argv[:1] == ["exec"]:
        argv = argv[1:]
    return Launch(kind, tuple(argv), zero)


def container_launch(container: Mapping[str, Any]) -> Launch | None:
    """What a container's launch command receives: from its script when it runs one with bash
    or sh, else its command and args themselves; None when neither can be told."""
    command = [str(word) for word in container.get("command") or []]
    args = [str(word) for word in container.get("args") or []]
    if not command:
        return None
    split = split_shell(command)
    if split is None:  # no shell: the kubelet execs command + args as they are
        return Launch(command[0].rsplit("/", 1)[-1], (*command, *args))
    shell, tail = split
    words = [*tail, *args]
    if not words:
        return None
    script, *rest = words
    zero = rest[0] if rest else shell[0].rsplit("/", 1)[-1]
    return launch_argv(script, zero=zero, params=rest[1:])
