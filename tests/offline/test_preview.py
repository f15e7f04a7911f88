"""What preview reports of a Pod or workload given as is: its launch argv and the table."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest

from tests.support import kubelet
from tests.support.builders import WORKLOADS, data_pod, example, review, workload
from webhook.core import names
from webhook.offline.preview import REPLACED, UNFOLLOWED, preview_object
from webhook.offline.report import failures, formatted

# The legacy head pod's args, as the table shows them: bash takes the first as $0 and drops the
# rest, and once admitted each reaches the server.
HEAD_ROWS = [
    "  kserve-container arg 1  --max-model-len=4096  dropped: bash took it as $0 → exact",
    "  kserve-container arg 2  --dtype=half          dropped → exact",
]


def _vllm_pod(container: dict[str, Any]) -> dict[str, Any]:
    """A KServe head pod with one more container, `container`, next to its own."""
    pod = example("legacy-head-pod.yaml")
    pod["spec"]["containers"].append({"image": "i", **container})
    return pod


@pytest.mark.parametrize(
    "obj",
    [
        example("legacy-head-pod.yaml"),
        review(example("legacy-head-pod.yaml")),
        *(workload(*w) for w in WORKLOADS),
    ],
    ids=["Pod", "AdmissionReview", *(w[0] for w in WORKLOADS)],
)
def test_the_table_shows_each_arg_of_a_pod_or_workload(obj: dict[str, Any]) -> None:
    [result] = preview_object(obj)
    table = formatted([result], "table").splitlines()
    assert table[1:3] == HEAD_ROWS
    [launch] = result["launch"]
    assert (launch["container"], launch["command"]) == (
        "kserve-container",
        "python -m huggingfaceserver",
    )


@pytest.mark.parametrize(
    ("container", "rows"),
    [
        # Not a target container: admission never touches it, preview shows nothing of it.
        ({"name": "sidecar", "command": ["envoy"], "args": ["--x"]}, []),
        # A target without a command runs its image's entrypoint: no launch command to tell.
        ({"name": "worker-container", "args": ["--x"]}, []),
        # No shell: every arg reaches the command as written.
        (
            {"name": "worker-container", "command": ["vllm", "serve"], "args": ["--a", "b c"]},
            [
                "  worker-container arg 1  --a    exact → exact",
                '  worker-container arg 2  "b c"  exact → exact',
            ],
        ),
        # A script in command: every arg is after it.
        (
            {
                "name": "worker-container",
                "command": ["sh", "-c", 'exec vllm serve "$@"', "vllm"],
                "args": ["--x"],
            },
            ["  worker-container arg 1  --x  exact → exact"],
        ),
        (
            {"name": "worker-container", "command": ["sh", "-c", 'exec vllm serve "$@"']},
            ["  worker-container: no args of yours"],
        ),
    ],
    ids=["not-a-target", "no-command", "no-shell", "script-in-command", "no-args"],
)
def test_each_target_container_with_a_launch_command_has_its_rows(
    container: dict[str, Any], rows: list[str]
) -> None:
    table = formatted(preview_object(_vllm_pod(container)), "table").splitlines()
    assert [line for line in table if line.startswith("  ") and "warning" not in line] == [
        *HEAD_ROWS,
        *rows,
    ]


@pytest.mark.parametrize(
    ("obj", "headline"),
    [
        (
            data_pod("llm-script-replaced"),
            "Pod granite-kserve-mn-0-1: unchanged (script-replaced), "
            f"annotated {names.PROBLEM_ANNOTATION}",
        ),
        (
            {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"}, "spec": {}},
            "Pod p: skipped (not-kserve)",
        ),
        (
            example("legacy-head-pod.yaml"),
            "Pod llama-predictor-5d8f7c9b4-head: patched (lossy-args)",
        ),
    ],
    ids=["script-replaced", "skipped", "patched"],
)
def test_the_headline_names_what_the_patch_of_an_unchanged_object_writes(
    obj: dict[str, Any], headline: str
) -> None:
    [result] = preview_object(obj)
    assert formatted([result], "table").splitlines()[0] == headline
    diff = formatted([result], "diff")
    assert (f"# {headline}\n" in diff) is (result["decision"] != "patched")


def test_the_args_that_replaced_a_script_are_lost_whatever_admission_does() -> None:
    [result] = preview_object(data_pod("llm-script-replaced"))
    [launch] = result["launch"]
    assert [(a["arg"], a["before"], a["after"]) for a in launch["args"]] == [
        ("--max-model-len=4096", REPLACED, REPLACED),
        ("--enforce-eager", REPLACED, REPLACED),
    ]
    # The pod keeps its containers: its patch only explains it.
    assert [op["path"] for op in result["patch"]] == ["/metadata/annotations"]


def _nameless(metadata: dict[str, Any]) -> dict[str, Any]:
    """The legacy head pod, opted out (so `--fail-on unpatched` names it), with `metadata`
    in place of its name."""
    pod = example("legacy-head-pod.yaml")
    del pod["metadata"]["name"]
    pod["metadata"].update(metadata)
    pod["metadata"]["labels"][names.INJECT_LABEL] = names.POD_OPT_OUT
    return pod


@pytest.mark.parametrize(
    ("metadata", "named"),
    [({}, "Pod (no name)"), ({"generateName": "llama-predictor-"}, "Pod llama-predictor-")],
    ids=["no-name", "generate-name"],
)
def test_a_pod_without_a_name_is_still_named_in_lines(metadata: dict[str, Any], named: str) -> None:
    results = preview_object(_nameless(metadata))
    assert formatted(results, "table").startswith(f"{named}: skipped (pod-opted-out)\n")
    assert failures(results, "unpatched") == [f"{named}: skipped (pod-opted-out)"]


def test_preview_tells_zero_by_place_not_by_text(tmp_path: Path) -> None:
    # The command names its own $0 (`--`): the user's first arg, also `--`, is $1, delivered.
    script = "exec python -m vllm.entrypoints.openai.api_server --model /mnt/models $@"
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": "p",
            "namespace": "models",
            "labels": {"serving.kserve.io/inferenceservice": "m"},
        },
        "spec": {
            "containers": [
                {
                    "name": "kserve-container",
                    "image": "i",
                    "command": ["bash", "-c", script, "--"],
                    "args": ["--", "--dtype=half"],
                }
            ]
        },
    }
    delivered = kubelet.run(pod, "kserve-container", tmp_path)[-1]
    assert delivered[-2:] == ["--", "--dtype=half"]
    [result] = preview_object(pod)
    [launch] = result["launch"]
    assert [a["before"] for a in launch["args"]] == ["exact", "exact"]


def _legacy_head(*, script_in_command: bool, user_args: list[str]) -> dict[str, Any]:
    pod = copy.deepcopy(data_pod("legacy-head-pod"))
    container = pod["spec"]["containers"][0]
    script = container["args"][0]
    if script_in_command:
        container["command"] = [*container["command"], script]
        container["args"] = user_args
    else:
        container["args"] = [script, *user_args]
    return pod


@pytest.mark.parametrize(
    ("script_in_command", "user_args", "fates"),
    [
        # The script writes `--model_name=${MODEL_NAME}` itself, and never reads its args.
        (
            False,
            ["--dtype=half", "--model_name=${MODEL_NAME}"],
            ["dropped: bash took it as $0", "dropped"],
        ),
        (
            True,
            ["--model_name=${MODEL_NAME}", "--dtype=half"],
            ["dropped: bash took it as $0", "dropped"],
        ),
    ],
    ids=["script-in-args", "script-in-command"],
)
def test_an_arg_the_script_never_reads_is_dropped_whatever_its_text(
    script_in_command: bool, user_args: list[str], fates: list[str], tmp_path: Path
) -> None:
    pod = _legacy_head(script_in_command=script_in_command, user_args=user_args)
    delivered = kubelet.run(pod, "kserve-container", tmp_path)[-1]
    assert not set(user_args) & set(delivered), delivered
    [result] = preview_object(pod)
    [launch] = result["launch"]
    assert [a["before"] for a in launch["args"]] == fates


# The legacy head's launch line, and ways a script may read its args after it: each fate the
# report gives is held against what bash hands the server.
_LAUNCH = "--pipeline-parallel-size=${PIPELINE_PARALLEL_SIZE}\n"
READ_FORMS = {
    "none": "",
    "quoted": ' "$@"',
    "unquoted": " $@",
    "star": ' "$*"',
    "slice": ' "${@:2}"',
    "numbered": ' "$1" $2',
    "zero": ' "$0"',
    "last": ' "${@: -1}"',
}


@pytest.mark.parametrize("tail", READ_FORMS.values(), ids=READ_FORMS.keys())
def test_each_fate_of_an_arg_is_what_bash_does(tail: str, tmp_path: Path) -> None:
    pod = copy.deepcopy(data_pod("legacy-head-pod"))
    container = pod["spec"]["containers"][0]
    script = container["args"][0]
    assert _LAUNCH in script
    user_args = ["--zero-arg", "--dtype=half", "--x=a b"]
    container["args"] = [script.replace(_LAUNCH, _LAUNCH.rstrip("\n") + tail + "\n"), *user_args]
    delivered = kubelet.run(pod, "kserve-container", tmp_path)[-1]
    [result] = preview_object(pod)
    [launch] = result["launch"]
    for row in launch["args"]:
        arg, fate = row["arg"], row["before"]
        if fate == "exact":
            assert arg in delivered, (arg, delivered)
        elif fate.startswith("dropped"):
            assert arg not in delivered, delivered
            assert not set(arg.split()) & set(delivered), (arg, delivered)
        elif fate.startswith("split"):
            assert arg not in delivered, delivered
            assert set(arg.split()) <= set(delivered), (arg, delivered)
        else:
            assert fate == UNFOLLOWED, fate


@pytest.mark.parametrize(
    ("field", "value"),
    [("command", True), ("args", 5), ("env", "x"), ("command", {"a": 1})],
    ids=["command-true", "args-number", "env-string", "command-mapping"],
)
@pytest.mark.parametrize("wrapped", [False, True], ids=["Pod", "AdmissionReview"])
def test_a_field_of_the_wrong_type_reads_as_absent(field: str, value: Any, wrapped: bool) -> None:
    pod = example("legacy-head-pod.yaml")
    pod["spec"]["containers"][0][field] = value
    [result] = preview_object(review(pod) if wrapped else pod)
    assert "launch" not in result or all(
        row["before"] and row["after"] for launch in result["launch"] for row in launch["args"]
    )
