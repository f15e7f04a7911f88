"""Replacing one key's value in YAML text, leaving every other byte as it was written.

`migrate` changes only `command` and `args`. Re-emitting whole documents would re-quote
untouched scripts (an emitter will not write a literal block with trailing spaces), re-indent
lists and drop comments, so that a reviewer faces hundreds of changed lines for a few edits.
Here the value's span is found from the parser's marks and only it is written again: items
kept from the old value keep their source text, scripts become literal blocks.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

import yaml

# Characters a literal block can hold as they are (tab, and everything printable).
_LITERAL_SAFE: Final = re.compile(
    r"[\t\x20-\x7e\x85\xa0-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]*"
)

# A block scalar's first line: its indicators, and a comment after them.
_BLOCK_HEADER: Final = re.compile(r"[|>][-+0-9]*(?P<comment>[ \t]+#.*)?[ \t]*")


@dataclass(frozen=True, slots=True)
class Edit:
    """Replace `text[start:end]` with `replacement`, its lines ending in "\n"."""

    start: int
    end: int
    replacement: str


def child(node: yaml.Node, token: str | int) -> yaml.Node | None:
    """The value under a mapping key or at a sequence index, or None."""
    if isinstance(node, yaml.MappingNode) and isinstance(token, str):
        return next((v for k, v in node.value if getattr(k, "value", None) == token), None)
    if isinstance(node, yaml.SequenceNode) and isinstance(token, int):
        return node.value[token] if 0 <= token < len(node.value) else None
    return None


def _key(node: yaml.Node, key: str) -> tuple[yaml.Node, yaml.Node] | None:
    """The key and value nodes of `key` in a mapping node; None for any other node, or a
    mapping without it."""
    if not isinstance(node, yaml.MappingNode):
        return None
    return next(((k, v) for k, v in node.value if getattr(k, "value", None) == key), None)


def _line_start(text: str, index: int) -> int:
    return text.rfind("\n", 0, index) + 1


def _region(text: str, key: yaml.Node, value: yaml.Node) -> tuple[int, int]:
    """From the key to the end of its value's last line; blank lines and comments after it,
    at the key's indentation or less, stay where they are."""
    end = value.end_mark.index
    start_of_line = _line_start(text, end)
    if text[start_of_line:end].strip():
        newline = text.find("\n", end)
        return key.start_mark.index, len(text) if newline == -1 else newline + 1
    end = start_of_line
    while end > key.start_mark.index:
        previous = _line_start(text, end - 1)
        line = text[previous:end]
        indent = len(line) - len(line.lstrip())
        # A deeper `#` line may be the last line of a script: only shallower ones are comments.
        comment = line.strip().startswith("#") and indent <= key.start_mark.column
        if line.strip() and not comment:
            break
        end = previous
    return key.start_mark.index, end


def _source(text: str, node: yaml.Node) -> str | None:
    """A single-line scalar's text as written, to be kept when the item is kept."""
    if not isinstance(node, yaml.ScalarNode) or node.style not in (None, "'", '"'):
        return None
    written = text[node.start_mark.index : node.end_mark.index]
    return None if "\n" in written else written


def _plain_or_quoted(value: str) -> str:
    if value and "\n" not in value:
        try:
            if yaml.safe_load(f"k: {value}") == {"k": value}:
                return value
        except yaml.YAMLError:
            pass
    return json.dumps(value, ensure_ascii=False)


def _literal(value: str, *, indent: int) -> str | None:
    """A literal block for a multi-line string, or None when one cannot hold it exactly."""
    lines = value.split("\n")
    first = next((line for line in lines if line), "")
    if not _LITERAL_SAFE.fullmatch(value.replace("\n", "")) or first.startswith((" ", "\t")):
        return None
    if value.endswith("\n\n") or value == "\n":
        chomp, lines = "+", lines[:-1]
    elif value.endswith("\n"):
        chomp, lines = "", lines[:-1]
    else:
        chomp = "-"
    body = "".join("\n" + (" " * indent + line if line else "") for line in lines)
    return f"|{chomp}{body}"


def written_list(
    text: str,
    key: yaml.Node,
    old: yaml.Node,
    items: Sequence[str],
    *,
    kept: Sequence[yaml.Node | None],
) -> str:
    """`KEY:` and a block sequence of `items`, at the indentation `old` used when it was a
    block sequence. `kept[i]` is the old node item `i` keeps, whose text is reused."""
    block = isinstance(old, yaml.SequenceNode) and not old.flow_style
    column = old.start_mark.column if block else key.start_mark.column + 2
    lines = [f"{key.value}:"] if isinstance(key, yaml.ScalarNode) else [str(key)]
    for item, node in zip(items, kept, strict=True):
        written = _source(text, node) if node is not None else None
        if written is None and "\n" in item:
            written = _literal(item, indent=column + 2)
        lines.append(" " * column + "- " + (written or _plain_or_quoted(item)))
    return "\n".join(lines) + "\n"


def replace_list(
    text: str,
    mapping: yaml.Node,
    key: str,
    items: Sequence[str] | None,
    *,
    kept: Sequence[yaml.Node | None] = (),
) -> Edit | None:
    """The edit that sets `mapping[key]` to `items` (None: removes the key), or None when the
    key is not there to edit in place."""
    found = _key(mapping, key)
    if found is None:
        return None
    key_node, value_node = found
    start, end = _region(text, key_node, value_node)
    if items is None:
        if not text[_line_start(text, start) : start].strip():
            return Edit(_line_start(text, start), end, "")
        # The first key of a sequence item (`- args:`): the next key moves up onto its line.
        column = key_node.start_mark.column
        following = text[end : end + column + 1]
        if following[:column] != " " * column or following[column:] in ("", " ", "\n", "#"):
            return None
        return Edit(start, end + column, "")
    replacement = written_list(text, key_node, value_node, items, kept=kept)
    return Edit(start, end, replacement)


def _item_column(key: yaml.Node, value: yaml.Node) -> int:
    """The column of a block sequence's `-` under `key`, or where a new one would stand."""
    if isinstance(value, yaml.SequenceNode) and not value.flow_style:
        return value.start_mark.column
    return key.start_mark.column + 2


def _pair(name: str, value: str, *, column: int) -> str:
    """A block sequence item `- name: NAME` / `  value: VALUE` at `column`, ending in a newline."""
    pad = " " * column
    return f"{pad}- name: {_plain_or_quoted(name)}\n{pad}  value: {_plain_or_quoted(value)}\n"


def replace_key_with_pairs(
    text: str, mapping: yaml.Node, key: str, *, new_key: str, name: str, value: str
) -> Edit | None:
    """The edit that puts `new_key:` holding one `name`/`value` item where `key` and its value
    stood, or None when `key` is not there to edit in place."""
    found = _key(mapping, key)
    if found is None:
        return None
    key_node, value_node = found
    start, end = _region(text, key_node, value_node)
    if text[_line_start(text, start) : start].strip() or not text[:end].endswith("\n"):
        return None  # the first key of a sequence item, or the text's last line: not here
    column = _item_column(key_node, value_node)
    return Edit(start, end, f"{new_key}:\n" + _pair(name, value, column=column))


def append_pair(text: str, mapping: yaml.Node, key: str, *, name: str, value: str) -> Edit | None:
    """The edit that adds a `name`/`value` item at the end of the block sequence under `key`,
    or None when there is none to add to in place."""
    found = _key(mapping, key)
    if found is None:
        return None
    key_node, value_node = found
    if not isinstance(value_node, yaml.SequenceNode) or value_node.flow_style:
        return None
    _, end = _region(text, key_node, value_node)
    if not value_node.value or not text[:end].endswith("\n"):
        return None
    column = _item_column(key_node, value_node)
    return Edit(end, end, _pair(name, value, column=column))


def replace_scalar(text: str, node: yaml.Node, value: str) -> Edit | None:
    """The edit that writes a scalar as `value`, on one line where it began, or None when it is
    no scalar. Of a block scalar (`|`, `>`), its header's comment and the line breaks after its
    text stay."""
    if not isinstance(node, yaml.ScalarNode):
        return None
    start, end = node.start_mark.index, node.end_mark.index
    written = _plain_or_quoted(value)
    if node.style in ("|", ">"):
        span = text[start:end]
        header = _BLOCK_HEADER.fullmatch(span.partition("\n")[0].rstrip("\r"))
        if header is not None and header["comment"]:
            written += header["comment"]
        end = start + len(span.rstrip())
    return Edit(start, end, written)


def _line_break(text: str) -> str:
    """The text's line break, as its first line ends ("\n" for a text of one line)."""
    first = text.find("\n")
    return "\r\n" if first > 0 and text[first - 1] == "\r" else "\n"


def apply(text: str, edits: Sequence[Edit]) -> str:
    """The text with every edit made, each replacement's lines ending as the text's do (a
    Windows file keeps CRLF throughout); edits must not overlap."""
    line_break = _line_break(text)
    # At one offset, the longer edit first: an insertion there goes before what it replaced.
    for edit in sorted(edits, key=lambda e: (e.start, e.end), reverse=True):
        replacement = edit.replacement.replace("\n", line_break)
        text = text[: edit.start] + replacement + text[edit.end :]
    return text
