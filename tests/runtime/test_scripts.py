"""Which scripts warm start parses, read from the objects pods are made from."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from tests.support.builders import data_pod, example
from webhook.core.model import Options
from webhook.core.names import Rule
from webhook.runtime.scripts import launch_scripts

OPTIONS = Options()


def _lws(leader: dict[str, Any]) -> dict[str, Any]:
    template = {"metadata": leader["metadata"], "spec": leader["spec"]}
    return {
        "apiVersion": "leaderworkerset.x-k8s.io/v1",
        "kind": "LeaderWorkerSet",
        "metadata": {"name": "granite"},
        "spec": {
            "leaderWorkerTemplate": {
                "leaderTemplate": template,
                "workerTemplate": copy.deepcopy(template),
            }
        },
    }


def _deployment(pod: dict[str, Any]) -> dict[str, Any]:
    template = {"metadata": pod["metadata"], "spec": pod["spec"]}
    return {"apiVersion": "apps/v1", "kind": "Deployment", "spec": {"template": template}}


def _renamed(runtime: dict[str, Any], name: str) -> dict[str, Any]:
    renamed = copy.deepcopy(runtime)
    renamed["spec"]["containers"][0]["name"] = name
    return renamed


def _script_of(pod: dict[str, Any]) -> str:
    [main] = [c for c in pod["spec"]["containers"] if c["name"] == "main"]
    return str(main["command"][2])


RUNTIME = example("legacy-servingruntime.yaml")
LEADER = data_pod("llm-eval-leader")

# (object, the containers whose scripts are read, in order)
CASES: list[tuple[str, dict[str, Any], list[str]]] = [
    ("runtime", RUNTIME, ["kserve-container", "worker-container"]),
    (
        "cluster runtime",
        {**RUNTIME, "kind": "ClusterServingRuntime"},
        ["kserve-container", "worker-container"],
    ),
    ("a container of another name", _renamed(RUNTIME, "sidecar"), ["worker-container"]),
    ("LeaderWorkerSet", _lws(LEADER), ["main", "main"]),
    ("Deployment", _deployment(LEADER), ["main"]),
    ("exec form", _deployment(data_pod("llm-exec-form")), []),
    ("a pod", LEADER, ["main"]),
    ("not a KServe object", {"kind": "ConfigMap", "data": {"x": "y"}}, []),
]


@pytest.mark.parametrize(("name", "document", "containers"), CASES, ids=[c[0] for c in CASES])
def test_the_scripts_of_an_object(
    name: str, document: dict[str, Any], containers: list[str]
) -> None:
    found = list(launch_scripts(document, options=OPTIONS))
    assert [missing.container for missing in found] == containers
    assert all(missing.rules == frozenset(Rule) for missing in found)


def test_each_is_the_script_admission_asks_for() -> None:
    [head, worker] = launch_scripts(RUNTIME, options=OPTIONS)
    assert head.script == RUNTIME["spec"]["containers"][0]["args"][0]  # legacy: args[0]
    assert worker.script == RUNTIME["spec"]["workerSpec"]["containers"][0]["args"][0]
    [main] = launch_scripts(_deployment(LEADER), options=OPTIONS)
    assert main.script == _script_of(LEADER)  # after -c


def test_a_script_admission_never_parses_is_not_read() -> None:
    small = Options(max_script_bytes=len(_script_of(LEADER).encode()) - 1)
    assert list(launch_scripts(_deployment(LEADER), options=small)) == []
