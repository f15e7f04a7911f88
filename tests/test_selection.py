"""Selection precedence (DESIGN §4): one case per step, each naming its reason."""

from __future__ import annotations

from typing import Any

import pytest

from webhook import keys
from webhook.mutate import Context, mutate

LEGACY = {
    "name": keys.HEAD_CONTAINER,
    "command": ["bash", "-c"],
    "args": ["python -m huggingfaceserver --x\n", "--user"],
}


def pod(
    *,
    labels: dict[str, str] | None = None,
    annotations: dict[str, str] | None = None,
    containers: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    metadata: dict[str, Any] = {"name": "p", "labels": {keys.ISVC_LABEL: "m", **(labels or {})}}
    if annotations is not None:
        metadata["annotations"] = annotations
    return {"metadata": metadata, "spec": {"containers": containers or [dict(LEGACY)]}}


DEPLOYMENT = {"group": "apps", "version": "v1", "kind": "Deployment"}

CASES = [
    # (id, pod, context, decision, reason)
    (
        "update",
        pod(),
        Context(operation="UPDATE", namespace="ns"),
        keys.SKIPPED,
        keys.NOT_POD_CREATE,
    ),
    (
        "not-a-pod",
        pod(),
        Context(kind=DEPLOYMENT, namespace="ns"),
        keys.SKIPPED,
        keys.NOT_POD_CREATE,
    ),
    ("kube-system", pod(), Context(namespace="kube-system"), keys.SKIPPED, keys.SYSTEM_NAMESPACE),
    ("kube-public", pod(), Context(namespace="kube-public"), keys.SKIPPED, keys.SYSTEM_NAMESPACE),
    (
        "kube-node-lease",
        pod(),
        Context(namespace="kube-node-lease"),
        keys.SKIPPED,
        keys.SYSTEM_NAMESPACE,
    ),
    (
        "own-namespace",
        pod(),
        Context(namespace=keys.DEFAULT_OWN_NAMESPACE),
        keys.SKIPPED,
        keys.SYSTEM_NAMESPACE,
    ),
    (
        "mirror",
        pod(annotations={keys.MIRROR_ANNOTATION: "x"}),
        Context(namespace="ns"),
        keys.SKIPPED,
        keys.MIRROR_POD,
    ),
    (
        "opted-out",
        pod(labels={keys.INJECT_LABEL: keys.POD_OPT_OUT}),
        Context(namespace="ns"),
        keys.SKIPPED,
        keys.POD_OPTED_OUT,
    ),
    (
        "not-kserve",
        {"metadata": {"name": "p"}, "spec": {"containers": [LEGACY]}},
        Context(namespace="ns"),
        keys.SKIPPED,
        keys.NOT_KSERVE,
    ),
    (
        "no-target-container",
        pod(containers=[{**LEGACY, "name": "transformer"}]),
        Context(namespace="ns"),
        keys.UNCHANGED,
        keys.NOT_A_TARGET,
    ),
    (
        "script-in-command",
        pod(containers=[{**LEGACY, "command": ["bash", "-c", "x", "y"]}]),
        Context(namespace="ns"),
        keys.UNCHANGED,
        keys.ALREADY_MIGRATED,
    ),
    (
        "no-launch",
        pod(containers=[{**LEGACY, "args": ["echo hi\n"]}]),
        Context(namespace="ns"),
        keys.UNCHANGED,
        keys.NO_LAUNCH_COMMAND,
    ),
    ("legacy", pod(), Context(namespace="ns"), keys.PATCHED, keys.LEGACY_SHAPE),
    (
        "shadow-endpoint",
        pod(),
        Context(namespace="ns", shadow=True),
        keys.SHADOW,
        keys.LEGACY_SHAPE,
    ),
    # Step 0 runs only when the namespace's labels are known (preview).
    (
        "opt-in-unlabelled",
        pod(),
        Context(namespace="ns", namespace_labels={}),
        keys.SKIPPED,
        keys.NAMESPACE_NOT_SELECTED,
    ),
    (
        "opt-in-enabled",
        pod(),
        Context(namespace="ns", namespace_labels={keys.INJECT_LABEL: "enabled"}),
        keys.PATCHED,
        keys.LEGACY_SHAPE,
    ),
    (
        "opt-in-shadow",
        pod(),
        Context(namespace="ns", namespace_labels={keys.INJECT_LABEL: "shadow"}),
        keys.SHADOW,
        keys.LEGACY_SHAPE,
    ),
    (
        "cluster-wide-unlabelled",
        pod(),
        Context(namespace="ns", namespace_labels={}, mode=keys.MODE_CLUSTER_WIDE),
        keys.PATCHED,
        keys.LEGACY_SHAPE,
    ),
    (
        "cluster-wide-disabled",
        pod(),
        Context(
            namespace="ns",
            namespace_labels={keys.INJECT_LABEL: "disabled"},
            mode=keys.MODE_CLUSTER_WIDE,
        ),
        keys.SKIPPED,
        keys.NAMESPACE_NOT_SELECTED,
    ),
    # Precedence: an earlier step wins over every later one.
    (
        "system-before-opt-out",
        pod(labels={keys.INJECT_LABEL: keys.POD_OPT_OUT}),
        Context(namespace="kube-system"),
        keys.SKIPPED,
        keys.SYSTEM_NAMESPACE,
    ),
    (
        "namespace-before-operation",
        pod(),
        Context(operation="DELETE", namespace="ns", namespace_labels={}),
        keys.SKIPPED,
        keys.NAMESPACE_NOT_SELECTED,
    ),
]


@pytest.mark.parametrize(
    ("pod_", "context", "decision", "reason"),
    [case[1:] for case in CASES],
    ids=[case[0] for case in CASES],
)
def test_selection(pod_: dict[str, Any], context: Context, decision: str, reason: str) -> None:
    result = mutate(pod_, context=context)
    assert (result.decision, result.reason) == (decision, reason)
    skipped_steps = [step for step in result.trace if step["verdict"] == "skip"]
    if decision == keys.SKIPPED:
        assert skipped_steps == [result.trace[-1]]
        assert skipped_steps[0]["step"] == reason
        assert result.patch == ()
    else:
        assert skipped_steps == []
