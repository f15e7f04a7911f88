"""read_pod: what decisions read of a pod, so that pods differing elsewhere share a decision."""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import pytest

from tests.support.builders import admit, example
from webhook.core import names
from webhook.core.model import DEFAULT_CONTEXT, DEFAULT_OPTIONS, Context
from webhook.core.names import Action
from webhook.core.read import PodFacts, read_pod
from webhook.core.view import pod_view
from webhook.offline.preview import preview_object

Edit = Callable[[dict[str, Any]], None]


def head_pod() -> dict[str, Any]:
    pod: dict[str, Any] = example("legacy-head-pod.yaml")
    pod["metadata"]["annotations"] = {"team": "a"}
    return pod


def facts(pod: dict[str, Any]) -> PodFacts:
    return read_pod(pod_view(pod), context=DEFAULT_CONTEXT, options=DEFAULT_OPTIONS)


def head(pod: dict[str, Any]) -> dict[str, Any]:
    container: dict[str, Any] = pod["spec"]["containers"][0]
    return container


def set_path(*path: str, value: Any) -> Edit:
    def edit(pod: dict[str, Any]) -> None:
        target = pod
        for token in path[:-1]:
            target = target.setdefault(token, {})
        target[path[-1]] = value

    return edit


def delete(*path: str) -> Edit:
    def edit(pod: dict[str, Any]) -> None:
        target = pod
        for token in path[:-1]:
            target = target[token]
        del target[path[-1]]

    return edit


def sidecar_first(pod: dict[str, Any]) -> None:
    pod["spec"]["containers"].insert(0, {"name": "agent", "image": "agent"})


def more_user_args(pod: dict[str, Any]) -> None:
    head(pod)["args"].append("--max-model-len=4096")


def new_env(pod: dict[str, Any]) -> None:
    head(pod).setdefault("env", []).append({"name": "HF_TOKEN", "value": "x"})


def script_edit(pod: dict[str, Any]) -> None:
    head(pod)["args"][0] += "\n# changed\n"


@pytest.mark.parametrize(
    ("edit", "changes_facts"),
    [
        # What differs between the pods of one runtime: never part of the decision.
        (set_path("metadata", "name", value="llama-head-2"), False),
        (set_path("metadata", "uid", value="0c1d"), False),
        (set_path("metadata", "managedFields", value=[{"manager": "kserve"}]), False),
        (set_path("metadata", "annotations", "team", value="b"), False),
        (set_path("metadata", "labels", "pod-template-hash", value="5d8f"), False),
        (new_env, False),
        (set_path("spec", "nodeName", value="gpu-3"), False),
        # What selection, the plans and the patch read.
        (set_path("metadata", "namespace", value="other"), True),
        (delete("metadata", "labels", names.ISVC_LABEL), True),
        (set_path("metadata", "labels", names.INJECT_LABEL, value=names.POD_OPT_OUT), True),
        (set_path("metadata", "annotations", names.MIRROR_ANNOTATION, value="x"), True),
        (set_path("metadata", "annotations", names.STATUS_ANNOTATION, value="{}"), True),
        (delete("metadata", "annotations"), True),
        (sidecar_first, True),
        (more_user_args, True),
        (script_edit, True),
        (set_path("spec", "containers", value=[]), True),
    ],
)
def test_facts_hold_what_decisions_read(edit: Edit, changes_facts: bool) -> None:
    pod = head_pod()
    edited = copy.deepcopy(pod)
    edit(edited)
    assert (facts(edited) != facts(pod)) is changes_facts


def test_pods_of_one_runtime_share_one_decision() -> None:
    first, second = head_pod(), head_pod()
    second["metadata"].update(name="llama-head-other", uid="7e57")
    decision = admit(first)
    assert admit(second) == decision
    assert decision.action == Action.PATCHED


def test_a_changed_preview_result_leaves_the_shared_decision_alone() -> None:
    pod = head_pod()
    before = admit(pod)
    [result] = preview_object(pod, context=Context(namespace="models"))
    head(result["object"])["command"].append("--tampered")
    result["patch"][0]["value"].append("--tampered")
    after = admit(pod)
    assert after == before
    assert "--tampered" not in after.patch[0].value
