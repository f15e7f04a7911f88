"""What a container's launch command receives: its argv, worked out from the parsed script.

The launch command's words are evaluated the way bash evaluates them, with the container's
`$0` and positional parameters substituted: `"$@"` gives each parameter as one word, an
unquoted `$@`, `$*` or `$0` is split at whitespace (an empty parameter vanishes), `"$*"` joins
them with spaces, and `exec $CMD` splits the string assigned to `CMD`. A `{a,b}` in literal
text is brace-expanded, as bash does before any other expansion. Every other expansion
(`${MODEL}`, `$(...)`) is shown as written: its value is known only in the running pod. An
unquoted `*`, `?` or `[` is shown as is, which is also what bash passes when nothing in the
working directory matches it. An `eval "vllm serve …"` launch is followed into its string: eval
joins its words with spaces and runs the text as a script of its own, and what it does to each
arg there (runs its `$(…)`, expands its `$VAR`, globs, braces, cuts the command line at its
`;` or `#`, strips its quotes) is told arg by arg.

It is long because it is one job, what each arg becomes through a launch command, for every
launch form (direct, `exec $CMD`, `eval`); the eval words themselves are in `evalword`.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

from tree_sitter import Node

from webhook.core import evalword
from webhook.core.bash import (
    find_launch,
    indirect_assignment,
    never_parsed,
    node_text,
    parse,
    positional,
)
from webhook.core.rewrite import split_shell

_BLANKS: Final = re.compile(r"[ \t\n]+")
_ESCAPE: Final = re.compile(r"\\(.)", re.DOTALL)
_STRING_ESCAPE: Final = re.compile(r'\\([$`"\\])')


@dataclass(frozen=True, slots=True)
class Launch:
    """The launch command of one container and the argv it is handed."""

    kind: str
    argv: tuple[str, ...]
    zero: str = ""  # the script's $0: the first word after it, when there is one
    # Whether the launch command's words read $0: when not, an arg that became $0 is dropped,
    # whatever words of the script happen to equal it.
    reads_zero: bool = False
    # Through eval: what eval does with each positional parameter ("exact", "runs a command:
    # …"), in order; None when the launch is not run through eval.
    evaluated: tuple[str, ...] | None = None


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
        # Where each parameter a quoted `"$@"` gave stands: (word index, start, end).
        self.marks: list[tuple[int, int, int]] = []
        self.read_zero = False  # a `$0` was expanded into these words

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
        for index, value in enumerate(values):
            if index:
                self.end()
            start = len(self.current or "")
            self.add(value)
            self.marks.append((len(self.words), start, start + len(value)))

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
        fields.read_zero = fields.read_zero or parameter == "0"
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


def _fields(nodes: Sequence[Node], params: _Params) -> _Fields:
    fields = _Fields()
    for node in nodes:
        braced = _braced(node, params)
        if braced is None:
            _expand(node, params, fields, quoted=False)
        else:
            fields.words.extend(braced)
        fields.end()
    return fields


_PLACEHOLDER: Final = re.compile("\x00([0-9]+)\x00")


def _brace_words(text: str) -> list[str]:
    """Bash's brace expansion of `text` (no quotes in it): the first `{…}` with a comma at its
    own depth gives a word for each part, prefixed and followed by the rest, itself expanded;
    a `{…}` without such a comma is left as written."""
    start = 0
    while (open_at := text.find("{", start)) != -1:
        depth, commas = 0, []
        for at in range(open_at, len(text)):
            if text[at] == "{":
                depth += 1
            elif text[at] == "}":
                depth -= 1
                if depth == 0:
                    break
            elif text[at] == "," and depth == 1:
                commas.append(at)
        else:
            return [text]  # no closing brace: nothing more expands
        if not commas:
            start = open_at + 1
            continue
        bounds = [open_at, *commas, at]
        parts = [text[a + 1 : b] for a, b in itertools.pairwise(bounds)]
        prefix, suffixes = text[:open_at], _brace_words(text[at + 1 :])
        return [
            prefix + word + rest
            for part in parts
            for word in _brace_words(part)
            for rest in suffixes
        ]
    return [text]


def _braced(node: Node, params: _Params) -> list[str] | None:
    """The words bash's brace expansion makes of a word of literal text and quotes, or None
    when it makes none (no `{…,…}` outside quotes, or a part it is not worked out for here)."""
    parts = node.children if node.type == "concatenation" else [node]
    skeleton: list[str] = []
    atoms: list[str] = []
    for part in parts:
        text = node_text(part)
        if part.type == "word" and "\\" not in text:
            skeleton.append(text)
        elif part.type in ("string", "raw_string") and not part.named_children[1:]:
            quoted = _Fields()
            _expand(part, params, quoted, quoted=False)
            if part.type == "string" and any(
                c.type != "string_content" for c in part.named_children
            ):
                return None  # an expansion inside the quotes: its value is the pod's
            skeleton.append(f"\x00{len(atoms)}\x00")
            atoms.append(quoted.current or "")
        else:
            return None
    joined = "".join(skeleton)
    if not _BRACES.search(_PLACEHOLDER.sub("x", joined)):
        return None
    words = [_PLACEHOLDER.sub(lambda m: atoms[int(m[1])], w) for w in _brace_words(joined)]
    return [word for word in words if word]


def _words(nodes: Sequence[Node], params: _Params) -> list[str]:
    return _fields(nodes, params).words


def _arguments(launch: Node) -> list[Node]:
    """The launch command's argument words, with those tree-sitter files under a redirection
    after it: for `cmd a > f b` bash hands `b` to `cmd`, and only `f` is the redirection's."""
    words = list(launch.children_by_field_name("argument"))
    parent = launch.parent
    if parent is None or parent.type != "redirected_statement":
        return words
    for redirect in parent.children:
        destination = redirect.child_by_field_name("destination")
        if redirect.start_byte >= launch.end_byte and destination is not None:
            words += [c for c in redirect.named_children if c.start_byte > destination.start_byte]
    return words


def launch_argv(script: str, *, zero: str, params: Sequence[str]) -> Launch | None:
    """The launch command of `script` run as `bash -c script zero *params`, or None when the
    script holds none that can be followed."""
    source = script.encode("utf-8", "surrogatepass")
    root = parse(source)
    found = find_launch(root, source) if root is not None else None
    if root is None or found is None:
        return None
    return _launch_of(root, *found, _Params(zero, tuple(params)))


def _launch_of(root: Node, launch: Node, kind: str, values: _Params) -> Launch | None:
    """What the launch command `launch` (of kind `kind`) of the tree `root` is handed, or None
    when it runs eval on text that holds none that can be followed."""
    arguments = launch.children_by_field_name("argument")
    assignment = indirect_assignment(root, launch) if kind == "exec-indirection" else None
    value = assignment[1].child_by_field_name("value") if assignment else None
    if value is not None:
        joined = _Fields()
        _expand(value, values, joined, quoted=True)  # an assignment is never split
        joined.end()
        command = [word for word in _BLANKS.split(" ".join(joined.words)) if word]
        rest = _fields(arguments[1:], values)
        reads = joined.read_zero or rest.read_zero
        return Launch(kind, (*command, *rest.words), values.zero, reads_zero=reads)
    name = launch.child_by_field_name("name")
    fields = _fields([name, *_arguments(launch)] if name is not None else [], values)
    argv = fields.words
    if argv[:1] == ["eval"]:
        return _through_eval(fields, kind=kind, params=values)
    if argv[:1] == ["exec"]:
        argv = argv[1:]
    return Launch(kind, tuple(argv), values.zero, reads_zero=fields.read_zero)


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


# What eval does with an arg, by the nodes it makes of it, most telling first.
RUNS: Final = "runs a command: eval executes the $(…) in it"
EXPANDED: Final = "expanded: eval substitutes the $… in it, its value is known only in the pod"
LOST: Final = "lost: eval stops at a syntax error, and the server does not start"
GLOB: Final = "glob: eval replaces it with the file names it matches, when any match"
BRACES: Final = "brace-expanded: eval makes a word of each part of its {…,…}"
JOINED: Final = "joined: eval makes one word of it and the arg next to it"
EMPTY: Final = "dropped: eval drops an empty arg"
BLANK: Final = "dropped: eval drops a blank arg"
COMMENT: Final = "cut: eval reads it as a comment (after a #)"
REDIRECTION: Final = "cut: eval reads it as a redirection of the server's output or input"
OWN_COMMAND: Final = "cut: eval runs it as a command of its own, after the server's"
EXACT: Final = "exact"
TILDE: Final = "tilde: eval replaces its ~… with a home directory (or $PWD), known only in the pod"
UNTOLD: Final = "re-parsed: eval reads it as shell code; what it makes of it is not worked out"
OPERATOR: Final = "cut: it ends the server's command line (eval reads it as an operator)"
_RUNS: Final = frozenset({"command_substitution", "process_substitution"})
_EXPANDS: Final = frozenset({"expansion", "simple_expansion", "arithmetic_expansion"})
_QUOTED: Final = frozenset({"string", "raw_string", "ansi_c_string", "translated_string"})
_GLOB: Final = re.compile(r"[*?\[]")
_BRACES: Final = re.compile(r"\{[^{}]*,[^{}]*\}")


def knows(verdict: str) -> bool:
    """Whether a verdict of `Launch.evaluated` tells the words eval makes of its arg, so that
    the launch's argv holds them as bash hands them over."""
    return verdict in (EXACT, EMPTY, BLANK, BRACES) or verdict.startswith(("split", "changed"))


def _through_eval(fields: _Fields, *, kind: str, params: _Params) -> Launch | None:
    """`eval WORDS…`: the launch command of the text eval makes (its words joined by spaces),
    and what eval does with each parameter, told where the parameters stand in that text."""
    pieces = fields.words[1:]
    text = " ".join(pieces)
    starts = [sum(len(p) + 1 for p in pieces[:index]) for index in range(len(pieces))]
    spans = [(starts[word - 1] + a, starts[word - 1] + b) for word, a, b in fields.marks if word]
    told = len(spans) == len(params.rest)
    if told:
        models = [evalword.words(text[a:b]) if _apart(text, a, b) else None for a, b in spans]
        modelled = _modelled(text, spans, models, kind=kind, fields=fields, params=params)
        if modelled is not None:
            return modelled
    source = text.encode("utf-8", "surrogatepass")
    root = parse(source)
    # A quote left open stops eval before it runs anything, unless a newline came first: eval
    # runs each line it has read before it reads the next. The parser may take it as closed
    # (`$'\\'`), so this is asked of the text before the parse tree is.
    lost = told and any(evalword.unclosed(text[a:b]) and "\n" not in text[a:b] for a, b in spans)
    if lost and evalword.unclosed(text):
        return Launch(kind, (), params.zero, evaluated=(LOST,) * len(spans))
    if root is None:  # eval refuses the text, unless the parser was never given it
        if not told or never_parsed(source):
            return None
        return Launch(kind, (), params.zero, evaluated=((LOST if lost else UNTOLD),) * len(spans))
    found = find_launch(root, source)
    if found is None:
        return None
    inner = _launch_of(root, *found, params)
    if inner is None:
        return None
    reads = fields.read_zero or inner.reads_zero
    if not told:
        return Launch(kind, inner.argv, params.zero, reads_zero=reads)
    # Each character's byte offset, in one pass: the tree counts bytes, the spans characters.
    offsets = list(
        itertools.accumulate((len(c.encode("utf-8", "surrogatepass")) for c in text), initial=0)
    )
    fates = tuple(
        _eval_fate(root, found[0], start=offsets[a], end=offsets[b], arg=text[a:b], params=params)
        for a, b in spans
    )
    # Words are claimed only where the model of bash's word rules made the same ones, and a
    # backslash at an arg's end quotes the blank after it, joining the next word.
    fates = tuple(
        JOINED if evalword.escapes_next(text[a:b]) else _checked(text[a:b], fate)
        for (a, b), fate in zip(spans, fates, strict=True)
    )
    return Launch(kind, inner.argv, params.zero, reads_zero=reads, evaluated=fates)


def _checked(arg: str, fate: str) -> str:
    """A verdict found from the parse tree, kept when it claims no words or the model of
    bash's word rules gives the same; else `UNTOLD`."""
    if not knows(fate) and fate != GLOB:
        return fate
    model = evalword.words(arg)
    return fate if model is not None and _told_fate(arg, model) == fate else UNTOLD


def _apart(text: str, start: int, end: int) -> bool:
    """Whether text[start:end] stands between blanks (or the ends of the text)."""
    return text[start - 1 : start] in ("", " ", "\t") and text[end : end + 1] in ("", " ", "\t")


def _modelled(
    text: str,
    spans: Sequence[tuple[int, int]],
    models: Sequence[evalword.Told | None],
    *,
    kind: str,
    fields: _Fields,
    params: _Params,
) -> Launch | None:
    """The eval launch with each arg's words as `evalword` makes them, where it makes them for
    every arg: the launch command is found in the text with a placeholder word for each arg,
    which its words then replace. None when an arg is not modelled or a placeholder is lost."""
    known = [model for model in models if model is not None]
    if len(known) != len(models):
        return None
    stem = next(f"MNW{n}A" for n in range(1000) if f"MNW{n}A" not in text)
    masked = text
    for index, (start, end) in reversed(list(enumerate(spans))):
        masked = f"{masked[:start]}{stem}{index}Z{masked[end:]}"
    source = masked.encode("utf-8", "surrogatepass")
    root = parse(source)
    found = find_launch(root, source) if root is not None else None
    inner = _launch_of(root, *found, params) if root is not None and found is not None else None
    if inner is None:
        return None
    argv: list[str] = []
    placed: list[int] = []
    for word in inner.argv:
        mark = re.fullmatch(f"{stem}([0-9]+)Z", word)
        if mark is not None:
            placed.append(int(mark[1]))
            argv.extend(known[int(mark[1])].words)
        elif stem in word:
            return None
        else:
            argv.append(word)
    if placed != list(range(len(spans))):
        return None
    fates = tuple(_told_fate(text[a:b], model) for (a, b), model in zip(spans, known, strict=True))
    reads = fields.read_zero or inner.reads_zero
    return Launch(kind, tuple(argv), params.zero, reads_zero=reads, evaluated=fates)


def _told_fate(arg: str, told: evalword.Told) -> str:
    """The verdict on an arg whose words `evalword` made."""
    if told.pending == evalword.TILDE:
        return TILDE
    if told.pending == evalword.GLOB:
        return GLOB
    if told.braced:
        return BRACES
    made = list(told.words)
    if made == [arg]:
        return EXACT
    if not made:
        return BLANK if arg else EMPTY
    if len(made) > 1 and made == arg.split():
        return f"split into {len(made)} words"
    if len(made) == 1:
        return f"changed: eval makes it {made[0]!r}"
    return f"changed: eval makes {len(made)} words of it: {made!r}"


def _below(node: Node, *, start: int, end: int) -> list[Node]:
    """`node` and its descendants that overlap [start, end)."""
    found, pending = [], [node]
    while pending:
        current = pending.pop()
        if current.start_byte < end and current.end_byte > start:
            found.append(current)
            pending.extend(current.children)
    return found


def _cut(root: Node, *, start: int, end: int) -> str:
    """What eval made of an arg that stands after the launch command's end."""
    node: Node | None = root.descendant_for_byte_range(start, end)
    while node is not None and node.type != "program":
        if node.type == "comment":
            return COMMENT
        if node.type.endswith("redirect"):
            return REDIRECTION
        if node.type == "command":
            return OWN_COMMAND
        node = node.parent
    return OPERATOR


def _eval_fate(root: Node, launch: Node, *, start: int, end: int, arg: str, params: _Params) -> str:
    """What eval does with the arg at [start, end) of its text, whose launch command is
    `launch`."""
    nodes = _arguments(launch)
    words = [word for word in nodes if word.start_byte < end and word.end_byte > start]
    if start == end and not words:
        return EMPTY
    if not words and start >= launch.end_byte:
        return _cut(root, start=start, end=end)
    if not words:
        return BLANK
    encoded = arg.encode("utf-8", "surrogatepass")
    rest = encoded[words[-1].end_byte - start :]
    if rest.strip():  # what follows its last word in the arg ends the command line
        after = words[-1].end_byte + len(rest) - len(rest.lstrip())
        return _cut(root, start=after, end=end)
    types = {node.type for word in words for node in _below(word, start=start, end=end)}
    if types & _RUNS:
        return RUNS
    if types & _EXPANDS:
        return EXPANDED
    if words[0].start_byte < start or words[-1].end_byte > end:
        return JOINED
    unquoted = [
        node
        for word in words
        for node in _below(word, start=start, end=end)
        if node.type == "word" and node.parent is not None and node.parent.type not in _QUOTED
    ]
    if any(_GLOB.search(node_text(node)) for node in unquoted):
        return GLOB
    if any(_braced(word, params) is not None for word in words):  # as the argv shows them
        return BRACES
    made = _words(words, params)
    if made == [arg]:
        return "exact"
    if len(made) > 1 and made == arg.split():
        return f"split into {len(made)} words"
    if len(made) == 1:
        return f"changed: eval makes it {made[0]!r}"
    return f"changed: eval makes {len(made)} words of it: {made!r}"
