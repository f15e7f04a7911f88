"""A preset's script compiled into a pattern (webhook/offline/preset_patterns.py): the runs and hole
patterns its actions make, the presets it refuses and why, and that the patterns read in
RE2 (the API server's) as in Python (the core's)."""

from __future__ import annotations

import re

import pytest

from webhook.offline import preset_patterns
from webhook.offline.preset_patterns import MODEL, NAME, NUMBER, UnknownAction, escaped, skeleton

SKELETONS = [
    # (script word, its runs, its holes' patterns)
    ("serve {{ .Spec.Model.Name }} $@", ["serve ", " $@"], [MODEL.pattern]),
    ("{{ .ObjectMeta.Name }}.svc", ["", ".svc"], [NAME.pattern]),
    (
        "tp={{ .Spec.Parallelism.Tensor }} dp={{ or .Spec.Parallelism.Data 1 }}",
        ["tp=", " dp=", ""],
        [NUMBER.pattern, NUMBER.pattern],
    ),
    # Actions with no text between them are one hole.
    (
        "x {{ .ObjectMeta.Name }}{{ .ObjectMeta.Namespace }} y",
        ["x ", " y"],
        [NAME.pattern + NAME.pattern],
    ),
    # An `if` holds any of its branches, or nothing without an `else`.
    ("a {{ if .GlobalConfig.EnableTLS }}--tls {{ end }}b", ["a ", "b"], ["(?:--tls |)"]),
    (
        "a {{ if .GlobalConfig.EnableTLS }}s{{ else }}p{{ end }} b",
        ["a ", " b"],
        ["(?:s|p)"],
    ),
    # `else if` chains hold each branch, or nothing without a last `else`.
    ("{{ if .X }}a{{ else if .Y }}b{{ end }}", ["", ""], ["(?:a|b|)"]),
    ("{{ if .X }}a{{ else if .Y }}b{{ else }}c{{ end }}", ["", ""], ["(?:a|b|c)"]),
    # v0.21's guarded numbers: a true `and` is its last argument, so `or` of it and a number
    # writes a number.
    (
        "dp={{ or (and .Spec.Parallelism .Spec.Parallelism.Data) 1 }} x",
        ["dp=", " x"],
        [NUMBER.pattern],
    ),
    (
        "--tp{{- if and .Spec.Parallelism .Spec.Parallelism.Tensor }} {{ .Spec.Parallelism.Tensor }}{{- end }}",
        ["--tp", ""],
        [f"(?: {NUMBER.pattern}|)"],
    ),
    # JSON text decoded: what the template writes as `\"` is a quote in the script.
    ('echo "{{ .Spec.Model.Name }}"', ['echo "', '"'], [MODEL.pattern]),
]


@pytest.mark.parametrize(("word", "runs", "patterns"), SKELETONS)
def test_a_script_word_is_read_as_runs_and_holes(
    word: str, runs: list[str], patterns: list[str]
) -> None:
    found, holes = skeleton(word)
    assert found == runs
    assert [hole.pattern for hole in holes] == patterns


REFUSED = [
    ("serve {{ .Spec.Model.URI }}", "the action {{ .Spec.Model.URI }}"),
    (
        "{{ or (and .Spec.Parallelism .Spec.Model.Name) 1 }}",
        "the action {{ or (and .Spec.Parallelism .Spec.Model.Name) 1 }}",
    ),
    ("{{ printf `%s` .Spec.Model.Name }}", "the action {{ printf `%s` .Spec.Model.Name }}"),
    # A parallelism's Expert is a boolean: it writes `true`, no number.
    ("--ep={{ or .Spec.Parallelism.Expert 1 }}", "the action {{ or .Spec.Parallelism.Expert 1 }}"),
    ("{{ range .X }}a{{ end }}", "{{ range .X }}: the action 'range' is not supported"),
    ("{{ if .X }}a{{ else }}b{{ else }}c{{ end }}", "an `if` with two `else`"),
    ("{{ if .X }}a", "an `if` with no `end`"),
    ("a {{ end }}", "an unmatched {{ end }}"),
    # The text after the hole may first occur inside it: its place is not known.
    (
        "tp={{ .Spec.Parallelism.Tensor }}11{{ .ObjectMeta.Name }}",
        "a text that may first occur inside the hole before it: '11'",
    ),
    ("a {{ if .X }}\n{{ end }}b", "an action that writes a newline"),
]


@pytest.mark.parametrize(("word", "reason"), REFUSED)
def test_a_script_word_the_compiler_does_not_know_is_refused_with_the_reason(
    word: str, reason: str
) -> None:
    with pytest.raises(UnknownAction, match=re.escape(reason)):
        skeleton(word)


HIDES = [
    # (hole, the run after it, whether the run may first occur inside what the hole holds)
    (NUMBER, " x", False),
    (NUMBER, "11", True),  # `1` then `11`: the first `11` starts inside the hole
    (NUMBER, "1x", False),  # `1` then `1x`: the first `1x` starts where the hole ends
    (preset_patterns.literal("--tls "), "tls", True),
    (preset_patterns.literal("--tls "), " b", False),
    (preset_patterns.literal("ab").then(NUMBER), "b1", True),
    (preset_patterns.literal("ab").then(NUMBER), "ba", False),
]


@pytest.mark.parametrize(("hole", "run", "hides"), HIDES)
def test_a_run_a_hole_may_hide_is_known(hole: preset_patterns.Hole, run: str, hides: bool) -> None:
    assert hole.hides(run) is hides


@pytest.mark.parametrize("text", ["a.b*c", "x\\y", "(a|b)", "[x]{1,2}", "^$?+", "a-b/c:d_e"])
def test_an_escaped_text_matches_itself_and_nothing_else(text: str) -> None:
    pattern = f"^(?:{escaped(text)})$"
    assert re.search(pattern, text)
    assert not re.search(pattern, text + "x")
    # RE2 refuses escapes Python accepts (`\/`, `\:`, `\_`): only operators are escaped.
    assert escaped(text).replace("\\\\", "").count("\\") == sum(
        c in "\\.^$|?*+()[]{}" for c in text if c != "\\"
    )


def test_a_repair_that_differs_between_services_leaves_the_preset() -> None:
    word = "serve {{ .Spec.Model.Name }} $@"

    def repair(script: str) -> tuple[str, str]:
        # A repair that writes the model's name: no edit inside the runs makes it.
        return "status", script.replace("$@", script.split()[1])

    assert (
        preset_patterns.compiled(word, repair)
        == "its repair differs between services rendered from it"
    )


def test_a_preset_the_core_repairs_compiles_to_its_edits() -> None:
    word = "serve {{ .Spec.Model.Name }} $@"
    found = preset_patterns.compiled(word, lambda script: ("status", script.replace("$@", '"$@"')))
    assert not isinstance(found, str)
    pattern, holes, recorded = found
    assert (pattern.runs, holes, recorded) == (("serve ", " $@"), (MODEL.longest,), "status")
    assert pattern.repaired("serve org/m $@") == 'serve org/m "$@"'
