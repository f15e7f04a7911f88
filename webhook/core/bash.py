"""The bash syntax the core reads: tree-sitter-bash, the screen that keeps from it what crashes
it, and the queries on its trees (which command launches the server, where the positional
parameters stand, what may move them before it).

The parser is C code fed with untrusted text: a script holding a character above U+FFFF
crashes tree-sitter-bash's scanner (SIGSEGV) after `{` or `${`, so such a script is never
handed to it (`never_parsed`). A server must not parse even other scripts in its own process:
it has them parsed in a sandbox process (`webhook.runtime.sandbox`).

It is long because each query reads the same trees with the same bounds on what it visits:
apart, they would each screen and walk the script again.
"""

from __future__ import annotations

import bisect
import itertools
import re
import threading
from collections.abc import Sequence
from typing import Final

import tree_sitter_bash
from tree_sitter import Language, Node, Parser, Query, QueryCursor

_BASH: Final = Language(tree_sitter_bash.language())
_VLLM: Final = "vllm.entrypoints"
EVAL: Final = "eval"
_PYTHON: Final = re.compile(r"python(?:3(?:\.\d+)?)?")
# The words that open an eval's string: blanks and `\` continuations between them.
_EVAL_WORDS: Final = re.compile(r"[^\s\\\"']+")
_EXPANSIONS: Final = frozenset({"simple_expansion", "expansion"})
# Parameters whose use means the script reads its args: $1..$9, $@, $*, $#. ($0 names the shell.)
_ARG_SPECIALS: Final = frozenset({"@", "*", "#"})
# Code points above U+FFFF: tree-sitter-bash's scanner crashes on them (a fuzz of ASCII,
# Basic Multilingual Plane, lone-surrogate and stray bytes found no other crash).
_UNSUPPORTED: Final = re.compile("[\U00010000-\U0010ffff]")

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
MODEL_BLOCKS: Final = Query(_BASH, "(_ (declaration_command) @export . (if_statement) @if)")
# Where a positional expansion may start: `$1`, `$@`, `${@}`, `${#@}`, `${!1}` … (the tree says
# whether one does), and those of them that may read an arg (not a plain `$0`).
_MAYBE_POSITIONAL: Final = re.compile(rb"\$(?:[0-9@*#]|\{[#!]?[0-9@*#])")
_MAYBE_READS: Final = re.compile(rb"\$(?:0[0-9]|[1-9@*#]|\{[#!]?[0-9@*#])")
# A launch command naming its args more often than this is not placed: no shipped script
# names them more than twice, and each one costs an edit.
FORWARDS_LIMIT: Final = 64
_PROGRAMS: Final = frozenset({EVAL, "exec", "vllm", "ray"})
# `"${NAME[@]}"`: a launch command whose words are an array's (`args=(python3 -m …)`).
_ARRAY_WORD: Final = re.compile(r'"\$\{([A-Za-z_][A-Za-z0-9_]*)\[@\]\}"')
# The Python modules that serve a model: `python -m MODULE …` is a launch command.
_SERVER_MODULES: Final = ("huggingfaceserver", "sglang.launch_server")
# Builtins that set a variable named among their words.
_ARRAY_WRITERS: Final = "read|mapfile|readarray|declare|typeset|local|export|readonly|unset|eval"
# Words that run the builtin named after them, options aside (`builtin shift`, `command set`).
_RUNNERS: Final = frozenset({"builtin", "command"})
# Where the name of a command that may move the positional parameters may stand (quoted or
# not), for `_moves_args` to read its words: any other command moves none.
_MAYBE_MOVES: Final = re.compile(rb"(?<![\w-])(?:shift|set|eval|builtin|command)(?![\w-])")
# Quoting that leaves a command's name the same builtin to bash (`\shift`, `"set"`).
_NAME_QUOTES: Final = str.maketrans("", "", "\\\"'")
# A `set` word that only switches options (`-e`, `+x`, `-euo`): it takes one option name per
# `o` after it (`-euo pipefail`, `-oo pipefail errexit`). Any other word (`--`, `-`, an operand,
# an expansion) may set the positional parameters, and `set --` alone clears them.
_SET_OPTIONS: Final = re.compile(r"[-+][A-Za-z]+")
_OPTION_NAME: Final = re.compile(r"[a-z]+")
# What eval may run that moves the positional parameters: read from its words' text.
_EVAL_MOVES: Final = re.compile(r"\b(?:shift|set)\b")
_LOOPS: Final = frozenset({"while_statement", "for_statement", "c_style_for_statement"})


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


def cursor(query: Query, start: int, end: int) -> QueryCursor:
    """A cursor over the nodes of `query` that meet these bytes."""
    cursor = QueryCursor(query)
    cursor.set_byte_range(start, end)
    return cursor


class Tree:
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
        if inner is None or inner.startswith((EVAL, "exec", "ray")):
            return None
        self.launch_array = node
        return f"{inner} (array {name})"

    def _written_by_command(self, name: str) -> bool:
        """Whether a builtin that sets variables (`read -a`, `mapfile`, `declare` …) may name
        `name`: read from the text, so that no form of it is missed."""
        pattern = rf"\b(?:{_ARRAY_WRITERS})\b[^\n;&|]*\b{re.escape(name)}\b"
        return re.search(pattern.encode(), self.source) is not None

    def moves_args(self, launch: Node) -> bool:
        """Whether a command that may change the script's positional parameters (`shift`,
        `set` with anything but options, either of them through eval) may run before the
        launch command: anywhere before it, or anywhere in a loop around it, in a subshell or
        a command substitution too. Then the launch command's `$@` is not the script's args,
        and one added there would not be either. A function body's are its own (bash gives a
        function positional parameters of its own), as are the args `reads_args` reads.

        Only the spots where such a command's name may stand are looked up in the tree; past
        `FORWARDS_LIMIT` spots that move nothing, the script is taken to move its args, as no
        script worth repairing holds that many."""
        loop = _outermost_loop(launch)
        end = loop.end_byte if loop is not None else launch.start_byte
        looked_up = 0
        for found in _MAYBE_MOVES.finditer(self.source, 0, end):
            spot = found.start()
            if launch.start_byte <= spot < launch.end_byte or _inside(self._functions, spot):
                continue
            command = _named_command(self.root, spot)
            if command is not None and _moves_args(_words(command)):
                return True
            looked_up += 1
            if looked_up > FORWARDS_LIMIT:
                return True
        return False

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


def _named_command(root: Node, spot: int) -> Node | None:
    """The simple command whose name holds byte `spot`, or None."""
    node = root.named_descendant_for_byte_range(spot, spot + 1)
    while node is not None and node.type not in ("command_name", "command", "program"):
        node = node.parent
    return node.parent if node is not None and node.type == "command_name" else None


def _outermost_loop(node: Node) -> Node | None:
    """The outermost `while`, `until` or `for` loop around a node, or None."""
    found = None
    parent = node.parent
    while parent is not None:
        if parent.type in _LOOPS:
            found = parent
        parent = parent.parent
    return found


def _moves_args(words: Sequence[str]) -> bool:
    """Whether a command of these words may change the positional parameters."""
    while words and words[0].translate(_NAME_QUOTES) in _RUNNERS:
        words = list(itertools.dropwhile(lambda word: word.startswith("-"), words[1:]))
    if not words:
        return False
    name = words[0].translate(_NAME_QUOTES)
    if name == EVAL:
        return any(_EVAL_MOVES.search(word) for word in words[1:])
    if name == "shift":
        return True
    if name != "set":
        return False
    names_due = 0
    for word in words[1:]:
        if names_due:
            names_due -= 1
            if not _OPTION_NAME.fullmatch(word):
                return True
        elif _SET_OPTIONS.fullmatch(word):
            names_due = word.count("o")
        else:
            return True
    return False


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
    if words[:1] == [EVAL] and len(words) > 1:
        opening = _EVAL_WORDS.findall(words[1][:200])
        inner = launch_kind(opening[:4])
        return None if inner in (None, "exec-indirection") else f"{EVAL} {inner}"
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


def word_form(word: Node) -> str:
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


def holding(words: Sequence[Node], found: Sequence[Node]) -> list[Node]:
    """The words, in order, that hold at least one of the expansions `found`."""
    starts = [word.start_byte for word in words]
    held: dict[int, Node] = {}
    for expansion in found:
        index = bisect.bisect_right(starts, expansion.end_byte - 1) - 1
        if index >= 0 and expansion.end_byte <= words[index].end_byte:
            held.setdefault(index, words[index])
    return [held[index] for index in sorted(held)]


def indirect_assignment(root: Node, launch: Node) -> tuple[str, Node] | None:
    """For `exec $CMD`: the variable's name and its last `CMD=...` before the launch command."""
    target = launch.children_by_field_name("argument")[0]
    name = next((c for c in target.named_children if c.type == "variable_name"), None)
    if name is None:
        return None
    wanted = node_text(name)
    before = cursor(_ASSIGNMENTS, 0, launch.start_byte).captures(root).get("assignment", [])
    for node in reversed(_in_order(before)):
        variable = node.child_by_field_name("name")
        if node.start_byte < launch.start_byte and variable and node_text(variable) == wanted:
            return wanted, node
    return None


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
    return Tree(root, source).launch()
