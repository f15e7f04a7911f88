"""Text to Kubernetes objects and back: JSON or (multi-document) YAML in, readable YAML out.

Every error names the input and the line, as `NAME:LINE:COLUMN: what`. A key that appears
twice in one mapping is an error, not a silent last-one-wins: two manifests pasted together
without a `---` between them would otherwise merge into one. Nesting is bounded by the
interpreter's recursion limit (an error, as on the server), and YAML aliases are expanded
into copies of their own, up to `EXPANDED_VALUES` values in all and `ALIASED_CHARACTERS`
characters of strings more than the text holds: a few aliases can stand for a structure far
larger than the text (the "billion laughs", or one long string aliased thousands of times), and
an object reached by two paths would take one path's edit on the other.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import sys
from collections.abc import Iterator, Mapping
from typing import Any, Final, NamedTuple

import yaml

from webhook.core.raw import display_name


class InputError(ValueError):
    """The input is not JSON or YAML holding Kubernetes objects; the message is one line."""


# A value where an object was expected, in the words of YAML and JSON (a YAML timestamp loads
# as a date, `!!binary` as bytes).
_VALUES: Final[dict[type, str]] = {
    bool: "a boolean",
    int: "a number",
    float: "a number",
    str: "a string",
    list: "a list",
    type(None): "null",
    dt.date: "a date",
    dt.datetime: "a date",
    bytes: "binary data",
}


class Apart(NamedTuple):
    """How a front end takes runtimes and presets apart from the input, as its errors name
    it: the CLI's `--runtime FILE` and `--preset FILE`; empty where there is no such way (a
    `/preview` request has its one body)."""

    runtime: str = ""
    preset: str = ""


ONLY_IN_THE_INPUT: Final = Apart()


def give(apart: str) -> str:
    """How to give what an input lacks: in the same input, or apart as the front end takes it."""
    return f"pass it with {apart} or in the same input" if apart else "pass it in the same input"


def not_an_object(value: object) -> str:
    """What to say of a document or item that is a value, not a Kubernetes object."""
    found = _VALUES.get(type(value)) or f"a value of type {type(value).__name__}"
    return f"expected a Kubernetes object, found {found}"


def _one_line(text: object) -> str:
    return " ".join(str(text).split())


def _where(name: str, mark: yaml.Mark | None) -> str:
    return f"{name}:{mark.line + 1}:{mark.column + 1}" if mark is not None else name


def _unique_keys(node: yaml.MappingNode, name: str) -> None:
    seen: set[str] = set()
    for key, _ in node.value:
        if not isinstance(key, yaml.ScalarNode) or key.tag == "tag:yaml.org,2002:merge":
            continue
        if key.value in seen:
            raise InputError(
                f"{_where(name, key.start_mark)}: duplicate key {key.value!r} "
                "(a missing --- between two documents?)"
            )
        seen.add(key.value)


def _loader(base: type[yaml.SafeLoader]) -> type[yaml.SafeLoader]:
    class Loader(base):  # type: ignore[valid-type,misc]
        """A safe loader that refuses duplicate keys."""

        def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> Any:
            _unique_keys(node, str(self.name))
            return super().construct_mapping(node, deep=deep)

        def construct_yaml_int(self, node: yaml.ScalarNode) -> int:
            value: int = super().construct_yaml_int(node)
            # A hex, octal or binary number Python builds at any length, and then cannot
            # write in decimal (JSON, YAML, a table): refused here as a decimal one is.
            str(value)
            return value

    Loader.add_constructor("tag:yaml.org,2002:int", Loader.construct_yaml_int)
    return Loader


# Values (mappings, sequences, scalars) a document's aliases may expand to: far past any
# manifest (a whole cluster's runtimes is some thousands), far short of filling memory.
EXPANDED_VALUES: Final = 1_000_000
# Characters of scalars (strings, keys, numbers) a document's aliases may add to what its text
# holds: a long string aliased thousands of times is few values and gigabytes of output.
ALIASED_CHARACTERS: Final = 10_000_000

_FAST_LOADER: Final = _loader(getattr(yaml, "CSafeLoader", yaml.SafeLoader))
# Pure Python: its marks index the text in characters, which `migrate` edits by position.
_POSITIONED_LOADER: Final = _loader(yaml.SafeLoader)


def _json_object(name: str) -> Any:
    """A `json` object hook that refuses a key given twice, as YAML loading does."""

    def build(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        built: dict[str, Any] = {}
        for key, value in pairs:
            if key in built:
                raise InputError(f"{name}: duplicate key {key!r}")
            built[key] = value
        return built

    return build


def _yaml_error(error: yaml.YAMLError, name: str) -> InputError:
    if isinstance(error, yaml.MarkedYAMLError):
        mark = error.problem_mark or error.context_mark
        problem = error.problem or error.context or "invalid YAML"
        return InputError(f"{_where(name, mark)}: invalid YAML: {_one_line(problem)}")
    return InputError(f"{name}: invalid YAML: {_one_line(error)}")


def _value_error(error: ValueError, name: str) -> InputError:
    """A value the reader cannot build: a number longer than Python converts."""
    if "integer string conversion" in str(error):
        limit = sys.get_int_max_str_digits()
        return InputError(f"{name}: holds a number of more than {limit} digits")
    return InputError(f"{name}: invalid value: {_one_line(error)}")


def load(text: str, *, name: str = "<input>", allow_aliases: bool = True) -> list[Any]:
    """Every non-empty document of a JSON text or a YAML stream.

    A server reading untrusted YAML passes `allow_aliases=False`: a few aliases can stand
    for a structure far larger than the text (the "billion laughs").
    """
    stripped = text.lstrip()
    if stripped.startswith(("{", "[")):
        try:
            return [json.loads(text, object_pairs_hook=_json_object(name))]
        except RecursionError:
            raise InputError(f"{name}: input is nested too deeply") from None
        except json.JSONDecodeError as error:
            if stripped.startswith("{"):
                where = f"{name}:{error.lineno}:{error.colno}"
                raise InputError(f"{where}: invalid JSON: {error.msg}") from None
        except InputError:
            raise
        except ValueError as error:
            raise _value_error(error, name) from None
    try:
        if not allow_aliases and any(
            isinstance(event, yaml.AliasEvent) for event in yaml.parse(text, Loader=_FAST_LOADER)
        ):
            raise InputError(f"{name}: YAML aliases (*name) are not accepted here")
        loader = _FAST_LOADER(text)
        loader.name = name
        try:
            documents = list(_documents(loader))
        finally:
            loader.dispose()
    except yaml.YAMLError as error:
        raise _yaml_error(error, name) from None
    except RecursionError:
        raise InputError(f"{name}: input is nested too deeply") from None
    except InputError:
        raise
    except ValueError as error:
        raise _value_error(error, name) from None
    return [document for _, document in documents if document is not None]


def _documents(loader: yaml.SafeLoader) -> Iterator[tuple[yaml.Node, Any]]:
    while loader.check_node():
        node = loader.get_node()
        if node is not None:
            size = _Size()
            values, characters = size.expanded(node)
            if values > EXPANDED_VALUES:
                raise InputError(
                    f"{_where(str(loader.name), node.start_mark)}: its YAML aliases expand to "
                    f"more than {EXPANDED_VALUES} values"
                )
            if characters - size.distinct > ALIASED_CHARACTERS:
                raise InputError(
                    f"{_where(str(loader.name), node.start_mark)}: its YAML aliases expand to "
                    f"more than {ALIASED_CHARACTERS} characters"
                )
            yield node, _unshared(loader.construct_document(node))


class _Size:
    """How many values and scalar characters a node stands for with every alias expanded; each
    node is measured once, so a bomb is measured in time linear in its text. `distinct` is the
    characters of the scalars the text itself holds (each node once)."""

    def __init__(self) -> None:
        self.sizes: dict[int, tuple[int, int]] = {}
        self.distinct = 0

    def expanded(self, node: yaml.Node) -> tuple[int, int]:
        known = self.sizes.get(id(node))
        if known is not None:
            return known
        # A node that contains itself counts once; the constructor refuses it.
        self.sizes[id(node)] = (1, 0)
        values, characters = 1, 0
        if isinstance(node, yaml.ScalarNode):
            characters = len(node.value)
            self.distinct += characters
        else:
            children: list[yaml.Node] = []
            if isinstance(node, yaml.SequenceNode):
                children = node.value
            elif isinstance(node, yaml.MappingNode):
                children = [part for pair in node.value for part in pair]
            for child in children:
                more_values, more_characters = self.expanded(child)
                values += more_values
                characters += more_characters
        self.sizes[id(node)] = (values, characters)
        return values, characters


def _unshared(value: Any) -> Any:
    """`value` with every list and mapping its own: an alias gives an object two parents."""
    if isinstance(value, dict):
        return {key: _unshared(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_unshared(item) for item in value]
    return value


def load_positioned(text: str, *, name: str) -> list[tuple[yaml.Node, Any]]:
    """Each YAML document's node tree (marks index `text` in characters) and its value."""
    loader: yaml.SafeLoader | None = None
    try:
        # Built inside: the reader refuses a character YAML does not allow (a NUL) at once.
        loader = _POSITIONED_LOADER(text)
        loader.name = name
        return list(_documents(loader))
    except yaml.YAMLError as error:
        raise _yaml_error(error, name) from None
    except RecursionError:
        raise InputError(f"{name}: input is nested too deeply") from None
    except InputError:
        raise
    except ValueError as error:
        raise _value_error(error, name) from None
    finally:
        if loader is not None:
            loader.dispose()


def json_value(value: object) -> Any:
    """A `json.dumps` default for the values YAML loads that JSON has no type for: a date or
    time as ISO 8601 text, a set (`!!set`) as a sorted list, binary data (`!!binary`) as
    base64 text, as `kubectl` would send them."""
    if isinstance(value, dt.date | dt.time):
        return value.isoformat()
    if isinstance(value, set | frozenset):
        return sorted(value, key=repr)
    if isinstance(value, bytes):
        return base64.b64encode(value).decode("ascii")
    raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")


class _Dumper(yaml.SafeDumper):
    """Multi-line strings (scripts) as literal blocks, so diffs read line by line."""


def _string(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_Dumper.add_representer(str, _string)


def dump(document: Any) -> str:
    """YAML that keeps the keys in the object's own order."""
    return yaml.dump(document, Dumper=_Dumper, sort_keys=False, allow_unicode=True, width=120)


Path = tuple[str | int, ...]


def _label(obj: Mapping[str, Any]) -> str:
    return f"{obj.get('kind')}/{display_name(obj)}"


def objects_in(
    document: Any, path: Path = (), parent: str = ""
) -> Iterator[tuple[Path, str, Mapping[str, Any]]]:
    """(path, label, object) for every object of a document, OpenShift Templates and Lists
    walked; the label names the Template around an object."""
    if not isinstance(document, Mapping):
        return
    kind = document.get("kind")
    if kind == "Template" and isinstance(document.get("objects"), list):
        for index, item in enumerate(document["objects"]):
            yield from objects_in(item, (*path, "objects", index), f"{_label(document)} ")
    elif (
        isinstance(kind, str) and kind.endswith("List") and isinstance(document.get("items"), list)
    ):
        for index, item in enumerate(document["items"]):
            yield from objects_in(item, (*path, "items", index), parent)
    else:
        yield path, f"{parent}{_label(document)}", document
