"""What kube-apiserver accepts of a policy, and what one costs: code points in one expression,
the CEL cost of one evaluation (Kubernetes' cost model), the bytes of one object (`Figures`)."""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

from webhook.offline.policy.shapes import POSITIONS, Shape

# What kube-apiserver accepts: code points in one CEL expression, the CEL cost of one
# evaluation of an expression, and the bytes of one stored object (etcd's default request
# limit, 1.5 MiB).
EXPRESSION_LIMIT: Final = 100_000
COST_LIMIT: Final = 1_000_000
OBJECT_LIMIT: Final = 1_572_864


class PolicyTooLarge(ValueError):
    """A script that no policy kube-apiserver accepts can hold; the message names the limit."""


@dataclass(frozen=True, slots=True)
class Figures:
    """What kube-apiserver checks of one policy: its largest expression in code points, its
    size as stored, and the estimated CEL cost of one pod's admission."""

    name: str
    scripts: int
    expression: int
    size: int
    cost: int

    def over(self) -> str | None:
        """The first limit the policy is over, in words, or None when it fits."""
        if self.expression > EXPRESSION_LIMIT:
            return (
                f"a CEL expression of {self.expression} code points, over kube-apiserver's "
                f"limit of {EXPRESSION_LIMIT}"
            )
        if self.cost > COST_LIMIT:
            return f"an estimated CEL cost of {self.cost}, over the limit of {COST_LIMIT}"
        if self.size > OBJECT_LIMIT:
            return f"{self.size} bytes, over the {OBJECT_LIMIT} an object may hold"
        return None


def _expressions(spec: Mapping[str, Any]) -> Iterator[str]:
    for entry in (*spec["matchConditions"], *spec["variables"]):
        yield entry["expression"]
    for mutation in spec["mutations"]:
        yield mutation["jsonPatch"]["expression"]


def figures(policy: Mapping[str, Any], shapes: Sequence[Shape]) -> Figures:
    """The figures kube-apiserver checks of a policy compiled from `shapes`."""
    return Figures(
        name=policy["metadata"]["name"],
        scripts=len(shapes),
        expression=max(len(text) for text in _expressions(policy["spec"])),
        size=len(json.dumps(policy, ensure_ascii=False, separators=(",", ":")).encode()),
        cost=estimated_cost(shapes),
    )


def estimated_cost(shapes: Sequence[Shape]) -> int:
    """An upper bound of the CEL cost of one admission, by the cost model of Kubernetes' CEL
    libraries (a string compared, searched or cut costs 1 + a tenth of its length; a regex
    match, a tenth of the text's length times a quarter of the pattern's): every exact
    shape's command and script compared, and every pattern read, as if each one's cheap
    conditions held, then one pattern's edits made."""
    exact = sum(
        sum(1 + len(word) // 10 for word in (*shape.command, shape.script or ""))
        for shape in shapes
        if shape.pattern is None
    )
    patterns = [shape for shape in shapes if shape.pattern is not None]
    read = sum(_pattern_cost(shape) for shape in patterns)
    edits = max((_edits_cost(shape) for shape in patterns), default=0)
    return exact + read + edits + 64 * POSITIONS


def _pattern_cost(shape: Shape) -> int:
    """What reading a script as one pattern costs at most: its command compared, its first
    and last runs, a search for each run and a cut for each hole (each over the whole
    script, which its size bounds), and each hole's pattern match (over its text, which its
    size test bounds)."""
    pattern = shape.pattern
    assert pattern is not None
    script = 1 + pattern.longest // 10
    words = sum(1 + len(word) // 10 for word in shape.command)
    ends = 2 + (len(pattern.runs[0]) + len(pattern.runs[-1])) // 10
    runs = len(pattern.runs)
    holes = sum(
        (1 + widest // 10) * (2 + len(gap) // 4)
        for widest, gap in zip(shape.holes, pattern.gaps, strict=True)
    )
    return words + ends + 2 * runs * script + holes


def _edits_cost(shape: Shape) -> int:
    """What making one pattern's edits costs at most: a cut of the script for each, and the
    join of the new script."""
    pattern = shape.pattern
    assert pattern is not None
    return (len(pattern.edits) + 1) * (1 + pattern.longest // 10) + 1 + pattern.longest // 5
