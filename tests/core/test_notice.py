"""What owners are told: the owner a pod names, and the Events each decision calls for."""

from __future__ import annotations

from typing import Any

import pytest

from tests.support import llmisvc
from tests.support.builders import admit, example
from webhook.core import names
from webhook.core.kinds import ISVC_KIND, LLMISVC_KIND
from webhook.core.model import Context
from webhook.core.notice import (
    MESSAGE_LIMIT,
    NORMAL,
    WARNING,
    Notice,
    Owner,
    failed,
    notices,
    owner_of,
)
from webhook.core.view import pod_view

LLM = {names.PART_OF_LABEL: names.LLMISVC_PART_OF}


@pytest.mark.parametrize(
    ("labels", "owner"),
    [
        ({names.ISVC_LABEL: "llama"}, Owner(ISVC_KIND, "llama", "models")),
        ({**LLM, "app.kubernetes.io/name": "granite"}, Owner(LLMISVC_KIND, "granite", "models")),
        # An InferenceService's label wins, as KServe's own reading of the pod does.
        (
            {**LLM, names.ISVC_LABEL: "a", "app.kubernetes.io/name": "b"},
            Owner(ISVC_KIND, "a", "models"),
        ),
        ({"app.kubernetes.io/name": "granite"}, None),
        ({**LLM}, None),
        ({names.ISVC_LABEL: "Not A Name"}, None),
        ({names.ISVC_LABEL: "x" * 64}, None),
        ({names.ISVC_LABEL: 7}, None),
        ({}, None),
        (None, None),
    ],
)
def test_the_owner_a_pod_names(labels: Any, owner: Owner | None) -> None:
    pod = {"metadata": {"name": "p", "labels": labels}}
    assert owner_of(pod_view(pod), namespace="models") == owner


def test_no_owner_without_a_namespace() -> None:
    pod = {"metadata": {"labels": {names.ISVC_LABEL: "llama"}}}
    assert owner_of(pod_view(pod), namespace="") is None


OWNER = Owner(ISVC_KIND, "llama", "models")


def _with_args(pod: dict[str, Any], *extra: str) -> dict[str, Any]:
    pod["spec"]["containers"][0]["args"] += list(extra)
    return pod


def test_a_repair_is_one_normal_event_naming_containers_rules_and_args() -> None:
    pod = _with_args(example("legacy-head-pod.yaml"), "--max-model-len", "8192")
    [told] = notices(admit(pod), OWNER)
    user_args = len(pod["spec"]["containers"][0]["args"]) - 1
    assert (told.type, told.reason) == (NORMAL, "ArgsRepaired")
    assert told.message.startswith(
        f"multinode-webhook repaired container {names.HEAD_CONTAINER} "
        f"({user_args} args changed delivery; rules script-to-command, forward-args"
    )
    assert "Nothing to do" in told.message
    assert told.digest
    assert "\n" not in told.message


def test_pods_of_one_runtime_make_one_series_and_another_runtime_another() -> None:
    first = notices(admit(example("legacy-head-pod.yaml")), OWNER)
    again = notices(admit(example("legacy-head-pod.yaml")), OWNER)
    other_runtime = example("legacy-head-pod.yaml")
    other_runtime["spec"]["containers"][0]["args"][0] += "\n# another runtime\n"
    [other] = notices(admit(other_runtime), OWNER)
    assert first == again
    # Said alike, but a different patch: a series of its own.
    assert (other.message, other.digest) != (first[0].message, first[0].digest)
    assert other.message == first[0].message


def test_shadow_tells_what_it_would_repair_and_how_to_turn_it_on() -> None:
    decision = admit(example("legacy-head-pod.yaml"), context=Context(shadow=True))
    assert decision.action is names.Action.SHADOW
    [told] = notices(decision, OWNER)
    assert (told.type, told.reason) == (NORMAL, "WouldRepair")
    assert f"{names.INJECT_LABEL}=enabled" in told.message
    assert told.message.startswith(
        f"multinode-webhook (shadow) would repair container {names.HEAD_CONTAINER}"
    )


def test_args_that_replaced_the_script_warn_with_the_fix() -> None:
    pod = llmisvc.build_pod(llmisvc.SCRIPT_IN_ARGS_PRESET, role="leader", user_args=["--x=1"])
    owner = Owner(LLMISVC_KIND, llmisvc.NAME, llmisvc.NAMESPACE)
    [told] = notices(admit(pod), owner)
    assert (told.type, told.reason) == (WARNING, "ScriptReplaced")
    assert told.message.startswith(f"container {names.LLM_CONTAINER}: ")
    assert "Move these args to VLLM_ADDITIONAL_ARGS" in told.message


def test_args_after_a_script_in_args_warn_with_the_fix() -> None:
    config = llmisvc.SCRIPT_IN_ARGS_PRESET
    pod = llmisvc.build_pod(config, role="leader")
    pod["spec"]["containers"][0]["args"].append("--x=1")
    owner = Owner(LLMISVC_KIND, llmisvc.NAME, llmisvc.NAMESPACE)
    [told] = notices(admit(pod), owner)
    assert (told.type, told.reason) == (WARNING, "ArgsIgnored")
    assert "VLLM_ADDITIONAL_ARGS" in told.message


def test_a_script_the_parser_cannot_take_warns() -> None:
    pod = example("legacy-head-pod.yaml")
    pod["spec"]["containers"][0]["args"][0] += "\necho ${X:-\U0001f600}\n"
    [told] = notices(admit(pod), OWNER)
    assert (told.type, told.reason) == (WARNING, "UnsupportedCharacters")


@pytest.mark.parametrize(
    "pod",
    [
        {"metadata": {"name": "web", "labels": {"app": "web"}}, "spec": {"containers": []}},
        # Already repaired: admission leaves it as it is, and there is nothing to say.
        {
            "metadata": {"name": "p", "labels": {names.ISVC_LABEL: "llama"}},
            "spec": {
                "containers": [
                    {
                        "name": names.HEAD_CONTAINER,
                        "command": ["python", "-m", "x"],
                        "args": ["--a"],
                    }
                ]
            },
        },
    ],
)
def test_nothing_to_tell(pod: dict[str, Any]) -> None:
    assert notices(admit(pod), OWNER) == ()


@pytest.mark.parametrize(
    ("denied", "says"),
    [(False, "admitted unchanged"), (True, "refused")],
)
def test_a_failed_review_warns_with_what_happened_to_the_pod(denied: bool, says: str) -> None:
    told = failed(OWNER, error="multinode-webhook internal error: KeyError", denied=denied)
    assert (told.type, told.reason) == (WARNING, "ReviewFailed")
    assert says in told.message
    assert "KeyError" in told.message


def test_a_message_stays_within_the_limit() -> None:
    told = failed(OWNER, error="x" * 5000, denied=False)
    assert len(told.message) == MESSAGE_LIMIT
    assert told.message.endswith("...")
    assert isinstance(told, Notice)
