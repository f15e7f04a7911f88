"""A preset's script compiled into the core's `ScriptPattern`, for policy mode: every script KServe
renders from the preset, for any LLMInferenceService, is then known to the policy.

KServe renders a preset by running the merged config's JSON text as a Go template, so the
script is read here as that text: its literal runs are what is left between the actions once
the `{{-`/`-}}` trimming is done, decoded from JSON. Each action, or each run of actions with
no text between them, is a hole, and its pattern is what its actions may write:

- a value by its field: a model's name, a Kubernetes name, a number (parallelism, a port, a
  timeout, or `or` of numbers, where a true `and` stands for its last argument, as in v0.21's
  `{{ or (and .Spec.Parallelism .Spec.Parallelism.DataLocal) 1 }}`), or one of the fixed texts
  a function writes (`kvTransferConfig`);
- an `if` (with its `else if`s) any of its branches, or nothing without an `else`.

Anything else (an unknown field or function, a run that may first occur inside what the hole
before it holds) leaves the preset to the webhook, with the reason. The repair is the core's own:
the preset is rendered for a probe service, the core repairs the script, and the edits it
makes are located in the runs. A second probe service, whose every value and branch differs,
must then be repaired by the same edits with the same status, or the preset is left to the
webhook: a hole's text must never change what the core makes of the script.

It is long because a preset's template is read one way for three users (holes, literal runs,
their size bounds): splitting it would set the three against each other.
"""

from __future__ import annotations

import difflib
import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

from webhook.core.pattern import RunEdit, ScriptPattern
from webhook.offline import gobuiltins, gotemplate, llmrender


@dataclass(frozen=True, slots=True)
class Letters:
    """Between `least` and `most` characters of `characters`: a value's text."""

    characters: frozenset[str]
    least: int
    most: int


Part = str | Letters
Form = tuple[Part, ...]


@dataclass(frozen=True, slots=True)
class Hole:
    """What a hole may hold: its pattern (unanchored), its characters, its longest text, and
    its forms (each a sequence of fixed texts and values) while they are few (else None)."""

    pattern: str
    characters: frozenset[str]
    longest: int
    forms: tuple[Form, ...] | None

    def then(self, other: Hole) -> Hole:
        forms = None
        if self.forms is not None and other.forms is not None:
            joined = tuple(dict.fromkeys(a + b for a in self.forms for b in other.forms))
            forms = joined if len(joined) <= _FEW else None
        return Hole(
            self.pattern + other.pattern,
            self.characters | other.characters,
            self.longest + other.longest,
            forms,
        )

    def hides(self, run: str) -> bool:
        """Whether `run` could first occur inside what the hole holds, rather than after it."""
        if self.forms is None:
            return run[:1] in self.characters
        return any(
            _begins(run, form[number:], run=run, inside=True)
            for form in self.forms
            for number in range(len(form))
        )


def _begins(text: str, form: Form, *, run: str, inside: bool) -> bool:
    """Whether `text` may begin somewhere in the first part of `form` (at its start only
    when not `inside` it), then go on through the rest of the hole and into `run`."""
    if not text:
        return True
    if not form:
        return run.startswith(text) or text.startswith(run)
    part, rest = form[0], form[1:]
    if isinstance(part, str):
        offsets = range(len(part)) if inside else range(1)
        for offset in offsets:
            tail = part[offset:]
            if text.startswith(tail) and _begins(text[len(tail) :], rest, run=run, inside=False):
                return True
            if tail.startswith(text):
                return True
        return False
    taken = 0
    while taken < len(text) and taken < part.most and text[taken] in part.characters:
        taken += 1
        if taken == len(text):
            return True
        if taken >= (1 if inside else part.least) and _begins(
            text[taken:], rest, run=run, inside=False
        ):
            return True
    return not inside and part.least == 0 and _begins(text, rest, run=run, inside=False)


# The most fixed texts a hole is known by before it is known by its characters only.
_FEW: Final = 64
_SPECIAL: Final = frozenset("\\.^$|?*+()[]{}")
_MODEL_CHARACTERS: Final = frozenset(
    "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._/:-"
)
_NAME_CHARACTERS: Final = frozenset("abcdefghijklmnopqrstuvwxyz0123456789.-")
_DIGITS: Final = frozenset("0123456789")
# A model's name (an organisation and a model, a version), a Kubernetes object's name or
# namespace, and a number. Each leaves out every character the shell reads as more than a
# letter, so that no value can change how the script parses.


def _letters(pattern: str, characters: frozenset[str], most: int) -> Hole:
    return Hole(f"{pattern}{{1,{most}}}", characters, most, ((Letters(characters, 1, most),),))


MODEL: Final = _letters("[A-Za-z0-9._/:-]", _MODEL_CHARACTERS, 256)
NAME: Final = _letters("[a-z0-9.-]", _NAME_CHARACTERS, 253)
NUMBER: Final = _letters("[0-9]", _DIGITS, 9)
EMPTY: Final = Hole("", frozenset(), 0, ((),))
_FIELDS: Final = {
    ".Spec.Model.Name": MODEL,
    ".ObjectMeta.Name": NAME,
    ".ObjectMeta.Namespace": NAME,
}
_PARALLEL_NUMBERS: Final = frozenset({"Data", "DataLocal", "DataRPCPort", "Tensor", "Pipeline"})
# Functions that write a number, whatever they are given.
_NUMBERS: Final = frozenset({"shutdownTimeout"})
# Functions that write one of a few fixed texts: each with the arguments that reach them all.
_FIXED: Final[dict[str, tuple[tuple[Any, ...], ...]]] = {
    "kvTransferConfig": ((None,), ({"enabled": True},)),
}


def escaped(text: str) -> str:
    """`text` as a pattern that matches it, alike in RE2 and Python: only the characters
    both read as operators are escaped."""
    return "".join("\\" + c if c in _SPECIAL else c for c in text)


def literal(text: str) -> Hole:
    return Hole(escaped(text), frozenset(text), len(text), ((text,),) if text else ((),))


def _decoded(text: str) -> str:
    """A piece of JSON string text, decoded."""
    decoded: str = json.loads('"' + text + '"')
    return decoded


def _field(path: Sequence[str]) -> Hole | None:
    token = "." + ".".join(path)
    if token in _FIELDS:
        return _FIELDS[token]
    # The whole numbers of a parallelism (its `Expert` is a boolean), of a workload's or of
    # its prefill's.
    if path[:1] == ("Spec",) and len(path) >= 3 and path[-2] == "Parallelism":
        return NUMBER if path[-1] in _PARALLEL_NUMBERS else None
    return None


def _number(node: gotemplate.Node, *, truthy: bool = False) -> bool:
    """Whether the pipeline always writes a number (only its values true in `if` when
    `truthy`): a parallelism field, a small constant, a function that counts, or `or` of
    such; a true `and` is its last argument."""
    if isinstance(node, gotemplate.Field):
        return _field(node.path) is NUMBER
    if isinstance(node, gotemplate.Constant):
        value = node.value
        return isinstance(value, int) and not isinstance(value, bool) and 0 <= value < 10**9
    if not isinstance(node, gotemplate.Call) or not node.args:
        return False
    if node.name in _NUMBERS:
        return True
    if node.name == "and" and truthy:
        return _number(node.args[-1], truthy=True)
    if node.name == "or":
        *first, last = node.args
        return all(_number(a, truthy=True) for a in first) and _number(last, truthy=truthy)
    return False


def _value(node: gotemplate.Node) -> Hole | None:
    """What a value action may write, or None for one this does not know."""
    if _number(node):
        return NUMBER
    if isinstance(node, gotemplate.Field):
        return _field(node.path)
    if isinstance(node, gotemplate.Call) and node.name in _FIXED:
        head = node.name
        texts = sorted({_decoded(gotemplate.FUNCTIONS[head](*given)) for given in _FIXED[head]})
        return Hole(
            "(?:" + "|".join(escaped(text) for text in texts) + ")",
            frozenset("".join(texts)),
            max(len(text) for text in texts),
            tuple((text,) if text else () for text in texts),
        )
    return None


class UnknownAction(ValueError):
    """A template this compiler does not know: the message says what."""


def _sequence(items: Sequence[str | gotemplate.GoAction], start: int) -> tuple[Hole, int, str]:
    """The hole that items from `start` make, up to an `else`, `else if` or `end` (or the
    last), the index of what stopped them and its keyword ("" at the last)."""
    hole = EMPTY
    index = start
    while index < len(items):
        item = items[index]
        if isinstance(item, str):
            hole = hole.then(literal(_decoded(item)))
            index += 1
            continue
        if item.keyword in ("else", "else if", "end"):
            return hole, index, item.keyword
        if item.keyword == "if":
            branch, index = _branches(items, index + 1)
            hole = hole.then(branch)
            continue
        found = _value(item.node) if item.node is not None else None
        if found is None:
            raise UnknownAction(f"the action {{{{ {item.text} }}}}")
        hole = hole.then(found)
        index += 1
    return hole, index, ""


def _branches(items: Sequence[str | gotemplate.GoAction], start: int) -> tuple[Hole, int]:
    """The hole an `if` makes (each branch, or nothing without an `else`), its items from
    `start` on, and the index after its `end`."""
    taken, index, stop = _sequence(items, start)
    options = [taken]
    while stop == "else if":
        other, index, stop = _sequence(items, index + 1)
        options.append(other)
    if stop == "else":
        other, index, stop = _sequence(items, index + 1)
        if stop != "end":
            raise UnknownAction("an `if` with two `else`" if stop else "an `if` with no `end`")
        options.append(other)
    else:
        options.append(EMPTY)
    if stop != "end":
        raise UnknownAction("an `if` with no `end`")
    forms = [o.forms for o in options]
    return (
        Hole(
            "(?:" + "|".join(o.pattern for o in options) + ")",
            frozenset().union(*(o.characters for o in options)),
            max(o.longest for o in options),
            None if None in forms else tuple(dict.fromkeys(f for fs in forms for f in fs or ())),
        ),
        index + 1,
    )


def skeleton(word: str) -> tuple[list[str], list[Hole]]:
    """The runs and holes of a template word. Raises `UnknownAction`."""
    text = json.dumps(word, ensure_ascii=False)[1:-1]
    try:
        items = gotemplate.pieces(text)
    except gobuiltins.TemplateError as error:
        raise UnknownAction(str(error)) from None
    runs: list[str] = [""]
    holes: list[Hole] = []
    index = 0
    between = False  # a hole has begun since the last run
    while index < len(items):
        item = items[index]
        if isinstance(item, str):
            if item and between:
                runs.append("")
                between = False
            if item:
                runs[-1] += _decoded(item)
            index += 1
            continue
        if item.keyword in ("else", "else if", "end"):
            raise UnknownAction(f"an unmatched {{{{ {item.text} }}}}")
        if item.keyword == "if":
            hole, index = _branches(items, index + 1)
        else:
            found = _value(item.node) if item.node is not None else None
            if found is None:
                raise UnknownAction(f"the action {{{{ {item.text} }}}}")
            hole, index = found, index + 1
        if between:
            holes[-1] = holes[-1].then(hole)
        else:
            holes.append(hole)
            between = True
    if between:
        runs.append("")
    if any("\n" in hole.characters for hole in holes):
        # The core refuses a hole with a newline, and the policy's patterns then match none.
        raise UnknownAction("an action that writes a newline")
    for number, hole in enumerate(holes[:-1], start=1):
        # The last run is found by the script's end; each other one by its first occurrence.
        if hole.hides(runs[number]):
            raise UnknownAction(
                f"a text that may first occur inside the hole before it: {runs[number]!r}"
            )
    return runs, holes


def rendered(word: str, data: Mapping[str, Any]) -> str:
    """The word as KServe renders it: its JSON text run as the template, decoded."""
    return _decoded(gotemplate.render(json.dumps(word, ensure_ascii=False)[1:-1], data))


def _probe(*, first: bool) -> dict[str, Any]:
    """Template data for a probe service: the first takes every `if`, with long values; the
    second none, with short ones."""
    parallelism: dict[str, Any] = (
        {"data": 16, "dataLocal": 8, "tensor": 8, "expert": True, "dataRPCPort": 5601}
        if first
        else {"data": 0, "dataLocal": 0, "tensor": 1, "expert": False, "dataRPCPort": 0}
    )
    spec: dict[str, Any] = {
        "model": {"name": "probe-org/model-a.v1:latest" if first else "m"},
        "parallelism": parallelism,
        "prefill": {"parallelism": dict(parallelism)},
    }
    if first:
        spec["kvCacheOffloading"] = {"enabled": True}
        spec["template"] = {"terminationGracePeriodSeconds": 120}
    service = {
        "metadata": {
            "name": "probe-one" if first else "p",
            "namespace": "probe-ns" if first else "n",
        },
        "spec": spec,
    }
    return llmrender.template_data(service, tls=first)


PROBES: Final = (_probe(first=True), _probe(first=False))


def _changes(old: str, new: str) -> list[tuple[int, int, str]]:
    """(start, end, new text) of each change that makes `new` of `old`: lines are matched
    first, then characters within each changed block, which keeps the work near linear on
    scripts of thousands of characters."""
    old_lines = old.splitlines(keepends=True)
    new_lines = new.splitlines(keepends=True)
    old_at = [0]
    for line in old_lines:
        old_at.append(old_at[-1] + len(line))
    new_at = [0]
    for line in new_lines:
        new_at.append(new_at[-1] + len(line))
    found = []
    lines = difflib.SequenceMatcher(None, old_lines, new_lines, autojunk=False)
    for tag, low, high, new_low, new_high in lines.get_opcodes():
        if tag == "equal":
            continue
        base, into = old_at[low], new_at[new_low]
        before, after = old[base : old_at[high]], new[into : new_at[new_high]]
        chars = difflib.SequenceMatcher(None, before, after, autojunk=False)
        for kind, start, stop, new_start, new_stop in chars.get_opcodes():
            if kind != "equal":
                found.append((base + start, base + stop, after[new_start:new_stop]))
    return found


def edits_between(
    old: str, new: str, *, runs: Sequence[str], starts: Sequence[int]
) -> list[RunEdit] | None:
    """The edits that make `new` of `old`, each inside one run (runs at `starts`), or None
    when one touches a hole."""
    found = []
    for low, high, text in _changes(old, new):
        run = next(
            (
                number
                for number, start in enumerate(starts)
                if start <= low and high <= start + len(runs[number])
            ),
            None,
        )
        if run is None:
            return None
        found.append(RunEdit(run, low - starts[run], high - low, text))
    return found


Repair = Callable[[str], tuple[Any, str] | None]


def _utf8(text: str) -> int:
    return len(text.encode("utf-8", "surrogatepass"))


def within(runs: Sequence[str], holes: Sequence[Hole], max_bytes: int) -> int:
    """The most characters a rendering may have and be sure to stay within `max_bytes` in
    UTF-8 (the webhook leaves a larger script alone): exact when the holes write ASCII only,
    as every known action does; negative when the runs alone are over."""
    fixed = sum(len(run) for run in runs)
    width = max((_utf8(c) for hole in holes for c in hole.characters), default=1)
    return fixed + (max_bytes - sum(_utf8(run) for run in runs)) // width


def compiled(
    word: str, repair: Repair, *, max_bytes: int | None = None
) -> tuple[ScriptPattern, tuple[int, ...], Any] | str:
    """The pattern of a preset's script word, the longest text of each of its holes, and
    what `repair` (the core's, on a pod with that script: (what the policy records, the new
    script), None when it is left alone) makes of the first probe's rendering; or why the
    policy leaves the preset to the webhook. With `max_bytes`, the pattern reads no rendering
    over that many bytes (the core leaves those alone)."""
    try:
        runs, holes = skeleton(word)
    except UnknownAction as unknown:
        return f"its script holds {unknown}"
    if not holes:
        return ""
    longest = sum(len(run) for run in runs) + sum(hole.longest for hole in holes)
    limit = longest if max_bytes is None else min(longest, within(runs, holes, max_bytes))
    if limit < sum(len(run) for run in runs):
        return ""
    gaps = tuple(f"^(?:{hole.pattern})$" for hole in holes)
    bare = ScriptPattern(tuple(runs), gaps, (), longest)
    outcomes = []
    for data in PROBES:
        script = rendered(word, data)
        starts = bare.starts(script)
        if starts is None:
            return "a probe rendering of its script is not read back as the pattern"
        outcomes.append((script, starts, repair(script)))
    (script, starts, first), *others = outcomes
    if first is None:
        return ""
    edits = edits_between(script, first[1], runs=runs, starts=starts)
    if not edits:
        return "its repair changes text an action writes"
    pattern = ScriptPattern(tuple(runs), gaps, tuple(edits), limit)
    for other, _, outcome in others:
        if outcome is None or outcome[0] != first[0] or pattern.repaired(other) != outcome[1]:
            return "its repair differs between services rendered from it"
    return pattern, tuple(hole.longest for hole in holes), first[0]
