"""The launch report of an eval launch against the real /bin/bash, on random args.

Each arg is drawn from a grammar of shell-significant pieces and given, alone, to an
LLMInferenceService preset's `eval "vllm serve … $@ …"`, run under /bin/bash with the stub
kubelet. For every arg: the verdict `Launch.evaluated` gives is borne out by what the stubs
received (`exact` is never said of an arg bash changed), and wherever the verdict says it
knows what eval makes of the arg, the report's argv is bash's, word for word.
`ARGV_FUZZ_BATCHES` sets the number of batches (each of `BATCH` args, seeded by its number,
plus `ARGV_FUZZ_SEED`, so that a failure replays and a new seed explores).
"""

from __future__ import annotations

import copy
import os
import random
from pathlib import Path
from typing import Any

import pytest

from tests.support import kubelet
from tests.support.argsgrammar import drawn_arg
from tests.support.builders import data_pod
from tests.support.proof import bash_agrees
from webhook.core import names
from webhook.core.argv import container_launch, knows

BATCH = 500
BATCHES = int(os.environ.get("ARGV_FUZZ_BATCHES", "4"))
SEED = int(os.environ.get("ARGV_FUZZ_SEED", "0"))


def draws(seed: int) -> list[str]:
    rnd = random.Random(seed)
    return [drawn_arg(rnd) for _ in range(BATCH)]


def _pod() -> dict[str, Any]:
    return copy.deepcopy(data_pod("llm-eval-leader"))


def _argv_after_args(words: list[str] | tuple[str, ...], *, marker: str, skip: int) -> list[str]:
    return list(words[words.index(marker) + skip :])


@pytest.mark.parametrize("batch", range(BATCHES))
def test_the_eval_report_is_what_bash_does(batch: int, tmp_path: Path) -> None:
    seed = SEED + batch
    print(f"argv fuzz seed {seed} ({BATCH} args)")
    args = draws(seed)
    pod = _pod()
    runs = kubelet.run_each(pod, names.LLM_CONTAINER, tmp_path, [[arg] for arg in args])
    wrong: list[tuple[str, str, object]] = []
    for arg, calls in zip(args, runs, strict=True):
        container = {**pod["spec"]["containers"][0], "args": [arg]}
        launch = container_launch(container)
        assert launch is not None, arg
        assert launch.evaluated is not None, arg
        [verdict] = launch.evaluated
        if not bash_agrees(verdict, arg, calls, at=0):
            wrong.append((arg, verdict, f"stubs received {calls}"))
            continue
        if knows(verdict):
            [server] = [call for call in calls if call[:2] == ["vllm", "serve"]]
            # Before the arg: the preset's flags, `$START_RANK` (0 in the pod) and an empty
            # `${VLLM_ADDITIONAL_ARGS}`, shown as written.
            ours = _argv_after_args(launch.argv, marker="${VLLM_ADDITIONAL_ARGS}", skip=1)
            theirs = _argv_after_args(server, marker="--data-parallel-start-rank", skip=2)
            if ours != theirs:
                wrong.append((arg, verdict, f"argv {ours} where bash gives {theirs}"))
    assert not wrong, f"seed {seed}: {len(wrong)} of {BATCH}, the first: {wrong[:5]}"
