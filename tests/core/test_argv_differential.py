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
import re
from pathlib import Path
from typing import Any

import pytest

from tests.support import kubelet
from tests.support.argsgrammar import drawn_arg
from tests.support.builders import data_pod
from tests.support.proof import bash_agrees
from webhook.core import names
from webhook.core.argv import EXACT, KUBELET_CHANGED, container_launch, knows

BATCH = 500  # cases
BATCHES = int(os.environ.get("ARGV_FUZZ_BATCHES", "4"))
SEED = int(os.environ.get("ARGV_FUZZ_SEED", "0"))
POSITIONAL = re.compile(r"\$\{?[0-9@*]")


def draws(seed: int) -> list[list[str]]:
    """`BATCH` cases of one to three args: what an arg does to the text after it (cuts it,
    joins it, leaves it) is part of what is checked."""
    rnd = random.Random(seed)
    return [[_drawn(rnd) for _ in range(rnd.randint(1, 3))] for _ in range(BATCH)]


def _drawn(rnd: random.Random) -> str:
    """An arg that reads no positional parameter: eval would put the args themselves there,
    which the checks would take for the arg arriving."""
    while POSITIONAL.search(arg := drawn_arg(rnd)):
        pass
    return arg


def _pod() -> dict[str, Any]:
    return copy.deepcopy(data_pod("llm-eval-leader"))


def _argv_after_args(words: list[str] | tuple[str, ...], *, marker: str, skip: int) -> list[str]:
    return list(words[words.index(marker) + skip :])


def _one_word(verdict: str) -> bool:
    return verdict == EXACT or verdict.startswith(("changed: eval makes it ", KUBELET_CHANGED))


def _another_gives(args: list[str], index: int, verdict: str) -> bool:
    """Whether the arg's text may arrive as a word of another arg of the case (`1` of `{1..3}`),
    which the checks that the arg itself never arrives would take for it. A verdict that says
    the arg arrives is checked at the arg's own place, which no other arg explains."""
    return not _one_word(verdict) and any(
        args[index] in other for place, other in enumerate(args) if place != index
    )


@pytest.mark.parametrize("batch", range(BATCHES))
def test_the_eval_report_is_what_bash_does(batch: int, tmp_path: Path) -> None:
    seed = SEED + batch
    print(f"argv fuzz seed {seed} ({BATCH} cases of 1 to 3 args)")
    cases = draws(seed)
    pod = _pod()
    runs = kubelet.run_each(pod, names.LLM_CONTAINER, tmp_path, cases)
    wrong: list[tuple[list[str], object, str]] = []
    for args, calls in zip(cases, runs, strict=True):
        container = {**pod["spec"]["containers"][0], "args": args}
        launch = container_launch(container)
        assert launch is not None, args
        assert launch.evaluated is not None, args
        verdicts = list(launch.evaluated)
        for index, (arg, verdict) in enumerate(zip(args, verdicts, strict=True)):
            # The arg's own word is found by its place when each arg before it is one word.
            at = index if all(map(_one_word, verdicts[:index])) else None
            if not bash_agrees(verdict, arg, calls, at=at) and not _another_gives(
                args, index, verdict
            ):
                wrong.append((args, verdicts, f"arg {index}: stubs received {calls}"))
        if all(map(knows, verdicts)):
            [server] = [call for call in calls if call[:2] == ["vllm", "serve"]]
            # Before the args: the preset's flags, `$START_RANK` (0 in the pod) and an empty
            # `${VLLM_ADDITIONAL_ARGS}`, shown as written.
            ours = _argv_after_args(launch.argv, marker="${VLLM_ADDITIONAL_ARGS}", skip=1)
            theirs = _argv_after_args(server, marker="--data-parallel-start-rank", skip=2)
            if ours != theirs:
                wrong.append((args, verdicts, f"argv {ours} where bash gives {theirs}"))
    assert not wrong, f"seed {seed}: {len(wrong)} of {BATCH}, the first: {wrong[:5]}"
