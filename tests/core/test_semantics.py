"""The rewritten pods run under the real /bin/bash and hand the user's args to the server."""

from __future__ import annotations

from pathlib import Path

import jsonpatch
import pytest

from tests.support import kubelet
from tests.support.builders import admit, example
from tests.support.proof import assert_args_forwarded
from webhook.core import names
from webhook.core.names import Rule
from webhook.core.patch import to_json


@pytest.mark.parametrize(
    ("example_name", "container"),
    [
        ("legacy-head-pod.yaml", names.HEAD_CONTAINER),
        ("legacy-worker-pod.yaml", names.WORKER_CONTAINER),
    ],
)
def test_user_args_reach_the_launch_command(
    example_name: str, container: str, tmp_path: Path
) -> None:
    assert_args_forwarded(example(example_name), container, tmp_path)


# The MODEL block as runtimes wrote it, in every spelling DESIGN §3 admits.
MODEL_BLOCKS = {
    "export-in-body": (
        "export MODEL=${MODEL_ID}\nif [[ ! -z ${MODEL_DIR} ]]\nthen\n  export MODEL=${MODEL_DIR}\nfi\n"
    ),
    "plain-assignment": (
        "export MODEL=${MODEL_ID}\nif [[ ! -z ${MODEL_DIR} ]]\nthen\n  MODEL=${MODEL_DIR}\nfi\n"
    ),
    "no-braces-then-after-semicolon": (
        "export MODEL=$MODEL_ID\nif [[ ! -z $MODEL_DIR ]]; then\n    MODEL=$MODEL_DIR\nfi\n"
    ),
    "one-line": "export MODEL=${MODEL_ID}\nif [[ ! -z ${MODEL_DIR} ]]; then MODEL=${MODEL_DIR}; fi\n",
    "indented": (
        "    export MODEL=${MODEL_ID}\n    if [[ ! -z ${MODEL_DIR} ]]\n    then\n"
        "      export MODEL=${MODEL_DIR}\n    fi\n"
    ),
}
LAUNCH = 'python3 -m huggingfaceserver --model_dir=${MODEL} --model-env="$(printenv MODEL)"\n'

MODEL_DIR_CASES = {"set": "/mnt/models", "empty": "", "unset": None}
MODEL_ID_CASES = {"set": "org/model", "unset": None}


def _pod(script: str, env: dict[str, str | None]) -> dict[str, object]:
    container = {
        "name": names.HEAD_CONTAINER,
        "command": ["bash", "-c"],
        "args": [script],
        "env": [{"name": k, "value": v} for k, v in env.items() if v is not None],
    }
    return {
        "metadata": {"name": "p", "namespace": "ns", "labels": {names.ISVC_LABEL: "m"}},
        "spec": {"containers": [container]},
    }


@pytest.mark.parametrize("block", MODEL_BLOCKS)
@pytest.mark.parametrize("model_dir", MODEL_DIR_CASES)
@pytest.mark.parametrize("model_id", MODEL_ID_CASES)
def test_model_defaulting_matches_the_original_block(
    block: str, model_dir: str, model_id: str, tmp_path: Path
) -> None:
    env = {"MODEL_DIR": MODEL_DIR_CASES[model_dir], "MODEL_ID": MODEL_ID_CASES[model_id]}
    original = _pod(MODEL_BLOCKS[block] + LAUNCH, env)
    decision = admit(original)
    assert Rule.MODEL_DEFAULT in decision.rules[names.HEAD_CONTAINER]
    script = decision.patch[0].value[2]
    assert "MODEL_ID}\nif" not in script
    assert "${MODEL_DIR:-$MODEL_ID}" in script

    rewritten = jsonpatch.apply_patch(original, to_json(decision.patch))
    before = kubelet.run(original, names.HEAD_CONTAINER, tmp_path)[-1]
    after = kubelet.run(rewritten, names.HEAD_CONTAINER, tmp_path)[-1]
    expected = env["MODEL_DIR"] or env["MODEL_ID"] or ""
    assert (
        before
        == after
        == [
            "python3",
            "-m",
            "huggingfaceserver",
            f"--model_dir={expected}",
            f"--model-env={expected}",
        ]
    )
