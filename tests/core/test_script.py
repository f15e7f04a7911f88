"""Script edits: where `"$@"` lands, which commands launch a server, the MODEL block."""

from __future__ import annotations

import subprocess

import pytest

from tests.support import shell
from webhook.core.bash import FORWARDS_LIMIT, launch_kind, parse
from webhook.core.names import Reason, Rule
from webhook.core.script import MODEL_LINE, ScriptRewrite, rewrite_script


def rewrite(script: str) -> ScriptRewrite:
    return rewrite_script(script, frozenset(Rule))


@pytest.mark.parametrize(
    ("words", "kind"),
    [
        (["python", "-m", "huggingfaceserver", "--x"], "python -m huggingfaceserver"),
        (["python3", "-m", "huggingfaceserver"], "python -m huggingfaceserver"),
        (["/usr/bin/python3.11", "-m", "huggingfaceserver"], "python -m huggingfaceserver"),
        (
            ["exec", "python3", "-m", "vllm.entrypoints.openai.api_server"],
            "python -m vllm.entrypoints.openai.api_server",
        ),
        (["vllm", "serve", "/mnt/models"], "vllm serve"),
        (["exec", "vllm", "serve"], "vllm serve"),
        (["exec", "$CMD"], "exec-indirection"),
        (["exec", "${CMD}"], "exec-indirection"),
        (["ray", "start", "--address=x", "--block"], "ray start --block"),
        (["ray", "start", "--head"], None),
        (["ray", "status"], None),
        (["python", "./huggingfaceserver/health_check.py", "startup"], None),
        (["python", "-m", "pip", "install"], None),
        (["vllm", "bench"], None),
        (["$CMD"], None),
        (["exec"], None),
        ([], None),
    ],
)
def test_launch_kind(words: list[str], kind: str | None) -> None:
    assert launch_kind(words) == kind


@pytest.mark.parametrize(
    ("script", "expected"),
    [
        ("python -m huggingfaceserver --a\n", 'python -m huggingfaceserver --a "$@"\n'),
        ("python -m huggingfaceserver --a   \n", 'python -m huggingfaceserver --a "$@"   \n'),
        (
            "python -m huggingfaceserver \\\n  --a \\\n  --b\n",
            'python -m huggingfaceserver \\\n  --a \\\n  --b "$@"\n',
        ),
        (
            "python -m huggingfaceserver --a 2>&1 | tee log\n",
            'python -m huggingfaceserver --a "$@" 2>&1 | tee log\n',
        ),
        (
            "python -m huggingfaceserver --a > out.log\n",
            'python -m huggingfaceserver --a "$@" > out.log\n',
        ),
        (
            "python -m huggingfaceserver --a && echo done\n",
            'python -m huggingfaceserver --a "$@" && echo done\n',
        ),
        (
            "python -m huggingfaceserver --a; echo done\n",
            'python -m huggingfaceserver --a "$@"; echo done\n',
        ),
        (
            "python -m huggingfaceserver --a # serve\n",
            'python -m huggingfaceserver --a "$@" # serve\n',
        ),
        ("exec $CMD\n", 'exec $CMD "$@"\n'),
        (
            "if true; then\n  exec vllm serve m\nfi\n",
            'if true; then\n  exec vllm serve m "$@"\nfi\n',
        ),
        (
            "ray start --head\nray start --address=h --block\n",
            'ray start --head\nray start --address=h --block "$@"\n',
        ),
        (
            "python -m huggingfaceserver --a\npython -m huggingfaceserver --b\n",
            'python -m huggingfaceserver --a\npython -m huggingfaceserver --b "$@"\n',
        ),
        (
            "V=$(python -m huggingfaceserver --version)\npython -m huggingfaceserver --a\n",
            'V=$(python -m huggingfaceserver --version)\npython -m huggingfaceserver --a "$@"\n',
        ),
        (
            "echo 'café'\npython -m huggingfaceserver --name=ñ\n",
            "echo 'café'\npython -m huggingfaceserver --name=ñ \"$@\"\n",
        ),
    ],
)
def test_forwarding_lands_after_the_last_word(script: str, expected: str) -> None:
    result = rewrite(script)
    assert result.script == expected
    assert Rule.FORWARD_ARGS in result.rules
    assert shell.parses(expected)


def test_launch_command_that_already_forwards_gets_no_second_copy() -> None:
    script = 'python -m huggingfaceserver --a "$@"\n'
    result = rewrite(script)
    assert result.script == script
    assert result.rules == ()


@pytest.mark.parametrize(
    ("script", "detail"),
    [
        ("echo hello\n", "no server launch command found in the script"),
        (
            "cat <<EOF\npython -m huggingfaceserver\nEOF\n",
            "no server launch command found in the script",
        ),
        (
            'CMD="python -m huggingfaceserver"\necho "$CMD"\n',
            "no server launch command found in the script",
        ),
        ("x=$(python -m huggingfaceserver)\n", "no server launch command found in the script"),
        ('echo "unterminated\npython -m huggingfaceserver\n', "the script does not parse as bash"),
        ("", "no server launch command found in the script"),
    ],
)
def test_no_launch_command(script: str, detail: str) -> None:
    result = rewrite(script)
    assert (result.script, result.detail) == (None, detail)


LAUNCH = "python -m huggingfaceserver --model_dir=${MODEL}\n"


@pytest.mark.parametrize(
    "block",
    [
        "export MODEL=${MODEL_ID}\nif [[ ! -z ${MODEL_DIR} ]]\nthen\n  export MODEL=${MODEL_DIR}\nfi\n",
        "export MODEL=$MODEL_ID\nif [[ ! -z $MODEL_DIR ]]; then\n  MODEL=$MODEL_DIR\nfi\n",
        "export MODEL=${MODEL_ID}\nif [[  !  -z  ${MODEL_DIR}  ]] ; then MODEL=${MODEL_DIR} ; fi\n",
        "export MODEL=${MODEL_ID}\n\nif [[ ! -z ${MODEL_DIR} ]]\n\nthen\n\n  MODEL=${MODEL_DIR}\n\nfi\n",
    ],
)
def test_model_block_becomes_one_line(block: str) -> None:
    result = rewrite("echo start\n" + block + LAUNCH)
    assert result.script == f'echo start\n{MODEL_LINE}\n{LAUNCH[:-1]} "$@"\n'
    assert Rule.MODEL_DEFAULT in result.rules


@pytest.mark.parametrize(
    "block",
    [
        # A comment between the two would be lost: leave it.
        "export MODEL=${MODEL_ID}\n# pick\nif [[ ! -z ${MODEL_DIR} ]]\nthen\n  MODEL=${MODEL_DIR}\nfi\n",
        # An else branch means something else.
        "export MODEL=${MODEL_ID}\nif [[ ! -z ${MODEL_DIR} ]]\nthen\n  MODEL=${MODEL_DIR}\nelse\n  MODEL=x\nfi\n",
        # Another variable, or another test.
        "export MODEL=${MODEL_ID}\nif [[ ! -z ${OTHER} ]]\nthen\n  MODEL=${OTHER}\nfi\n",
        "export MODEL=${MODEL_ID}\nif [[ -z ${MODEL_DIR} ]]\nthen\n  MODEL=${MODEL_DIR}\nfi\n",
        # A second statement in the body.
        "export MODEL=${MODEL_ID}\nif [[ ! -z ${MODEL_DIR} ]]\nthen\n  MODEL=${MODEL_DIR}\n  echo x\nfi\n",
        # Not exported first.
        "MODEL=${MODEL_ID}\nif [[ ! -z ${MODEL_DIR} ]]\nthen\n  MODEL=${MODEL_DIR}\nfi\n",
    ],
)
def test_lookalike_model_blocks_are_left_alone(block: str) -> None:
    result = rewrite(block + LAUNCH)
    assert result.script == block + LAUNCH[:-1] + ' "$@"\n'
    assert Rule.MODEL_DEFAULT not in result.rules


def test_model_block_after_the_launch_command_is_left_alone() -> None:
    block = "export MODEL=${MODEL_ID}\nif [[ ! -z ${MODEL_DIR} ]]; then MODEL=${MODEL_DIR}; fi\n"
    result = rewrite(LAUNCH + block)
    assert result.script == LAUNCH[:-1] + ' "$@"\n' + block


def test_rewrite_adds_no_kubernetes_expansion() -> None:
    script = (
        "export MODEL=${MODEL_ID}\nif [[ ! -z ${MODEL_DIR} ]]; then MODEL=${MODEL_DIR}; fi\n"
        + LAUNCH
    )
    result = rewrite(script)
    assert result.script is not None
    assert result.script.count("$(") == script.count("$(")
    assert result.script.count("$$") == script.count("$$")


# Characters tree-sitter-bash's scanner crashes on (SIGSEGV) after `{` or `${`.
UNSUPPORTED = ["\U000c1113", "\U0010ffff", "\U0001f600", "\U00010000"]


@pytest.mark.parametrize("char", UNSUPPORTED)
@pytest.mark.parametrize("prefix", ["{", "${", "x=${", "python -m huggingfaceserver # "])
def test_a_character_above_the_bmp_is_never_parsed(prefix: str, char: str) -> None:
    rewritten = rewrite(prefix + char)
    assert (rewritten.script, rewritten.reason) == (None, Reason.UNSUPPORTED_CHARACTERS)
    assert parse((prefix + char).encode()) is None


@pytest.mark.parametrize("char", ["\u00e9", "\uffff", "\u4e2d", "\ud800"])
def test_characters_up_to_uffff_are_parsed(char: str) -> None:
    rewritten = rewrite(f"echo '{char}'\npython -m huggingfaceserver\n")
    assert rewritten.rules == (Rule.FORWARD_ARGS,)


@pytest.mark.parametrize(
    ("words", "kind"),
    [
        (["eval", '"exec vllm serve \\\n  /mnt/models'], "eval vllm serve"),
        (["eval", '"vllm serve /mnt/models $@"'], "eval vllm serve"),
        (
            ["eval", '"python3 -m vllm.entrypoints.openai.api_server --x"'],
            "eval python -m vllm.entrypoints.openai.api_server",
        ),
        (["eval", '"python3 -m pip install vllm"'], None),
        (["eval", '"exec $CMD"'], None),
        (["eval", '"echo vllm serve"'], None),
        (["eval"], None),
    ],
)
def test_eval_launch_kind(words: list[str], kind: str | None) -> None:
    assert launch_kind(words) == kind


# (script, its rewrite, or None and the reason it is left alone)
EVAL_CASES: list[tuple[str, str | None, Reason | None]] = [
    ('eval "vllm serve /m $@"', 'eval "vllm serve /m \\"\\$@\\""', None),
    ('eval "vllm serve /m ${@}"', 'eval "vllm serve /m \\"\\$@\\""', None),
    ('eval "vllm serve /m $*"', 'eval "vllm serve /m \\"\\$@\\""', None),
    ('eval "vllm serve /m $@ --trust"', 'eval "vllm serve /m \\"\\$@\\" --trust"', None),
    (
        'eval "vllm serve \\\n  $@ \\\n  --trust"',
        'eval "vllm serve \\\n  \\"\\$@\\" \\\n  --trust"',
        None,
    ),
    ('eval "vllm serve "m" \\\n  $@"', 'eval "vllm serve "m" \\\n  \\"\\$@\\""', None),
    ('eval "vllm serve /m $@ $@"', 'eval "vllm serve /m \\"\\$@\\""', None),
    ('eval "vllm serve /m --x"', 'eval "vllm serve /m --x \\"\\$@\\""', None),
    ('eval "exec vllm serve \\"\\$@\\""', 'eval "exec vllm serve \\"\\$@\\""', None),
    ('eval "vllm serve /m --x=$@"', None, Reason.READS_POSITIONAL_PARAMS),
    ("eval \"vllm serve /m '$@'\"", None, Reason.READS_POSITIONAL_PARAMS),
    ('eval "vllm serve /m $1"', None, Reason.READS_POSITIONAL_PARAMS),
    ('eval "vllm serve" $@', None, Reason.READS_POSITIONAL_PARAMS),
    ('eval "vllm serve /m; echo done"', None, Reason.READS_POSITIONAL_PARAMS),
    ('f() {\n  eval "vllm serve /m $@"\n}\nf', None, Reason.LAUNCH_IN_FUNCTION),
]


@pytest.mark.parametrize(("script", "expected", "reason"), EVAL_CASES)
def test_the_eval_string_hands_eval_a_quoted_dollar_at(
    script: str, expected: str | None, reason: Reason | None
) -> None:
    result = rewrite(script)
    assert (result.script, result.reason) == (expected, reason), result.detail
    if expected is not None:
        assert result.evaluated
        assert shell.parses(expected)
        assert rewrite(expected).rules == ()


_MANY = FORWARDS_LIMIT + 1
# (script, its rewrite, or None and the reason it is left alone): the bounds that keep the cost
# of a script linear, at and past their limits.
BOUNDED_CASES: list[tuple[str, str | None, Reason | None]] = [
    (
        "python -m huggingfaceserver" + " $@" * FORWARDS_LIMIT,
        'python -m huggingfaceserver "$@"',
        None,
    ),
    ("python -m huggingfaceserver" + " $@" * _MANY, None, Reason.READS_POSITIONAL_PARAMS),
    ('eval "vllm serve' + " $@" * _MANY + '"', None, Reason.READS_POSITIONAL_PARAMS),
    (
        'CMD="vllm serve' + " $@" * _MANY + '"\nexec $CMD',
        None,
        Reason.READS_POSITIONAL_PARAMS,
    ),
    # Many `$0` and functions reading their args are no args read by the script itself.
    (
        "echo $0\n" * _MANY + "python -m huggingfaceserver",
        "echo $0\n" * _MANY + 'python -m huggingfaceserver "$@"',
        None,
    ),
    (
        'f() { echo "$1"; }\n' * _MANY + "python -m huggingfaceserver",
        'f() { echo "$1"; }\n' * _MANY + 'python -m huggingfaceserver "$@"',
        None,
    ),
    # Past the limit of spots that look like positional parameters and are none, the script is
    # taken to read its args: nothing is added.
    (
        "echo '$1'\n" * _MANY + "python -m huggingfaceserver",
        "echo '$1'\n" * _MANY + "python -m huggingfaceserver",
        None,
    ),
    (
        "echo '$1'\n" * FORWARDS_LIMIT + "python -m huggingfaceserver",
        "echo '$1'\n" * FORWARDS_LIMIT + 'python -m huggingfaceserver "$@"',
        None,
    ),
    # So are its positional parameters taken to move, past that many spots where `set`, `eval`
    # … stand and move none.
    (
        "set -e\n" * FORWARDS_LIMIT + "python -m huggingfaceserver",
        "set -e\n" * FORWARDS_LIMIT + 'python -m huggingfaceserver "$@"',
        None,
    ),
    ("set -e\n" * _MANY + "python -m huggingfaceserver", None, Reason.READS_POSITIONAL_PARAMS),
]


@pytest.mark.parametrize(("script", "expected", "reason"), BOUNDED_CASES)
def test_the_bounds_of_a_scripts_analysis(
    script: str, expected: str | None, reason: Reason | None
) -> None:
    result = rewrite(script)
    assert (result.script, result.reason) == (expected, reason), result.detail


# A launch command run from an array (KServe's SGLang preset, PR #5124): (script, new script,
# or None with the reason it is left alone).
ARRAY_CASES = [
    (
        'args=(python3 -m sglang.launch_server --x)\nexec "${args[@]}" "$@"\n',
        'args=(python3 -m sglang.launch_server --x)\nexec "${args[@]}" "$@"\n',
        None,
    ),
    (
        'args=(python3 -m sglang.launch_server --x)\nexec "${args[@]}" $@\n',
        'args=(python3 -m sglang.launch_server --x)\nexec "${args[@]}" "$@"\n',
        None,
    ),
    ('cmd=(vllm serve /m)\n"${cmd[@]}"\n', 'cmd=(vllm serve /m)\n"${cmd[@]}" "$@"\n', None),
    (
        'args=(vllm serve /m)\nexec "${args[@]}" $@ 2>&1\n',
        'args=(vllm serve /m)\nexec "${args[@]}" "$@" 2>&1\n',
        None,
    ),
    ('args=(vllm serve $@)\nexec "${args[@]}"\n', None, Reason.READS_POSITIONAL_PARAMS),
    # Only one plain `NAME=(…)` at the top level, which nothing else writes, is followed.
    ('args=(ray start --block --address=x)\nexec "${args[@]}"\n', None, Reason.NO_LAUNCH_COMMAND),
    (
        'f() { local args=(vllm serve /m); }\nf\nexec "${args[@]}"\n',
        None,
        Reason.NO_LAUNCH_COMMAND,
    ),
    ('( args=(vllm serve /m) )\nexec "${args[@]}"\n', None, Reason.NO_LAUNCH_COMMAND),
    (
        'if true; then args=(vllm serve /m); fi\nexec "${args[@]}"\n',
        None,
        Reason.NO_LAUNCH_COMMAND,
    ),
    ('args=(vllm serve /m)\nread -ra args\nexec "${args[@]}"\n', None, Reason.NO_LAUNCH_COMMAND),
    ('args=(vllm serve /m)\nargs[0]=echo\nexec "${args[@]}"\n', None, Reason.NO_LAUNCH_COMMAND),
    ('args=(vllm serve /m)\nargs+=(--x)\nexec "${args[@]}"\n', None, Reason.NO_LAUNCH_COMMAND),
    ('exec "${args[@]}"\nargs=(vllm serve /m)\n', None, Reason.NO_LAUNCH_COMMAND),
    ('args=(vllm serve /m)\nexec "${args[*]}" $@\n', None, Reason.NO_LAUNCH_COMMAND),
]


@pytest.mark.parametrize(("script", "expected", "reason"), ARRAY_CASES)
def test_a_launch_command_run_from_an_array(
    script: str, expected: str | None, reason: Reason | None
) -> None:
    result = rewrite(script)
    assert (result.script, result.reason) == (expected, reason), result.detail
    if expected is not None:
        assert shell.parses(expected)


# A command before the launch: whether the webhook takes it to move the script's positional
# parameters (the launch's `$@` is then not the script's args, and the script is left alone).
# Options alone move none; a few forms bash runs without moving them are taken to all the same
# (`shift 0`, `set --` given `"$@"`, a subshell's), as no runtime writes them.
MOVES_CASES = [
    ("set -e", False),
    ("set -x", False),
    ("set +e", False),
    ("set -eu", False),
    ("set -o pipefail", False),
    ("set -euo pipefail", False),
    ("set -oo pipefail errexit", False),
    ("set +o posix", False),
    ("set -o", False),
    ("set", False),
    ("set -e >/dev/null", False),
    ("builtin set -e", False),
    ("echo shift set --", False),
    ("f() { shift; set -- x; }; f a", False),
    ("shift", True),
    ("shift 2", True),
    ("shift 0", True),
    ("\\shift", True),
    ("builtin shift", True),
    ("command -p shift", True),
    ("set --", True),
    ("set -- a", True),
    ("set a", True),
    ("set -e a", True),
    ("set -e --", True),
    ("set - a", True),
    ("set -", True),
    ('set -- "$@"', True),
    ("set $OPTS", True),
    ('set -o "$NAME"', True),
    ("set -o -- a", True),
    ("FOO=1 set -- a", True),
    ('"set" -- a', True),
    ("eval shift", True),
    ("eval 'set -- a'", True),
    ("{ shift; }", True),
    ("if true; then shift; fi", True),
    ("( shift )", True),
    ("x=$(shift)", True),
]


@pytest.mark.parametrize(("command", "moves"), MOVES_CASES)
def test_what_may_move_the_args_before_the_launch(command: str, moves: bool) -> None:
    result = rewrite(f"{command}\nvllm serve /m\n")
    if moves:
        assert (result.script, result.reason) == (None, Reason.READS_POSITIONAL_PARAMS)
    else:
        assert result.script == f'{command}\nvllm serve /m "$@"\n', result.detail
    # What bash leaves of the args `a b`: where the webhook sees no move, there is none.
    script = f'exec 3>&1 >/dev/null 2>&1\n{command}\nprintf "%s\\0" "$@" >&3'
    left = subprocess.run(
        ["/bin/bash", "-c", script, "n", "a", "b"], capture_output=True, check=False
    )
    assert moves or left.stdout == b"a\0b\0"


@pytest.mark.parametrize(
    ("script", "expected"),
    [
        ('vllm serve /m "$@"\nshift\n', 'vllm serve /m "$@"\nshift\n'),
        ("vllm serve /m $@; set -- x\n", 'vllm serve /m "$@"; set -- x\n'),
        ("f() { shift; }\nvllm serve /m\n", 'f() { shift; }\nvllm serve /m "$@"\n'),
        (
            "while true; do\n  vllm serve /m\ndone\nshift\n",
            'while true; do\n  vllm serve /m "$@"\ndone\nshift\n',
        ),
        ("while true; do\n  vllm serve /m\n  shift\ndone\n", None),
        ("until false; do\n  shift\n  vllm serve /m $@\ndone\n", None),
        ('args=(vllm serve /m)\nshift\nexec "${args[@]}" $@\n', None),
        ('CMD="vllm serve /m $0 $@"\nshift\nexec $CMD\n', None),
        ('shift\neval "vllm serve /m $@"\n', None),
    ],
)
def test_a_move_counts_before_the_launch_or_in_its_loop(script: str, expected: str | None) -> None:
    result = rewrite(script)
    reason = None if expected is not None else Reason.READS_POSITIONAL_PARAMS
    assert (result.script, result.reason) == (expected, reason), result.detail
