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

import dataclasses
import itertools
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

from tree_sitter import Node

from webhook.core import evalword, varrefs
from webhook.core.bash import (
    find_launch,
    indirect_assignment,
    never_parsed,
    node_text,
    parse,
    positional,
)
from webhook.core.raw import items
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
    # Otherwise: whether the launch command's words hold anything of each positional
    # parameter, told by where each lands, not by its text; None when not worked out.
    read: tuple[bool, ...] | None = None


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
    env = varrefs.written_env(container)
    command = [varrefs.expand(str(word), env).text for word in items(container.get("command"))]
    written = [str(word) for word in items(container.get("args"))]
    given = [varrefs.expand(word, env) for word in written]
    args = [word.text for word in given]
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
    launch = launch_argv(script, zero=zero, params=rest[1:])
    if launch is None:
        return None
    # eval reads the values of the env's variables it expands as shell code too: one that
    # may end the line or run into the args leaves every arg unchecked, before and after
    # admission alike.
    if launch.kind.startswith("eval") and not all(
        _plain(name, env) for name in _VARIABLE.findall(script)
    ):
        return dataclasses.replace(launch, evaluated=(UNCHECKED,) * len(rest[1:]))
    if launch.evaluated is None:
        # The same launch handed a mark for each parameter shows which of them it reads.
        stem = _stem(" ".join(words))
        marks = [f"{stem}{index}Z" for index in range(len(rest[1:]))]
        probe = launch_argv(script, zero=zero, params=marks)
        read = None if probe is None else tuple(any(m in w for w in probe.argv) for m in marks)
        # A parameter read in a way not followed here (`${@:2}`, `$1`, an array) shows its
        # mark as written: none is known to be dropped then.
        if read is not None and not all(read) and _READS_PARAMS.search(script):
            read = None
        # A $0 the script reads before its launch command (`set -- "$0" "$@"`) may reach it.
        reads_zero = launch.reads_zero or _READS_ZERO.search(script) is not None
        return dataclasses.replace(launch, read=read, reads_zero=reads_zero)
    # What eval makes of an arg whose text only the pod knows is not worked out here; one the
    # kubelet changed does not arrive as written, even where eval leaves it.
    first = len(given) - len(launch.evaluated)  # the params are the args' last ones
    fates = [
        UNTOLD
        if word.pod_only
        else (f"{KUBELET_CHANGED}{word.text!r}" if fate == EXACT and word.text != arg else fate)
        for word, arg, fate in zip(given[first:], written[first:], launch.evaluated, strict=True)
    ]
    return dataclasses.replace(launch, evaluated=_past_untold(fates))


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
# Followed by the word's repr: an arg the kubelet changed (`$$`, a `$(VAR)` of the env) and
# eval then left as it was.
KUBELET_CHANGED: Final = "changed: the kubelet makes it "
TILDE: Final = "tilde: eval replaces its ~… with a home directory (or $PWD), known only in the pod"
UNTOLD: Final = "re-parsed: eval reads it as shell code; what it makes of it is not worked out"
UNCHECKED: Final = (
    "unchecked: eval reads an operator on the line (in the args, or in a value of the env),"
    " which may end it or keep the server from starting"
)
OPERATOR: Final = "cut: it ends the server's command line (eval reads it as an operator)"
_RUNS: Final = frozenset({"command_substitution", "process_substitution"})
_EXPANDS: Final = frozenset({"expansion", "simple_expansion", "arithmetic_expansion"})
_QUOTED: Final = frozenset({"string", "raw_string", "ansi_c_string", "translated_string"})
_GLOB: Final = re.compile(r"[*?\[]")
# A script's reads of its positional parameters, in any form.
_READS_PARAMS: Final = re.compile(r"\$(\{[!#]?)?[0-9@*#]|\$\{!|BASH_ARGV")
_READS_ZERO: Final = re.compile(r"\$\{?0(?![0-9])|BASH_ARGV0")
# The variables a script expands (`$NAME`, `${NAME…}`).
_VARIABLE: Final = re.compile(r"\$\{?([A-Za-z_][A-Za-z0-9_]*)")
# Verdicts that say what bash makes of the arg's own word, beyond those `knows` names.
_CLAIMS_WORDS: Final = frozenset({GLOB, TILDE, EXPANDED, RUNS})
# A `${…}` bash takes: a parameter (with `#` or `!` before it), an index, then its end or an
# operator. Anything else is a "bad substitution" that stops the command before it runs.
_PARAMETER_EXPANSION: Final = re.compile(
    r"\$\{[#!]?([A-Za-z_][A-Za-z0-9_]*|[0-9]+|[@*#?$!-])(\[[^\]]*\])?[}:#%/^,@=?+-]"
)
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
    models: list[evalword.Told | None] = []
    if told:
        models = [evalword.words(text[a:b]) if _apart(text, a, b) else None for a, b in spans]
        modelled = _modelled(text, spans, models, kind=kind, fields=fields, params=params)
        if modelled is not None:
            return modelled
    source = text.encode("utf-8", "surrogatepass")
    root = parse(source)
    # A quote left open stops eval before it runs anything when the text is one line: eval
    # runs each line it has read before it reads the next, and a backquote's text is parsed
    # only once it runs. The parser may take the quote as closed (`$'\\'`), so this is asked
    # of the text before the parse tree is; with more lines, what runs is not worked out.
    if told and evalword.unclosed(text):
        one_line = evalword.one_line(text)
        fate = LOST if one_line and any(evalword.unclosed(text[a:b]) for a, b in spans) else UNTOLD
        return Launch(kind, (), params.zero, evaluated=(fate,) * len(spans))
    if root is None:  # eval refuses the text, unless the parser was never given it
        if not told or never_parsed(source):
            return None
        return Launch(kind, (), params.zero, evaluated=(UNTOLD,) * len(spans))
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
    args = [text[a:b] for a, b in spans]
    if any(evalword.unclosed(arg) or evalword.operates(arg) for arg in args):
        # Past the launch command bash must take the rest of the line, or it runs none of it;
        # what is there is not checked here, so no arg's words are claimed.
        fates = tuple(
            UNCHECKED if _claims_words(fate) or fate == JOINED else fate for fate in fates
        )
        return Launch(kind, inner.argv, params.zero, reads_zero=reads, evaluated=fates)
    # A backslash at an arg's end quotes the blank after it: the next arg joins its word,
    # whatever the parse tree made of the two.
    escapes = [evalword.escapes_next(arg) for arg in args]
    fates = tuple(
        JOINED
        if escapes[index] or (index and escapes[index - 1])
        else _checked(arg, fate, model=model)
        for index, (arg, fate, model) in enumerate(zip(args, fates, models, strict=True))
    )
    return Launch(kind, inner.argv, params.zero, reads_zero=reads, evaluated=_past_untold(fates))


def _claims_words(verdict: str) -> bool:
    """Whether a verdict says what bash makes of the arg's own word."""
    return knows(verdict) or verdict in _CLAIMS_WORDS


def _past_untold(fates: Sequence[str]) -> tuple[str, ...]:
    """The verdicts, none worked out past an arg whose own is not: it may cut the line, or
    run on into the next arg, where the parse tree saw neither."""
    untold = next((index for index, fate in enumerate(fates) if fate == UNTOLD), len(fates))
    return (*fates[:untold], *(UNTOLD,) * (len(fates) - untold))


def _checked(arg: str, fate: str, *, model: evalword.Told | None) -> str:
    """A verdict found from the parse tree of a line that holds no operator and no open
    quote: where the arg stands on it, from the tree (after the launch command, it is cut);
    what bash makes of it, from the model of bash's word rules where that tells it, else from
    the tree where it claims no words, else `UNTOLD`."""
    if fate.startswith("cut:") or fate in (LOST, EMPTY):
        return fate
    if model is not None:
        return _told_fate(arg, model)
    return UNTOLD if knows(fate) or fate == GLOB else fate


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
    stem = _stem(text)
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


def _plain(name: str, env: varrefs.WrittenEnv) -> bool:
    """Whether the env variable `name`, unset or written in the pod, holds only words bash's
    word rules model (no operator, comment, open quote or expansion)."""
    value = env.values.get(name, None if env.open else "")
    return value is not None and evalword.words(value) is not None


def _stem(text: str) -> str:
    """A word for marks (the stem, then a number and `Z`) that `text` does not hold."""
    return next(stem for n in itertools.count() if (stem := f"MNW{n}A") not in text)


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
    below = [node for word in words for node in _below(word, start=start, end=end)]
    if any(
        node.is_named
        and node_text(node).startswith("${")
        and not _PARAMETER_EXPANSION.match(node_text(node))
        for node in below
    ):
        return UNTOLD  # tree-sitter may read it as something else (`${1..3}`, braces)
    types = {node.type for node in below}
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
