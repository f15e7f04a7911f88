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


# (args, the positions, from 1, whose delivery changes): every arg after one that cuts eval's
# line off (`;`, `#`, a lone quote) is named, literal or not, however many follow it.
CUTS: list[tuple[list[str], list[int]]] = [
    (["--semi=a;b", "--x=1", "'--y=2'", "--z"], [1, 2, 3, 4]),
    (["--a=1", "#", "--b", "--c"], [2, 3, 4]),
    (["--a=1", "--note=#1", "--b"], [2]),  # `#` inside a word cuts nothing off
    (["it's", "--b", "--c"], [1, 2, 3]),
    (['"open', "--b", "--c"], [1, 2, 3]),
    (["--a=1", "'quoted'", "x;y", "'lit'", "--z", "--last"], [3, 4, 5, 6]),
    (["--a=1", "--b=2"], []),
]


@pytest.mark.parametrize(("args", "named"), CUTS)
def test_every_arg_after_a_cut_is_named(args: list[str], named: list[int]) -> None:
    _, notes = unwrap(args, first_position=1)
    assert [int(note.split(" ", 2)[1]) for note in notes] == named


def _arrives_after(args: list[str]) -> bool:
    """Whether a word placed after `args` still reaches the command under today's eval."""
    script = r'eval "printf \"%s\\0\" $@ LAST-WORD" 2>/dev/null'
    completed = subprocess.run(
        ["/bin/bash", "-c", script, "--", *args], capture_output=True, text=True, check=False
    )
    return completed.stdout.split("\0")[-2:-1] == ["LAST-WORD"]


@pytest.mark.parametrize(("args", "named"), CUTS)
def test_bash_cuts_off_exactly_the_args_named_after_the_cut(
    args: list[str], named: list[int]
) -> None:
    # Real bash decides which args are cut off: an arg is, when a word after the args before
    # it no longer arrives. Each such arg must be among those named.
    for position in range(1, len(args) + 1):
        if not _arrives_after(args[: position - 1]):
            assert position in named, position


def test_unwrap_sums_up_past_the_limit() -> None:
    _, notes = unwrap([f"a b{i}" for i in range(NAMED_LIMIT + 3)], first_position=1)
    assert len(notes) == NAMED_LIMIT + 1
    assert notes[-1].startswith("and 3 more args")
