"""The script edits of DESIGN §3: MODEL defaulting and exact forwarding at the launch command.

The script is parsed with tree-sitter-bash (`webhook.core.bash`), so the launch command is found
as a simple command (never inside a string, a heredoc or a command substitution) and the
positional parameters are found as expansions, wherever they stand. A command whose words are an
array's (`args=(python3 -m sglang.launch_server …); exec "${args[@]}" "$@"`) is a launch command
when the array's are. The launch command must end up forwarding the args with exactly one
quoted `"$@"`:

- nothing forwarded: ` "$@"` is added after its last word, past `\\` continuations, before
  redirections, pipes, `&&`, `;` and comments (`forward-args`);
- a lossy form (`$0`, unquoted `$@`, `$*`, `${@}`, `"$*"`, or `$0 $@` inside a `CMD="..."`
  string run by `exec $CMD`) is replaced by it (`exact-args`);
- a script that reads its args elsewhere (`$1`, `"${@:2}"`, `X=("$@")`) is left to do so.

A launch command inside a function, a positional parameter inside one of its words, or a
`shift` or `set -- …` that may run before it (the launch's `$@` is then not the script's args)
cannot be placed safely, and the script is left alone with the reason. Everything else in the script
is kept byte for byte. A script the parser is never given (`webhook.core.bash.never_parsed`) is
left alone as `unsupported-characters`.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Final

from tree_sitter import Node

from webhook.core.bash import (
    EVAL,
    FORWARDS_LIMIT,
    MODEL_BLOCKS,
    Tree,
    cursor,
    holding,
    indirect_assignment,
    never_parsed,
    node_text,
    parse,
    positional,
    word_form,
)
from webhook.core.names import Reason, Rule

_FORWARD: Final = ' "$@"'
_ALL_QUOTED: Final = '"$@"'
# Inside an eval's double-quoted string: what makes eval itself see `"$@"`.
_EVAL_ALL_QUOTED: Final = r"\"\$@\""
# What ends a command inside an eval's string, or sends its output elsewhere.
_EVAL_SEPARATORS: Final = re.compile(rb"[;&|#\n]")
MODEL_LINE: Final = "export MODEL=${MODEL_DIR:-$MODEL_ID}"

_UNSUPPORTED_DETAIL: Final = "the script has a character above U+FFFF, never parsed"
_MODEL_ID: Final = r"(?:\$\{MODEL_ID\}|\$MODEL_ID)"
_MODEL_DIR: Final = r"(?:\$\{MODEL_DIR\}|\$MODEL_DIR)"
_EXPORT_MODEL: Final = re.compile(rf"export[ \t]+MODEL={_MODEL_ID}")
_IF_MODEL_DIR: Final = re.compile(
    rf"if[ \t]+\[\[[ \t]+![ \t]+-z[ \t]+{_MODEL_DIR}[ \t]+\]\]"
    r"(?:[ \t]*;\s*|[ \t]*\n\s*)then\s+"
    rf"(?:export[ \t]+)?MODEL={_MODEL_DIR}[ \t]*(?:;[ \t]*|\n\s*)fi"
)


@dataclass(frozen=True, slots=True)
class ScriptRewrite:
    """The outcome for one script.

    `script` is the new text (the old one when no edit applies), or None when the script must
    be left alone, with `reason` and `detail` saying why. `rules` name the edits made. `splits`
    says the old forwarding split, glob-expanded or dropped args. `worker` marks a Ray worker
    script (`ray start ... --block`).
    """

    script: str | None
    rules: tuple[Rule, ...]
    detail: str
    reason: Reason | None = None
    splits: bool = False
    worker: bool = False
    evaluated: bool = False


@dataclass(frozen=True, slots=True)
class _Edit:
    start: int
    end: int
    text: bytes
    rule: Rule


@dataclass(frozen=True, slots=True)
class _Forwarding:
    """The edits that make the launch command forward exactly, or why there are none."""

    edits: tuple[_Edit, ...] = ()
    splits: bool = False
    unplaceable: str = ""


_TOO_MANY: Final = _Forwarding(
    unplaceable=f"the launch command names its args more than {FORWARDS_LIMIT} times"
)


def _delete(source: bytes, node: Node, rule: Rule) -> _Edit:
    """Remove a word with the blanks before it."""
    start = node.start_byte
    while start > 0 and source[start - 1 : start] in (b" ", b"\t"):
        start -= 1
    return _Edit(start, node.end_byte, b"", rule)


def _indirection(tree: Tree, launch: Node) -> tuple[list[_Edit], str]:
    """For `exec $CMD`: delete the positional words from the last `CMD=...` before it."""
    found = indirect_assignment(tree.root, launch)
    if found is None:
        return [], ""
    variable, assignment = found
    source = tree.source
    expansions = tree.positionals(assignment.start_byte, assignment.end_byte)
    if expansions is None:
        return [], _TOO_MANY.unplaceable
    edits: list[_Edit] = []
    for expansion in expansions:
        param = positional(expansion)
        # Only a whole word of the string can go: `$0`, `$@`, `$*`, `${@}` between blanks.
        start = (
            expansion.start_byte + len(node_text(expansion)) - len(node_text(expansion).lstrip())
        )
        before = source[start - 1 : start]
        after = source[expansion.end_byte : expansion.end_byte + 1]
        whole = before in (b" ", b"\t", b'"') and after in (b" ", b"\t", b'"', b"\n")
        if param not in ("0", "@", "*") or not whole:
            return [], f"{node_text(expansion).strip()} inside {variable}= cannot be moved"
        edits.append(_delete(source, expansion, Rule.EXACT_ARGS))
    return edits, ""


def _dollar(source: bytes, expansion: Node) -> int:
    """Where an expansion's `$` stands: tree-sitter counts blanks before it into its node."""
    text = source[expansion.start_byte : expansion.end_byte]
    return expansion.end_byte - len(text.lstrip(b" \t\n\\"))


def _eval_forwarding(tree: Tree, launch: Node, found: Sequence[Node]) -> _Forwarding:
    """For `eval "… $@ …"`: the unquoted `$@` (or `$*`, `${@}`) inside the eval's string
    becomes `\\"\\$@\\"`, so that eval sees `"$@"`; when nothing is forwarded and the script reads
    no args, it is added before the string's closing quote."""
    source = tree.source
    words = launch.children_by_field_name("argument")
    strings = [
        part
        for word in words
        for part in ([word] if word.type != "concatenation" else word.children)
        if part.type == "string"
    ]
    spans = {(string.start_byte, string.end_byte) for string in strings}
    edits: list[_Edit] = []
    for index, expansion in enumerate(found):
        parent = expansion.parent
        inside = parent is not None and (parent.start_byte, parent.end_byte) in spans
        if positional(expansion) not in ("@", "*") or not inside:
            text = node_text(expansion).lstrip(" \t\n\\")
            return _Forwarding(unplaceable=f"{text} inside the eval string cannot be moved")
        start = _dollar(source, expansion)
        before = source[start - 1 : start]
        after = source[expansion.end_byte : expansion.end_byte + 1]
        if before not in (b" ", b"\t", b"\n", b'"') or after not in (b" ", b"\t", b"\\", b'"'):
            return _Forwarding(
                unplaceable="a positional parameter inside a word of the eval string"
            )
        if index == 0:
            edits.append(
                _Edit(start, expansion.end_byte, _EVAL_ALL_QUOTED.encode(), Rule.EXACT_ARGS)
            )
        else:
            edits.append(_delete(source, expansion, Rule.EXACT_ARGS))
    if edits:
        return _Forwarding(tuple(edits), splits=True)
    if _EVAL_ALL_QUOTED.encode() in source[launch.start_byte : launch.end_byte]:
        return _Forwarding()
    if not strings or strings[-1].end_byte != words[-1].end_byte or tree.reads_args(launch):
        return _Forwarding()
    command = source[launch.start_byte : launch.end_byte].replace(b"\\\n", b"")
    if _EVAL_SEPARATORS.search(command):
        # `"$@"` at the end of the string would go to the last of its commands.
        return _Forwarding(unplaceable="the eval string runs more than one command")
    end = strings[-1].end_byte - 1
    return _Forwarding((_Edit(end, end, b" " + _EVAL_ALL_QUOTED.encode(), Rule.FORWARD_ARGS),))


def _forwarding(tree: Tree, launch: Node, kind: str) -> _Forwarding:
    if tree.moves_args(launch):
        return _Forwarding(unplaceable="the script may shift or set its args before launching")
    # From the command's name on: `VAR=… cmd` assignments before it are not its words.
    name = launch.child_by_field_name("name")
    found = tree.positionals(name.start_byte if name else launch.start_byte, launch.end_byte)
    if found is None:
        return _TOO_MANY
    if kind.startswith(EVAL):
        return _eval_forwarding(tree, launch, found)
    array = tree.launch_array
    if array is not None and tree.positionals(array.start_byte, array.end_byte):
        return _Forwarding(unplaceable="a positional parameter inside the launch array")
    words = launch.children_by_field_name("argument")
    edits: list[_Edit] = []
    if kind == "exec-indirection":
        edits, unplaceable = _indirection(tree, launch)
        if unplaceable:
            return _Forwarding(unplaceable=unplaceable)
        words = words[1:]
    forwarding = [(word, word_form(word)) for word in holding(words, found)]
    if any(form == "embedded" for _, form in forwarding):
        return _Forwarding(unplaceable="a positional parameter inside a launch command word")
    if any(form == "reads" for _, form in forwarding):
        if edits:
            return _Forwarding(unplaceable="the launch command reads single args")
        return _Forwarding()
    splits = bool(edits) or any(form == "split" for _, form in forwarding)
    if not forwarding:
        if edits or not tree.reads_args(launch):
            rule = Rule.EXACT_ARGS if edits else Rule.FORWARD_ARGS
            edits.append(_Edit(launch.end_byte, launch.end_byte, _FORWARD.encode(), rule))
        return _Forwarding(tuple(edits), splits)
    if [form for _, form in forwarding] == ["$@"]:
        return _Forwarding(tuple(edits), splits)
    first, *others = (word for word, _ in forwarding)
    edits.append(_Edit(first.start_byte, first.end_byte, _ALL_QUOTED.encode(), Rule.EXACT_ARGS))
    edits.extend(_delete(tree.source, word, Rule.EXACT_ARGS) for word in others)
    return _Forwarding(tuple(edits), splits)


def _model_edits(tree: Tree, script: str, end: int) -> Iterator[_Edit]:
    """The MODEL blocks before byte `end`, each folded into one line."""
    if not _EXPORT_MODEL.search(script):
        return
    source = tree.source
    for _, found in cursor(MODEL_BLOCKS, 0, end).matches(tree.root):
        [node], [following] = found["export"], found["if"]
        if following.end_byte > end or not _EXPORT_MODEL.fullmatch(node_text(node)):
            continue
        between = source[node.end_byte : following.start_byte]
        if between.strip(b" \t\n;") or between.count(b";") > 1:
            continue
        if _IF_MODEL_DIR.fullmatch(node_text(following)):
            yield _Edit(
                node.start_byte, following.end_byte, MODEL_LINE.encode(), Rule.MODEL_DEFAULT
            )


def parser_failed() -> ScriptRewrite:
    """What a script that crashed the parser in a sandbox gets: left alone, with the reason."""
    return ScriptRewrite(None, (), "the bash parser crashed on the script", Reason.PARSER_FAILED)


def parse_timeout(budget: float) -> ScriptRewrite:
    """What a script whose parse overran its budget in a sandbox gets: left alone, with the
    reason."""
    detail = f"the script's parse took over its {budget:g}s budget"
    return ScriptRewrite(None, (), detail, Reason.PARSE_TIMEOUT)


def _applied(source: bytes, edits: Sequence[_Edit]) -> bytes:
    """The source with the edits made, in one pass: edits never overlap."""
    pieces: list[bytes] = []
    at = 0
    for edit in sorted(edits, key=lambda e: e.start):
        pieces += (source[at : edit.start], edit.text)
        at = edit.end
    pieces.append(source[at:])
    return b"".join(pieces)


def rewrite_script(script: str, rules: frozenset[Rule]) -> ScriptRewrite:
    """Make a launch script forward its args exactly, with the edits of `rules` only, or say
    why it cannot be. Parses in this process, every time: keeping results is the job of a
    `webhook.core.parsed.ParsedScripts` its owner hands in."""
    if never_parsed(script.encode("utf-8", "surrogatepass")):
        return ScriptRewrite(None, (), _UNSUPPORTED_DETAIL, Reason.UNSUPPORTED_CHARACTERS)
    source = script.encode("utf-8", "surrogatepass")
    root = parse(source)
    if root is None:
        return ScriptRewrite(
            None, (), "the script does not parse as bash", Reason.NO_LAUNCH_COMMAND
        )
    tree = Tree(root, source)
    found = tree.launch()
    if found is None:
        detail = "no server launch command found in the script"
        return ScriptRewrite(None, (), detail, Reason.NO_LAUNCH_COMMAND)
    launch, kind = found
    if tree.in_function(launch):
        detail = f"the launch command ({kind}) is inside a function"
        return ScriptRewrite(None, (), detail, Reason.LAUNCH_IN_FUNCTION)
    forwarding = _forwarding(tree, launch, kind)
    if forwarding.unplaceable:
        return ScriptRewrite(None, (), forwarding.unplaceable, Reason.READS_POSITIONAL_PARAMS)
    edits = [edit for edit in forwarding.edits if edit.rule in rules]
    if Rule.MODEL_DEFAULT in rules:
        edits.extend(_model_edits(tree, script, launch.start_byte))
    source = _applied(source, edits)
    applied = {edit.rule for edit in edits}
    return ScriptRewrite(
        source.decode("utf-8", "surrogatepass"),
        tuple(rule for rule in Rule if rule in applied),
        kind,
        splits=forwarding.splits,
        worker=kind == "ray start --block",
        evaluated=kind.startswith(EVAL),
    )
