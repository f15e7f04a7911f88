"""A script read as a compiled preset's pattern (webhook/core/pattern.py): where its runs
start, and the repair made as edits inside them."""

from __future__ import annotations

import pytest

from webhook.core.pattern import RunEdit, ScriptPattern

DIGITS = "^(?:[0-9]{1,3})$"
# `--tp=<n> serve <n> $@`, its repair quoting `$@`.
PATTERN = ScriptPattern(
    runs=("--tp=", " serve ", " $@"),
    gaps=(DIGITS, DIGITS),
    edits=(RunEdit(run=2, offset=1, length=2, text='"$@"'),),
    longest=30,
)

READINGS = [
    # (script, where the runs start, the repaired script)
    ("--tp=8 serve 16 $@", [0, 6, 15], '--tp=8 serve 16 "$@"'),
    ("--tp=123 serve 1 $@", [0, 8, 16], '--tp=123 serve 1 "$@"'),
    # A run is found where it first occurs after the one before; the hole must then match.
    ("--tp=8 serve 1 serve 2 $@", None, None),
    ("--tp=1234 serve 1 $@", None, None),  # a hole longer than its pattern allows
    ("--tp= serve 1 $@", None, None),  # an empty hole its pattern refuses
    ("--tp=8\n serve 1 $@", None, None),  # a newline, which Python's `$` would let through
    ("--tp=8 serve 1 $@ x", None, None),  # not the last run at the end
    ("tp=8 serve 1 $@", None, None),  # not the first run at the start
    ("--tp=8 serve 1 $@" + " " * 20, None, None),  # longer than any rendering
]


@pytest.mark.parametrize(("script", "starts", "repaired"), READINGS)
def test_a_script_is_read_as_a_rendering_of_the_pattern_or_not(
    script: str, starts: list[int] | None, repaired: str | None
) -> None:
    assert PATTERN.starts(script) == starts
    assert PATTERN.repaired(script) == repaired


def test_a_repaired_script_is_no_rendering_of_its_pattern() -> None:
    # The edits change a run, so a pod the policy repaired is not repaired again.
    repaired = PATTERN.repaired("--tp=8 serve 16 $@")
    assert repaired is not None
    assert PATTERN.starts(repaired) is None
