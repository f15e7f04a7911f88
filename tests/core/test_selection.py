"""Selection precedence (DESIGN §4): one case per step, each naming its reason."""

from __future__ import annotations

from typing import Any

import pytest

from tests.support.builders import LEGACY_HEAD, admit, pod
from webhook.core import names
from webhook.core.model import Context, Kind
from webhook.core.names import Action, Mode, Reason

DEPLOYMENT = Kind("apps", "v1", "Deployment")
LLM_EVAL: dict[str, Any] = {
    "name": names.LLM_CONTAINER,
    "command": ["/bin/bash", "-c", 'eval "vllm serve /mnt/models $@"', "--"],
    "args": ["--x=1"],
}
LLM_POD: dict[str, Any] = {
    "metadata": {"name": "p", "labels": {names.PART_OF_LABEL: names.LLMISVC_PART_OF}},
    "spec": {"containers": [LLM_EVAL]},
}

CASES = [
    # (id, pod, context, decision, reason)
    (
        "update",
        pod(),
        Context(operation="UPDATE", namespace="ns"),
        Action.SKIPPED,
        Reason.NOT_POD_CREATE,
    ),
    (
        "not-a-pod",
        pod(),
        Context(kind=DEPLOYMENT, namespace="ns"),
        Action.SKIPPED,
        Reason.NOT_POD_CREATE,
    ),
    (
        "kube-system",
        pod(),
        Context(namespace="kube-system"),
        Action.SKIPPED,
        Reason.SYSTEM_NAMESPACE,
    ),
    (
        "kube-public",
        pod(),
        Context(namespace="kube-public"),
        Action.SKIPPED,
        Reason.SYSTEM_NAMESPACE,
    ),
    (
        "kube-node-lease",
        pod(),
        Context(namespace="kube-node-lease"),
        Action.SKIPPED,
        Reason.SYSTEM_NAMESPACE,
    ),
    (
        "own-namespace",
        pod(),
        Context(namespace=names.DEFAULT_OWN_NAMESPACE),
        Action.SKIPPED,
        Reason.SYSTEM_NAMESPACE,
    ),
    (
        "mirror",
        pod(annotations={names.MIRROR_ANNOTATION: "x"}),
        Context(namespace="ns"),
        Action.SKIPPED,
        Reason.MIRROR_POD,
    ),
    (
        "opted-out",
        pod(labels={names.INJECT_LABEL: names.POD_OPT_OUT}),
        Context(namespace="ns"),
        Action.SKIPPED,
        Reason.POD_OPTED_OUT,
    ),
    (
        "not-kserve",
        {"metadata": {"name": "p"}, "spec": {"containers": [LEGACY_HEAD]}},
        Context(namespace="ns"),
        Action.SKIPPED,
        Reason.NOT_KSERVE,
    ),
    (
        "llm-part-of-another-app",
        {
            "metadata": {"name": "p", "labels": {names.PART_OF_LABEL: "other"}},
            "spec": {"containers": [LLM_EVAL]},
        },
        Context(namespace="ns"),
        Action.SKIPPED,
        Reason.NOT_KSERVE,
    ),
    ("llm-eval", LLM_POD, Context(namespace="ns"), Action.PATCHED, Reason.LOSSY_ARGS),
    (
        "llm-main-is-not-an-isvc-target",
        {**LLM_POD, "metadata": {"name": "p", "labels": {names.ISVC_LABEL: "m"}}},
        Context(namespace="ns"),
        Action.UNCHANGED,
        Reason.NOT_A_TARGET,
    ),
    (
        "llm-exec-form",
        {**LLM_POD, "spec": {"containers": [{**LLM_EVAL, "command": ["vllm", "serve"]}]}},
        Context(namespace="ns"),
        Action.UNCHANGED,
        Reason.ALREADY_MIGRATED,
    ),
    (
        "llm-script-replaced",
        {
            **LLM_POD,
            "spec": {
                "containers": [{**LLM_EVAL, "command": ["/bin/bash", "-c"], "args": ["--x=1"]}]
            },
        },
        Context(namespace="ns"),
        Action.UNCHANGED,
        Reason.SCRIPT_REPLACED,
    ),
    (
        "llm-script-in-args-alone",
        {
            **LLM_POD,
            "spec": {
                "containers": [
                    {**LLM_EVAL, "command": ["/bin/bash", "-c"], "args": ['eval "vllm serve m"']}
                ]
            },
        },
        Context(namespace="ns"),
        Action.UNCHANGED,
        Reason.NOT_A_TARGET,
    ),
    (
        "llm-script-in-args-then-args",
        {
            **LLM_POD,
            "spec": {
                "containers": [
                    {
                        **LLM_EVAL,
                        "command": ["/bin/bash", "-c"],
                        "args": ['eval "vllm serve m"', "--", "--x=1"],
                    }
                ]
            },
        },
        Context(namespace="ns"),
        Action.UNCHANGED,
        Reason.ARGS_IGNORED,
    ),
    (
        "no-target-container",
        pod(containers=[{**LEGACY_HEAD, "name": "transformer"}]),
        Context(namespace="ns"),
        Action.UNCHANGED,
        Reason.NOT_A_TARGET,
    ),
    (
        "exact-script-and-$0-in-command",
        pod(
            containers=[
                {**LEGACY_HEAD, "command": ["bash", "-c", 'python -m huggingfaceserver "$@"', "y"]}
            ]
        ),
        Context(namespace="ns"),
        Action.UNCHANGED,
        Reason.ALREADY_MIGRATED,
    ),
    (
        "no-launch",
        pod(containers=[{**LEGACY_HEAD, "args": ["echo hi\n"]}]),
        Context(namespace="ns"),
        Action.UNCHANGED,
        Reason.NO_LAUNCH_COMMAND,
    ),
    ("legacy", pod(), Context(namespace="ns"), Action.PATCHED, Reason.LOSSY_ARGS),
    (
        "shadow-endpoint",
        pod(),
        Context(namespace="ns", shadow=True),
        Action.SHADOW,
        Reason.LOSSY_ARGS,
    ),
    # Step 0 runs only when the namespace's labels are known (preview).
    (
        "opt-in-unlabelled",
        pod(),
        Context(namespace="ns", namespace_labels={}),
        Action.SKIPPED,
        Reason.NAMESPACE_NOT_SELECTED,
    ),
    (
        "opt-in-enabled",
        pod(),
        Context(namespace="ns", namespace_labels={names.INJECT_LABEL: "enabled"}),
        Action.PATCHED,
        Reason.LOSSY_ARGS,
    ),
    (
        "opt-in-shadow",
        pod(),
        Context(namespace="ns", namespace_labels={names.INJECT_LABEL: "shadow"}),
        Action.SHADOW,
        Reason.LOSSY_ARGS,
    ),
    (
        "cluster-wide-unlabelled",
        pod(),
        Context(namespace="ns", namespace_labels={}, mode=Mode.CLUSTER_WIDE),
        Action.PATCHED,
        Reason.LOSSY_ARGS,
    ),
    (
        "cluster-wide-disabled",
        pod(),
        Context(
            namespace="ns",
            namespace_labels={names.INJECT_LABEL: "disabled"},
            mode=Mode.CLUSTER_WIDE,
        ),
        Action.SKIPPED,
        Reason.NAMESPACE_NOT_SELECTED,
    ),
    # Precedence: an earlier step wins over every later one.
    (
        "system-before-opt-out",
        pod(labels={names.INJECT_LABEL: names.POD_OPT_OUT}),
        Context(namespace="kube-system"),
        Action.SKIPPED,
        Reason.SYSTEM_NAMESPACE,
    ),
    (
        "namespace-before-operation",
        pod(),
        Context(operation="DELETE", namespace="ns", namespace_labels={}),
        Action.SKIPPED,
        Reason.NAMESPACE_NOT_SELECTED,
    ),
    # Each pair of neighbouring steps, both matching: the earlier one decides.
    (
        "operation-before-system",
        pod(),
        Context(operation="UPDATE", namespace="kube-system"),
        Action.SKIPPED,
        Reason.NOT_POD_CREATE,
    ),
    (
        "system-before-mirror",
        pod(annotations={names.MIRROR_ANNOTATION: "x"}),
        Context(namespace="kube-system"),
        Action.SKIPPED,
        Reason.SYSTEM_NAMESPACE,
    ),
    (
        "mirror-before-opt-out",
        pod(
            labels={names.INJECT_LABEL: names.POD_OPT_OUT},
            annotations={names.MIRROR_ANNOTATION: "x"},
        ),
        Context(namespace="ns"),
        Action.SKIPPED,
        Reason.MIRROR_POD,
    ),
    (
        "opt-out-before-not-kserve",
        {
            "metadata": {"name": "p", "labels": {names.INJECT_LABEL: names.POD_OPT_OUT}},
            "spec": {"containers": [LEGACY_HEAD]},
        },
        Context(namespace="ns"),
        Action.SKIPPED,
        Reason.POD_OPTED_OUT,
    ),
    (
        "not-kserve-before-containers",
        {"metadata": {"name": "p"}, "spec": {"containers": [{**LEGACY_HEAD, "args": ["x"]}]}},
        Context(namespace="ns"),
        Action.SKIPPED,
        Reason.NOT_KSERVE,
    ),
    # Among unchanged containers, a warned reason names the pod before already-migrated.
    (
        "warned-before-already-migrated",
        pod(
            containers=[
                {**LEGACY_HEAD, "command": ["bash", "-c", 'python -m huggingfaceserver "$@"', "y"]},
                {**LEGACY_HEAD, "name": names.WORKER_CONTAINER, "args": ["echo hi\n", "--x"]},
            ]
        ),
        Context(namespace="ns"),
        Action.UNCHANGED,
        Reason.NO_LAUNCH_COMMAND,
    ),
    (
        "already-migrated-before-not-a-target",
        pod(
            containers=[
                {**LEGACY_HEAD, "command": ["bash", "-c", 'python -m huggingfaceserver "$@"', "y"]},
                {**LEGACY_HEAD, "name": names.WORKER_CONTAINER, "command": [1], "args": []},
            ]
        ),
        Context(namespace="ns"),
        Action.UNCHANGED,
        Reason.ALREADY_MIGRATED,
    ),
]


@pytest.mark.parametrize(
    ("pod_", "context", "decision", "reason"),
    [case[1:] for case in CASES],
    ids=[case[0] for case in CASES],
)
def test_selection(pod_: dict[str, Any], context: Context, decision: str, reason: str) -> None:
    result = admit(pod_, context=context)
    assert (result.action, result.reason) == (decision, reason)
    skipped_steps = [step for step in result.trace if step.verdict == "skip"]
    if decision == Action.SKIPPED:
        assert skipped_steps == [result.trace[-1]]
        assert skipped_steps[0].step == reason
        assert result.patch == ()
    else:
        assert skipped_steps == []
