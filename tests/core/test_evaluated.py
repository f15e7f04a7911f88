"""The quoted-word rule (DESIGN §2.1): which args eval makes one literal word of today, and
so are unwrapped by the repair, and which now arrive as written. Each row is also proven under
the real bash: `eval` of the arg gives exactly the word the table says."""

from __future__ import annotations

import subprocess

import pytest

from webhook.core.evaluated import NAMED_LIMIT, eval_word, unwrap

# (arg as written in the LLMInferenceService, the one word eval makes of it, or None when
# eval makes something else of it: several words, none, an expansion, an error).
TABLE: list[tuple[str, str | None]] = [
    ("--max-model-len=4096", "--max-model-len=4096"),
    ('\'{"name":"a","path":"/mnt/lora/a"}\'', '{"name":"a","path":"/mnt/lora/a"}'),
    ("--served-model-name='my model'", "--served-model-name=my model"),
    ('"my model"', "my model"),
    ("''", ""),
    ('""', ""),
    ("'it''s'", "its"),
    ("'a'\"b\"c", "abc"),
    ("'$(FOO)'", "$(FOO)"),  # the kubelet's $(FOO) stays as it was
    ("'*'", "*"),
    ("'a;b'", "a;b"),
    ("'#x'", "#x"),
    (
        "--otlp-traces-endpoint=http://collector:4317",
        "--otlp-traces-endpoint=http://collector:4317",
    ),
    ("a@b%c+d,e", "a@b%c+d,e"),
    ("--served-model-name=my model", None),  # eval splits it
    ("", None),  # eval drops it
    ("*", None),  # eval globs it
    ("$(id)", None),  # eval runs it
    ('"$HOME"', None),  # eval expands it
    ('"a\\"b"', None),
    ("it's", None),  # a lone quote: eval fails
    ("a;b", None),
    ("#x", None),
    ("{a,b}", None),  # eval brace-expands it
    ("~", None),
    ("ünïcødé", None),
    ("'$(FO'O')'", None),  # unwrapping would make a `$(FOO)` the kubelet expands
    ("'$''$(A)'", None),
]


@pytest.mark.parametrize(("arg", "word"), TABLE)
def test_eval_word(arg: str, word: str | None) -> None:
    assert eval_word(arg) == word


@pytest.mark.parametrize(("arg", "word"), [(a, w) for a, w in TABLE if w is not None])
def test_bash_eval_makes_that_one_word(arg: str, word: str) -> None:
    completed = subprocess.run(
        ["/bin/bash", "-c", 'eval "set -- $1"; printf "%s\\0" "$@"', "--", arg],
        capture_output=True,
        text=True,
        check=True,
    )
    assert completed.stdout.split("\0")[:-1] == [word]


def test_unwrap_names_every_arg_whose_delivery_changes() -> None:
    args = ["--a=1", "'x y'", "p q", "", "a;b", "--after-the-cut"]
    unwrapped, notes = unwrap(args, first_position=1)
    assert unwrapped == ("--a=1", "x y", "p q", "", "a;b", "--after-the-cut")
    assert [note.split(" ", 2)[1] for note in notes] == ["3", "4", "5", "6"]
    assert "as one word" in notes[0]
    assert "dropped" in notes[1]
    assert "cut it off" in notes[3]


def test_unwrap_sums_up_past_the_limit() -> None:
    _, notes = unwrap([f"a b{i}" for i in range(NAMED_LIMIT + 3)], first_position=1)
    assert len(notes) == NAMED_LIMIT + 1
    assert notes[-1].startswith("and 3 more args")
