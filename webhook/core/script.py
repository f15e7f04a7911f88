"""The script edits of DESIGN §3: MODEL defaulting and exact forwarding at the launch command.

The script is parsed with tree-sitter-bash, so the launch command is found as a simple command
(never inside a string, a heredoc or a command substitution) and the positional parameters are
found as expansions, wherever they stand. A command whose words are an array's
(`args=(python3 -m sglang.launch_server …); exec "${args[@]}" "$@"`) is a launch command when
the array's are. The launch command must end up forwarding the args
with exactly one quoted `"$@"`:

- nothing forwarded: ` "$@"` is added after its last word, past `\\` continuations, before
  redirections, pipes, `&&`, `;` and comments (`forward-args`);
- a lossy form (`$0`, unquoted `$@`, `$*`, `${@}`, `"$*"`, or `$0 $@` inside a `CMD="..."`
  string run by `exec $CMD`) is replaced by it (`exact-args`);
- a script that reads its args elsewhere (`$1`, `"${@:2}"`, `X=("$@")`) is left to do so.

A launch command inside a function, or a positional parameter inside one of its words, cannot
be placed safely, and the script is left alone with the reason. Everything else in the script
is kept byte for byte.

The parser is C code fed with untrusted text: a script holding a character above U+FFFF
crashes tree-sitter-bash's scanner (SIGSEGV) after `{` or `${`, so such a script is never
handed to it (`unsupported-characters`). A server must not parse even other scripts in its own
process: it has them parsed in a sandbox process and hands the results to the core
(`webhook.core.parsed`).
"""

from __future__ import annotations

import bisect
import itertools
import re
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Final

import tree_sitter_bash
from tree_sitter import Language, Node, Parser, Query, QueryCursor

from webhook.core.names import Reason, Rule

_BASH: Final = Language(tree_sitter_bash.language())
_VLLM: Final = "vllm.entrypoints"
_FORWARD: Final = ' "$@"'
_ALL_QUOTED: Final = '"$@"'
# Inside an eval's double-quoted string: what makes eval itself see `"$@"`.
_EVAL_ALL_QUOTED: Final = r"\"\$@\""
_EVAL: Final = "eval"
# The words that open an eval's string: blanks and `\` continuations between them.
_EVAL_WORDS: Final = re.compile(r"[^\s\\\"']+")
# What ends a command inside an eval's string, or sends its output elsewhere.
_EVAL_SEPARATORS: Final = re.compile(rb"[;&|#\n]")
MODEL_LINE: Final = "export MODEL=${MODEL_DIR:-$MODEL_ID}"

_PYTHON: Final = re.compile(r"python(?:3(?:\.\d+)?)?")
_EXPANSIONS: Final = frozenset({"simple_expansion", "expansion"})
# Parameters whose use means the script reads its args: $1..$9, $@, $*, $#. ($0 names the shell.)
_ARG_SPECIALS: Final = frozenset({"@", "*", "#"})
# Code points above U+FFFF: tree-sitter-bash's scanner crashes on them (a fuzz of ASCII,
# Basic Multilingual Plane, lone-surrogate and stray bytes found no other crash).
_UNSUPPORTED: Final = re.compile("[\U00010000-\U0010ffff]")
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


_PARSER: Final = Parser(_BASH)
# A parser is not safe to share between threads; parses happen only on cache misses.
_PARSE_LOCK: Final = threading.Lock()


def node_text(node: Node) -> str:
    return (node.text or b"").decode("utf-8", "surrogatepass")


# What the analysis reads of a tree, found by tree-sitter's own C matcher: a walk over every
# node in Python cost 2 to 12 times the parse itself on scripts made to be costly.
_STRUCTURE: Final = Query(
    _BASH,
    """
    (function_definition) @function
    (command_substitution) @captured
    (process_substitution) @captured
    (command) @command
    """,
)
_ASSIGNMENTS: Final = Query(_BASH, "(variable_assignment) @assignment")
_MODEL_BLOCKS: Final = Query(_BASH, "(_ (declaration_command) @export . (if_statement) @if)")
# Where a positional expansion may start: `$1`, `$@`, `${@}`, `${#@}`, `${!1}` … (the tree says
# whether one does), and those of them that may read an arg (not a plain `$0`).
_MAYBE_POSITIONAL: Final = re.compile(rb"\$(?:[0-9@*#]|\{[#!]?[0-9@*#])")
_MAYBE_READS: Final = re.compile(rb"\$(?:0[0-9]|[1-9@*#]|\{[#!]?[0-9@*#])")
# A launch command naming its args more often than this is not placed: no shipped script
# names them more than twice, and each one costs an edit.
FORWARDS_LIMIT: Final = 64
_PROGRAMS: Final = frozenset({_EVAL, "exec", "vllm", "ray"})
# `"${NAME[@]}"`: a launch command whose words are an array's (`args=(python3 -m …)`).
_ARRAY_WORD: Final = re.compile(r'"\$\{([A-Za-z_][A-Za-z0-9_]*)\[@\]\}"')
# The Python modules that serve a model: `python -m MODULE …` is a launch command.
_SERVER_MODULES: Final = ("huggingfaceserver", "sglang.launch_server")
# Builtins that set a variable named among their words.
_ARRAY_WRITERS: Final = "read|mapfile|readarray|declare|typeset|local|export|readonly|unset|eval"


def _outermost(nodes: Sequence[Node]) -> tuple[list[int], list[int]]:
    """The start and end bytes of the nodes not inside another of them, in script order."""
    starts: list[int] = []
    ends: list[int] = []
    for node in _in_order(nodes):
        if ends and node.start_byte < ends[-1]:
            continue
        starts.append(node.start_byte)
        ends.append(node.end_byte)
    return starts, ends


def _in_order(nodes: Sequence[Node]) -> list[Node]:
    """The nodes in script order: a query's captures come in an order of its own."""
    return sorted(nodes, key=lambda node: node.start_byte)


def _inside(spans: tuple[list[int], list[int]], position: int) -> bool:
    starts, ends = spans
    index = bisect.bisect_right(starts, position) - 1
    return index >= 0 and position < ends[index]


def _cursor(query: Query, start: int, end: int) -> QueryCursor:
    """A cursor over the nodes of `query` that meet these bytes."""
    cursor = QueryCursor(query)
    cursor.set_byte_range(start, end)
    return cursor


class _Tree:
    """A parsed script and the structure its analysis asks about, each found once."""

    def __init__(self, root: Node, source: bytes) -> None:
        self.root = root
        self.source = source  # the whole script: the root node may start past its first byte
        found = QueryCursor(_STRUCTURE).captures(root)
        self._functions = _outermost(found.get("function", []))
        self._captured = _outermost(found.get("captured", []))
        self._commands = _in_order(found.get("command", []))
        # The `NAME=(…)` whose words the launch command runs, when it runs an array's.
        self.launch_array: Node | None = None

    def in_function(self, node: Node) -> bool:
        return _inside(self._functions, node.start_byte)

    def launch(self) -> tuple[Node, str] | None:
        """The last simple command, outside command and process substitutions, that starts a
        server, and its kind."""
        for command in reversed(self._commands):
            name = command.child_by_field_name("name")
            if name is None or _inside(self._captured, command.start_byte):
                continue
            program = node_text(name).rsplit("/", 1)[-1]
            words = _words(command)
            kind = None
            if program in _PROGRAMS or _PYTHON.fullmatch(program):
                kind = launch_kind(words)
            if kind is None:
                kind = self._array_launch(words[1:] if words[:1] == ["exec"] else words, command)
            if kind is not None:
                return command, kind
        return None

    def _array_launch(self, words: Sequence[str], command: Node) -> str | None:
        """For `"${NAME[@]}" …` (after `exec` or not): the kind of launch NAME's words make,
        marked as an array's, or None. Only the plainest form is followed: one `NAME=(…)` in
        the whole script, and it and the command at its top level (not in a function, a
        subshell, a branch or a loop), with nothing else writing NAME."""
        array = _ARRAY_WORD.fullmatch(words[0]) if words else None
        if array is None or not _top_level(command):
            return None
        name = array.group(1)
        assignments = QueryCursor(_ASSIGNMENTS).captures(self.root).get("assignment", [])
        writes = [node for node in assignments if _assigned_name(node) == name]
        if len(writes) != 1 or self._written_by_command(name):
            return None
        [node] = writes
        value = node.child_by_field_name("value")
        if (
            value is None
            or value.type != "array"
            or node.parent is None
            or node.parent.type != "program"
            or node.start_byte >= command.start_byte
        ):
            return None
        inner = launch_kind([node_text(element) for element in value.named_children[:8]])
        if inner is None or inner.startswith((_EVAL, "exec", "ray")):
            return None
        self.launch_array = node
        return f"{inner} (array {name})"

    def _written_by_command(self, name: str) -> bool:
        """Whether a builtin that sets variables (`read -a`, `mapfile`, `declare` …) may name
        `name`: read from the text, so that no form of it is missed."""
        pattern = rf"\b(?:{_ARRAY_WRITERS})\b[^\n;&|]*\b{re.escape(name)}\b"
        return re.search(pattern.encode(), self.source) is not None

    def positionals(self, start: int, end: int) -> list[Node] | None:
        """Every positional expansion between these bytes, in script order; None when more
        than `FORWARDS_LIMIT` may stand there."""
        spots = [found.start() for found in _MAYBE_POSITIONAL.finditer(self.source, start, end)]
        if len(spots) > FORWARDS_LIMIT:
            return None
        nodes = (self._expansion_at(spot) for spot in spots)
        return [
            node
            for node in nodes
            if node is not None and start <= node.start_byte and node.end_byte <= end
        ]

    def reads_args(self, launch: Node) -> bool:
        """Whether the script reads its args outside the launch command and any function body.

        A spot that may hold such an expansion is looked up in the tree only when it stands
        outside both; past `FORWARDS_LIMIT` spots that turn out to be none, the script is taken
        to read them, as no script worth repairing holds that many."""
        looked_up = 0
        for found in _MAYBE_READS.finditer(self.source):
            spot = found.start()
            if launch.start_byte <= spot < launch.end_byte or _inside(self._functions, spot):
                continue
            node = self._expansion_at(spot)
            if node is not None and positional(node) != "0":
                return True
            looked_up += 1
            if looked_up > FORWARDS_LIMIT:
                return True
        return False

    def _expansion_at(self, spot: int) -> Node | None:
        """The positional expansion whose `$` stands at `spot`, or None."""
        node = self.root.named_descendant_for_byte_range(spot, spot + 1)
        return node if node is not None and positional(node) is not None else None


def _top_level(command: Node) -> bool:
    """Whether a command stands at the script's top level (redirections allowed)."""
    parent = command.parent
    if parent is not None and parent.type == "redirected_statement":
        parent = parent.parent
    return parent is not None and parent.type == "program"


def _assigned_name(assignment: Node) -> str:
    """The variable an assignment writes (`NAME=`, `NAME+=`, `NAME[i]=`)."""
    target = assignment.child_by_field_name("name")
    if target is not None and target.type == "subscript":
        target = target.child_by_field_name("name")
    return node_text(target) if target is not None else ""


def _words(command: Node) -> list[str]:
    name = command.child_by_field_name("name")
    if name is None:
        return []
    return [
        node_text(name),
        *(node_text(arg) for arg in command.children_by_field_name("argument")),
    ]


def launch_kind(words: list[str]) -> str | None:
    """Which kind of launch command these words are, or None when they start no server.

    `eval "vllm serve …"` is one too: its kind is the string's own, prefixed with "eval".
    """
    if words[:1] == [_EVAL] and len(words) > 1:
        opening = _EVAL_WORDS.findall(words[1][:200])
        inner = launch_kind(opening[:4])
        return None if inner in (None, "exec-indirection") else f"{_EVAL} {inner}"
    indirect = False
    if words and words[0] == "exec":
        words = words[1:]
        indirect = bool(words) and words[0].startswith("$")
    if not words:
        return None
    program = words[0].rsplit("/", 1)[-1]
    if indirect:
        return "exec-indirection"
    if _PYTHON.fullmatch(program):
        for flag, module in itertools.pairwise(words[1:]):
            if flag == "-m" and (module in _SERVER_MODULES or module.startswith(_VLLM)):
                return f"python -m {module}"
        return None
    if program == "vllm" and words[1:2] == ["serve"]:
        return "vllm serve"
    if program == "ray" and words[1:2] == ["start"] and "--block" in words:
        return "ray start --block"
    return None


def positional(node: Node) -> str | None:
    """The parameter an expansion reads when it is a positional one ("0".."9", "@", "*", "#"),
    suffixed with ":" when the expansion does more than read it (`${@:2}`, `${1:-x}`)."""
    if node.type not in _EXPANSIONS or not node.named_children:
        return None
    name = node.named_children[0]
    value = node_text(name)
    if not (
        (name.type == "special_variable_name" and value in _ARG_SPECIALS)
        or (name.type == "variable_name" and value.isdigit())
    ):
        return None
    plain = node.type == "simple_expansion" or len(node.children) == 3
    return value if plain else value + ":"


def _word_form(word: Node) -> str:
    """How a launch command word that holds a positional parameter forwards args: "$0", "$@"
    (quoted, exact), "split" (lossy), "reads" (a single parameter or slice), or "embedded" (a
    parameter inside a larger word)."""
    inner = word
    quoted = word.type == "string"
    if quoted and len(word.named_children) == 1:
        inner = word.named_children[0]
    param = positional(inner)
    if param is None:
        return "embedded"
    if param == "0":
        return "$0"
    if param == "@":
        return "$@" if quoted else "split"
    if param == "*":
        return "split"
    return "reads"


def _holding(words: Sequence[Node], found: Sequence[Node]) -> list[Node]:
    """The words, in order, that hold at least one of the expansions `found`."""
    starts = [word.start_byte for word in words]
    held: dict[int, Node] = {}
    for expansion in found:
        index = bisect.bisect_right(starts, expansion.end_byte - 1) - 1
        if index >= 0 and expansion.end_byte <= words[index].end_byte:
            held.setdefault(index, words[index])
    return [held[index] for index in sorted(held)]


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


def indirect_assignment(root: Node, launch: Node) -> tuple[str, Node] | None:
    """For `exec $CMD`: the variable's name and its last `CMD=...` before the launch command."""
    target = launch.children_by_field_name("argument")[0]
    name = next((c for c in target.named_children if c.type == "variable_name"), None)
    if name is None:
        return None
    wanted = node_text(name)
    before = _cursor(_ASSIGNMENTS, 0, launch.start_byte).captures(root).get("assignment", [])
    for node in reversed(_in_order(before)):
        variable = node.child_by_field_name("name")
        if node.start_byte < launch.start_byte and variable and node_text(variable) == wanted:
            return wanted, node
    return None


def _indirection(tree: _Tree, launch: Node) -> tuple[list[_Edit], str]:
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


def _eval_forwarding(tree: _Tree, launch: Node, found: Sequence[Node]) -> _Forwarding:
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


def _forwarding(tree: _Tree, launch: Node, kind: str) -> _Forwarding:
    # From the command's name on: `VAR=… cmd` assignments before it are not its words.
    name = launch.child_by_field_name("name")
    found = tree.positionals(name.start_byte if name else launch.start_byte, launch.end_byte)
    if found is None:
        return _TOO_MANY
    if kind.startswith(_EVAL):
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
    forwarding = [(word, _word_form(word)) for word in _holding(words, found)]
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


def _model_edits(tree: _Tree, script: str, end: int) -> Iterator[_Edit]:
    """The MODEL blocks before byte `end`, each folded into one line."""
    if not _EXPORT_MODEL.search(script):
        return
    source = tree.source
    for _, found in _cursor(_MODEL_BLOCKS, 0, end).matches(tree.root):
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


def parse(source: bytes) -> Node | None:
    """The script's syntax tree, or None when it does not parse as bash or holds what the
    parser cannot read safely."""
    if _UNSUPPORTED.search(source.decode("utf-8", "surrogatepass")):
        return None
    with _PARSE_LOCK:
        root = _PARSER.parse(source).root_node
    return None if root.has_error else root


def never_parsed(source: bytes) -> bool:
    """Whether `source` holds what the parser is never given, for which `parse` gives None
    without reading it: a None from `parse` is otherwise a script bash would refuse too."""
    return bool(_UNSUPPORTED.search(source.decode("utf-8", "surrogatepass")))


def find_launch(root: Node, source: bytes) -> tuple[Node, str] | None:
    """The launch command of the script `source` parsed into `root` (the last simple command
    that starts a server) and its kind, or None."""
    return _Tree(root, source).launch()


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
    if _UNSUPPORTED.search(script):
        return ScriptRewrite(None, (), _UNSUPPORTED_DETAIL, Reason.UNSUPPORTED_CHARACTERS)
    source = script.encode("utf-8", "surrogatepass")
    root = parse(source)
    if root is None:
        return ScriptRewrite(
            None, (), "the script does not parse as bash", Reason.NO_LAUNCH_COMMAND
        )
    tree = _Tree(root, source)
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
        evaluated=kind.startswith(_EVAL),
    )
