"""What eval does with each arg of an eval launch (`Launch.evaluated`, preview's `before`
column), row by row, and for every row what the real /bin/bash hands the stubs."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import jsonpatch
import pytest

from tests.support import kubelet
from tests.support.builders import admit, data_pod
from tests.support.proof import bash_agrees
from webhook.core import names
from webhook.core.argv import (
    BLANK,
    BRACES,
    COMMENT,
    EMPTY,
    EXPANDED,
    GLOB,
    JOINED,
    LOST,
    OPERATOR,
    OWN_COMMAND,
    REDIRECTION,
    RUNS,
    TILDE,
    UNCHECKED,
    UNTOLD,
    container_launch,
)
from webhook.core.patch import to_json
from webhook.offline.preview import preview_object

LORA = '{"name":"adapter","path":"/mnt/lora/adapter"}'
KV = '{"kv_connector":"NixlConnector","kv_role":"kv_both"}'

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
    (["", "--after-empty"], [EMPTY, "exact"]),
    (["   "], [BLANK]),
    ([";", "python3", "-V"], [OPERATOR, OWN_COMMAND, OWN_COMMAND]),
    (["--a;python3 -V"], [OPERATOR]),
    (["#", "--lost"], [COMMENT, COMMENT]),
    (["--kept", "--b #x", "--lost"], ["exact", COMMENT, COMMENT]),
    # An operator hands the rest of the line to bash, which may refuse it (`;}`) and start no
    # server: no arg's words are claimed.
    (["> out.log", "--kept"], [REDIRECTION, UNCHECKED]),
    (["--kept", "|", "python3"], [UNCHECKED, OPERATOR, OWN_COMMAND]),
    (["=~", ";}"], [UNCHECKED, UNCHECKED]),
    (["x;#'"], [OPERATOR]),
    (["'unclosed", "--b"], [LOST, LOST]),
    # What eval does beyond quotes: tilde, sequence braces, C strings, backslashes.
    (["~/models"], [TILDE]),
    (["--cuda-graph-sizes={1..4}"], [BRACES]),
    (
        ["--chat-template-content-format=$'string'"],
        ["changed: eval makes it '--chat-template-content-format=string'"],
    ),
    (["~+/adapter", "~root"], [TILDE, TILDE]),
    (['$"x"'], ["changed: eval makes it 'x'"]),
    (["}\\]"], ["changed: eval makes it '}]'"]),
    (["--sizes={08..10..2}"], [BRACES]),
    (["--a=\\*"], ["changed: eval makes it '--a=*'"]),
    # A backslash escapes inside $'…': the quote it escapes does not close the string.
    (["$'\\'{a,b}'"], ['changed: eval makes it "\'{a,b}"']),
    (["$'\\''{a,b}"], [BRACES]),
    (["--x=$'\\''{1..2}"], [BRACES]),
    (["$HOME$'\\'", "--b"], [LOST, LOST]),
    (["--a=$(python3 -c ran)$'\\'"], [LOST]),
    # A quote inside a comment opens nothing: the server starts, the comment cut off.
    (['#"(@%', "--b"], [COMMENT, COMMENT]),
    # Tilde: after escaped newlines; never with a quoted prefix; in an assignment-like word
    # only after its first `=` or a `:`.
    (["\\\n~/models"], [TILDE]),
    (["~'/x'"], ["changed: eval makes it '~/x'"]),
    (["X=a=~/b", "X+=a:~/b"], ["exact", TILDE]),
    # A sequence whose end or step is past int64 is left as written.
    (["{9223372036854775808..9223372036854775808}"], ["exact"]),
    (["--cuda-graph-sizes={1..3..18446744073709551617}"], ["exact"]),
    (["{-9223372036854775808..-9223372036854775807}"], [BRACES]),
    # Past an arg whose fate is not worked out, none is; an arg that escapes the blank after
    # it takes the next into its word.
    (["--x=1\n\\y", "--dtype=half"], [UNCHECKED, UNCHECKED]),
    (["a\n\\x", "c"], [UNCHECKED, UNCHECKED]),
    (["{\\", "y"], [JOINED, JOINED]),
    # A `#` after an escaped newline opens a word, and so a comment.
    (["\\\n#comment"], [OPERATOR]),
    (["a \\\n#b"], [OPERATOR]),
    # `${1..3}` is a bad substitution: bash runs nothing of the command.
    (["x ${1..3}$(python3 -c ran)"], [UNTOLD]),
    # A word brace expansion made is like an assignment only if the word written was.
    (["{a..c..2}=~", "x{a,b}=~"], [BRACES, BRACES]),
    # The parse tree's reading of an arg gives way to the model's where it has one.
    (["{", "y"], ["exact", "exact"]),
    # The kubelet turns `$$` into `$` before bash reads the args.
    (["$$~root"], ["changed: the kubelet makes it '$~root'"]),
    (["--x='$$'"], ["changed: eval makes it '--x=$'"]),
]


def _pod(args: list[str]) -> dict[str, Any]:
    pod = copy.deepcopy(data_pod("llm-eval-leader"))
    pod["spec"]["containers"][0]["args"] = args
    return pod


@pytest.mark.parametrize(("args", "verdicts"), TABLE, ids=[" ".join(r[0]) for r in TABLE])
def test_what_eval_does_with_each_arg_is_what_bash_does(
    args: list[str], verdicts: list[str], tmp_path: Path
) -> None:
    pod = _pod(args)
    launch = container_launch(pod["spec"]["containers"][0])
    assert launch is not None
    assert list(launch.evaluated or ()) == verdicts
    calls = kubelet.run(pod, names.LLM_CONTAINER, tmp_path, check=False)
    if not {RUNS, EXPANDED, GLOB, LOST, TILDE, JOINED, UNTOLD, UNCHECKED} & set(verdicts):
        # The argv itself is bash's, from the user's args on (before them stand the preset's
        # `$START_RANK` and `${VLLM_ADDITIONAL_ARGS}`, shown as written: the pod knows them).
        [server] = [call for call in calls if call[:2] == ["vllm", "serve"]]
        ours = list(launch.argv)
        assert (
            ours[ours.index("${VLLM_ADDITIONAL_ARGS}") + 1 :]
            == server[server.index("--data-parallel-start-rank") + 2 :]
        ), (ours, server)
    for index, (arg, verdict) in enumerate(zip(args, verdicts, strict=True)):
        # The arg's own word is found by its place when each arg before it is one word.
        before = verdicts[:index]
        one_word = all(v == "exact" or v.startswith("changed: ") for v in before)
        at = index if one_word else None
        assert bash_agrees(verdict, arg, calls, at=at), (arg, verdict, calls)
        # The check tells verdicts apart: "exact", said of an arg bash changed, is refused.
        if verdict not in ("exact", LOST, TILDE, UNTOLD, UNCHECKED):
            assert not bash_agrees("exact", arg, calls), (arg, calls)


@pytest.mark.parametrize("arg", ["plain-word", "~'/x'", "X=a=~/b", "--x=~/b"])
def test_the_proof_refuses_a_tilde_bash_did_not_expand(arg: str, tmp_path: Path) -> None:
    # The preset's own words (/mnt/models) start with `/`: only the arg's own word may count.
    calls = kubelet.run(_pod([arg]), names.LLM_CONTAINER, tmp_path, check=False)
    assert not bash_agrees(TILDE, arg, calls, at=0), calls
    assert bash_agrees(TILDE, "~/x", kubelet.run(_pod(["~/x"]), names.LLM_CONTAINER, tmp_path))


# The kubelet expands `$(NAME)` of the container's env before bash reads the args: a value the
# pod writes is worked out, one it gives from elsewhere is not, nor what follows that arg.
KUBELET_ENV = [
    {"name": "SPACED", "value": "a b"},
    {"name": "NODE", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
]
KUBELET_TABLE: list[tuple[list[str], list[str]]] = [
    (["--z='$(SPACED)'"], ["changed: eval makes it '--z=a b'"]),
    (["--node=$(NODE)", "--kept"], [UNTOLD, UNTOLD]),
    (["--kept", "--node=$(NODE)"], ["exact", UNTOLD]),
    (["--x=$(no such name)"], [RUNS]),
    (["--host=$(MODEL_SVC_SERVICE_HOST)"], [UNTOLD]),
]


@pytest.mark.parametrize(
    ("args", "verdicts"), KUBELET_TABLE, ids=[" ".join(r[0]) for r in KUBELET_TABLE]
)
def test_what_the_kubelet_does_first_is_in_the_verdict(
    args: list[str], verdicts: list[str], tmp_path: Path
) -> None:
    pod = _pod(args)
    pod["spec"]["containers"][0]["env"] = KUBELET_ENV
    launch = container_launch(pod["spec"]["containers"][0])
    assert launch is not None
    assert list(launch.evaluated or ()) == verdicts
    calls = kubelet.run(pod, names.LLM_CONTAINER, tmp_path, check=False)
    for index, (arg, verdict) in enumerate(zip(args, verdicts, strict=True)):
        at = index if all(v == "exact" for v in verdicts[:index]) else None
        assert bash_agrees(verdict, arg, calls, at=at), (arg, verdict, calls)


@pytest.mark.parametrize(
    ("value", "verdict"),
    [
        ("--max-model-len=4096", "exact"),
        ("--max-model-len=4096 # tuned", UNCHECKED),
        ("x;", UNCHECKED),
        ("'", UNCHECKED),
    ],
)
def test_a_value_eval_expands_from_the_env_is_shell_code_too(
    value: str, verdict: str, tmp_path: Path
) -> None:
    # The preset's eval expands ${VLLM_ADDITIONAL_ARGS} before the args, and reads its value
    # as shell code: before admission and after, as the repair leaves that word as it was.
    pod = _pod(["--dtype=half"])
    pod["spec"]["containers"][0]["env"] = [{"name": "VLLM_ADDITIONAL_ARGS", "value": value}]
    [result] = preview_object(pod)
    [row] = result["launch"][0]["args"]
    assert (row["before"], row["after"]) == (verdict, verdict)
    admitted = jsonpatch.apply_patch(pod, to_json(admit(pod).patch))
    for each in (pod, admitted):
        calls = kubelet.run(each, names.LLM_CONTAINER, tmp_path, check=False)
        assert bash_agrees(verdict, "--dtype=half", calls), calls
