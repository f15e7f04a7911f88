"""What eval does with each arg of an eval launch (`Launch.evaluated`, preview's `before`
column), row by row, and for every row what the real /bin/bash hands the stubs."""

from __future__ import annotations

import ast
import copy
from pathlib import Path
from typing import Any

import pytest

from tests.support import kubelet
from tests.support.builders import data_pod
from webhook.core import names
from webhook.core.argv import EXPANDED, LOST, RUNS, container_launch

LORA = '{"name":"adapter","path":"/mnt/lora/adapter"}'
KV = '{"kv_connector":"NixlConnector","kv_role":"kv_both"}'
OPERATOR = "cut: it ends the server's command line (eval reads it as an operator)"
OWN_COMMAND = "cut: eval runs it as a command of its own, after the server's"
COMMENT = "cut: eval reads it as a comment (after a #)"
REDIRECTION = "cut: eval reads it as a redirection of the server's output or input"
GLOB = "glob: eval replaces it with the file names it matches, when any match"
BRACES = "brace-expanded: eval makes a word of each part of its {…,…}"

# (args, what eval does with each)
TABLE: list[tuple[list[str], list[str]]] = [
    (["--dtype=half", "ünïcode"], ["exact", "exact"]),
    (["--served-model-name=my model"], ["split into 2 words"]),
    ([f"'{LORA}'"], [f"changed: eval makes it {LORA!r}"]),
    (['"quoted"'], ["changed: eval makes it 'quoted'"]),
    (["--hf-overrides", '{"a":1}'], ["exact", "changed: eval makes it '{a:1}'"]),
    (["--kv-transfer-config", KV], ["exact", BRACES]),
    (["--a={1,2}"], [BRACES]),
    (["--x=$(python3 -c ran)"], [RUNS]),
    (["--x=`python3 -c ran`"], [RUNS]),
    (["--home=$HOME"], [EXPANDED]),
    (["*.txt"], [GLOB]),
    (["", "--after-empty"], ["dropped: eval drops an empty arg", "exact"]),
    (["   "], ["dropped: eval drops a blank arg"]),
    ([";", "python3", "-V"], [OPERATOR, OWN_COMMAND, OWN_COMMAND]),
    (["--a;python3 -V"], [OPERATOR]),
    (["#", "--lost"], [COMMENT, COMMENT]),
    (["--kept", "--b #x", "--lost"], ["exact", COMMENT, COMMENT]),
    (["> out.log", "--kept"], [REDIRECTION, "exact"]),
    (["--kept", "|", "python3"], ["exact", OPERATOR, OWN_COMMAND]),
    (["'unclosed", "--b"], [LOST, LOST]),
]


def _pod(args: list[str]) -> dict[str, Any]:
    pod = copy.deepcopy(data_pod("llm-eval-leader"))
    pod["spec"]["containers"][0]["args"] = args
    return pod


def _bash_agrees(verdict: str, arg: str, calls: list[list[str]]) -> bool:
    """Whether what bash handed the stubs bears the verdict out."""
    servers = [call for call in calls if call[0] == "vllm"]
    others = [call for call in calls if call[0] != "vllm"]
    if verdict == LOST:
        return not servers
    [server] = servers
    received = server[1:]
    if verdict == "exact":
        return arg in received
    if verdict.startswith("split into"):
        pieces = arg.split()
        return arg not in received and any(
            received[i : i + len(pieces)] == pieces for i in range(len(received))
        )
    if verdict.startswith("changed: eval makes it "):
        made = ast.literal_eval(verdict.removeprefix("changed: eval makes it "))
        return arg not in received and made in received
    if verdict.startswith("dropped"):
        return arg not in received
    if verdict == RUNS:  # the stub the substitution names ran, before the server
        ran = ["python3", "-c", "ran"]
        return ran in calls[: calls.index(server)] and arg not in received
    if verdict == EXPANDED:
        return arg not in received
    if verdict == GLOB:
        return {"decoy-a.txt", "decoy-b.txt"} <= set(received)
    if verdict == BRACES:
        return arg not in received
    if verdict == OWN_COMMAND:
        return any(arg in call for call in others) and arg not in received
    return verdict in (OPERATOR, COMMENT, REDIRECTION) and arg not in received


@pytest.mark.parametrize(("args", "verdicts"), TABLE, ids=[" ".join(r[0]) for r in TABLE])
def test_what_eval_does_with_each_arg_is_what_bash_does(
    args: list[str], verdicts: list[str], tmp_path: Path
) -> None:
    pod = _pod(args)
    launch = container_launch(pod["spec"]["containers"][0])
    assert launch is not None
    assert list(launch.evaluated or ()) == verdicts
    calls = kubelet.run(pod, names.LLM_CONTAINER, tmp_path, check=False)
    for arg, verdict in zip(args, verdicts, strict=True):
        assert _bash_agrees(verdict, arg, calls), (arg, verdict, calls)
        # The check tells verdicts apart: "exact", said of an arg bash changed, is refused.
        if verdict not in ("exact", LOST):
            assert not _bash_agrees("exact", arg, calls), (arg, calls)
