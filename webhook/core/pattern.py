"""A preset's script as a compiled policy knows it: the literal runs its template writes, with
a hole between each two where an action writes a value, each hole a pattern of what it may
hold; and the repair as edits inside the runs.

A policy compiled from a preset matches a pod's script against this in CEL, and `check
--audit` matches it here, so both must read a script the same way, which is this module's
job: each run is found by the first occurrence after the one before (the last one ends the
script), and each hole must match its pattern and hold no newline. A run never starts with a
character its hole may hold, so the first occurrence is the run's place in every rendering.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class RunEdit:
    """The repair's change to one run: `length` code points from `offset` become `text`."""

    run: int
    offset: int
    length: int
    text: str


@dataclass(frozen=True, slots=True)
class ScriptPattern:
    """Runs (two or more), a hole pattern between each two (anchored, `^(?:…)$`), the edits
    in script order, and the longest script the template renders."""

    runs: tuple[str, ...]
    gaps: tuple[str, ...]
    edits: tuple[RunEdit, ...]
    longest: int

    def starts(self, script: str) -> list[int] | None:
        """Where each run starts in `script`, or None when the script is not a rendering."""
        runs = self.runs
        if len(script) > self.longest or not script.startswith(runs[0]):
            return None
        if not script.endswith(runs[-1]):
            return None
        starts = [0]
        for number in range(1, len(runs)):
            after = starts[-1] + len(runs[number - 1])
            if number == len(runs) - 1:
                found = len(script) - len(runs[-1])
                found = found if found >= after else -1
            else:
                found = script.find(runs[number], after)
            if found < 0:
                return None
            hole = script[after:found]
            if "\n" in hole or re.search(self.gaps[number - 1], hole) is None:
                return None
            starts.append(found)
        return starts

    def repaired(self, script: str) -> str | None:
        """The script as the repair leaves it, or None when it is not a rendering."""
        starts = self.starts(script)
        if starts is None:
            return None
        return apply(script, self.edits, starts)


def apply(script: str, edits: Sequence[RunEdit], starts: Sequence[int]) -> str:
    """`script` with `edits` made, its runs starting at `starts`."""
    out = []
    position = 0
    for edit in edits:
        at = starts[edit.run] + edit.offset
        out.append(script[position:at] + edit.text)
        position = at + edit.length
    out.append(script[position:])
    return "".join(out)
