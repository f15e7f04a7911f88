"""The script edits of DESIGN §3: MODEL defaulting and `"$@"` forwarding at the launch command.

The script is parsed with tree-sitter-bash, so the launch command is found as a simple command
(never inside a string, a heredoc or a command substitution) and `"$@"` lands after its last
word: past `\\` continuations, before redirections, pipes, `&&`, `;` and comments. Everything
else in the script is kept byte for byte. Results are cached by script text, because one
runtime's script repeats across every pod it creates.
"""

from __future__ import annotations

import itertools
import re
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from functools import lru_cache
from typing import Final

import tree_sitter_bash
from tree_sitter import Language, Node, Parser

from webhook.core.names import Rule

_BASH: Final = Language(tree_sitter_bash.language())
_VLLM: Final = "vllm.entrypoints"
_FORWARD: Final = ' "$@"'
MODEL_LINE: Final = "export MODEL=${MODEL_DIR:-$MODEL_ID}"

# Nodes whose commands run in a child shell whose output is captured: never the launch command.
_CAPTURED: Final = frozenset({"command_substitution", "process_substitution"})
_PYTHON: Final = re.compile(r"python(?:3(?:\.\d+)?)?")
_ARGS_REFERENCE: Final = re.compile(r"\$(?:@|\{@\}|\*|\{\*\})")
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
    """The outcome for one script: the new text, or why there is none."""

    script: str | None
    rules: tuple[Rule, ...]
    detail: str


@dataclass(frozen=True, slots=True)
class _Edit:
    start: int
    end: int
    text: bytes


_PARSER: Final = Parser(_BASH)
# A parser is not safe to share between threads; parses happen only on cache misses.
_PARSE_LOCK: Final = threading.Lock()


def _text(node: Node) -> str:
    return (node.text or b"").decode("utf-8", "surrogatepass")


def _simple_commands(node: Node) -> Iterator[Node]:
    """Every simple command outside command and process substitutions, in script order."""
    stack = [node]
    while stack:
        current = stack.pop()
        if current.type in _CAPTURED:
            continue
        if current.type == "command":
            yield current
        stack.extend(reversed(current.children))


def _words(command: Node) -> list[str]:
    name = command.child_by_field_name("name")
    if name is None:
        return []
    return [_text(name), *(_text(arg) for arg in command.children_by_field_name("argument"))]


def launch_kind(words: list[str]) -> str | None:
    """Which kind of launch command these words are, or None when they start no server."""
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
            if flag == "-m" and (module == "huggingfaceserver" or module.startswith(_VLLM)):
                return f"python -m {module}"
        return None
    if program == "vllm" and words[1:2] == ["serve"]:
        return "vllm serve"
    if program == "ray" and words[1:2] == ["start"] and "--block" in words:
        return "ray start --block"
    return None


def _launch_edit(root: Node) -> tuple[_Edit | None, str]:
    launch: Node | None = None
    kind = ""
    for command in _simple_commands(root):
        words = _words(command)
        found = launch_kind(words)
        if found is not None:
            launch, kind = command, found
    if launch is None:
        return None, ""
    if any(_ARGS_REFERENCE.search(word) for word in _words(launch)):
        # The script already hands its positional args on: moving it is all it needs.
        return _Edit(launch.end_byte, launch.end_byte, b""), kind
    return _Edit(launch.end_byte, launch.end_byte, _FORWARD.encode()), kind


def _model_edits(root: Node, source: bytes) -> Iterator[_Edit]:
    stack = [root]
    while stack:
        node = stack.pop()
        stack.extend(node.children)
        if node.type != "declaration_command" or not _EXPORT_MODEL.fullmatch(_text(node)):
            continue
        following = node.next_named_sibling
        if following is None or following.type != "if_statement":
            continue
        between = source[node.end_byte : following.start_byte]
        if between.strip(b" \t\n;") or between.count(b";") > 1:
            continue
        if _IF_MODEL_DIR.fullmatch(_text(following)):
            yield _Edit(node.start_byte, following.end_byte, MODEL_LINE.encode())


@lru_cache(maxsize=1024)
def rewrite_script(script: str) -> ScriptRewrite:
    """Rewrite a legacy launch script so it forwards `"$@"`, or say why it cannot be."""
    source = script.encode("utf-8", "surrogatepass")
    with _PARSE_LOCK:
        root = _PARSER.parse(source).root_node
    if root.has_error:
        return ScriptRewrite(None, (), "the script does not parse as bash")
    launch, kind = _launch_edit(root)
    if launch is None:
        return ScriptRewrite(None, (), "no server launch command found in the script")
    edits = [launch]
    rules = [Rule.SCRIPT_TO_COMMAND]
    if launch.text:
        rules.append(Rule.FORWARD_ARGS)
    model = [edit for edit in _model_edits(root, source) if edit.end <= launch.start]
    if model:
        edits.extend(model)
        rules.append(Rule.MODEL_DEFAULT)
    for edit in sorted(edits, key=lambda e: e.start, reverse=True):
        source = source[: edit.start] + edit.text + source[edit.end :]
    return ScriptRewrite(source.decode("utf-8", "surrogatepass"), tuple(rules), kind)
