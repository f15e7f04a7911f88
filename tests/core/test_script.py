"""Script edits: where `"$@"` lands, which commands launch a server, the MODEL block."""

from __future__ import annotations

import pytest

from tests.support import shell
from webhook.core.names import Rule
from webhook.core.script import MODEL_LINE, ScriptRewrite, launch_kind, rewrite_script


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
