"""`preview` of the workloads KServe makes for an LLMInferenceService: a LeaderWorkerSet (both
pod templates) and a Deployment, with the argv `vllm serve` receives before and after."""

from __future__ import annotations

import copy
import json
from typing import Any

import yaml

from tests.support.builders import data_pod
from tests.support.cli import cli
from webhook.core import argv, names


def _template(pod: dict[str, Any]) -> dict[str, Any]:
    return {"metadata": {"labels": pod["metadata"]["labels"]}, "spec": pod["spec"]}


def _lws() -> dict[str, Any]:
    leader = data_pod("llm-eval-leader")
    worker = copy.deepcopy(leader)
    worker["spec"]["containers"][0]["args"] = ["--enforce-eager", "a b"]
    return {
        "apiVersion": "leaderworkerset.x-k8s.io/v1",
        "kind": "LeaderWorkerSet",
        "metadata": {"name": "granite-kserve-mn", "namespace": "models"},
        "spec": {
            "leaderWorkerTemplate": {
                "size": 2,
                "leaderTemplate": _template(leader),
                "workerTemplate": _template(worker),
            }
        },
    }


def test_preview_reads_both_templates_of_a_leaderworkerset() -> None:
    done = cli("preview", "-", "-o", "json", stdin=yaml.safe_dump(_lws()))
    assert done.returncode == 0, done.stderr
    leader, worker = json.loads(done.stdout)["results"]
    assert (leader["template"], worker["template"]) == ("leader", "worker")
    assert leader["decision"] == worker["decision"] == "patched"
    assert leader["patch"][0]["path"].startswith("/spec/leaderWorkerTemplate/leaderTemplate/")
    assert worker["patch"][0]["path"].startswith("/spec/leaderWorkerTemplate/workerTemplate/")
    [launch] = leader["launch"]
    assert launch["container"] == names.LLM_CONTAINER
    assert launch["before"][:2] == ["vllm", "serve"]
    # eval split the model name and ran nothing else through; now each arg is one word.
    assert "--served-model-name=my" in launch["before"]
    after = launch["after"]
    lora = '{"name":"adapter","path":"/mnt/lora/adapter"}'
    tail = ["--lora-modules", lora, "--served-model-name=my model", "--x=$(id)"]
    assert after[-5:] == [*tail, "--trust-remote-code"]
    assert [arg["after"] for arg in launch["args"]] == ["exact"] * 4
    # Before: what eval did with each, as bash does it (tests/core/test_argv.py).
    assert [arg["before"] for arg in launch["args"]] == [
        "exact",
        f"changed: eval makes it {lora!r}",
        "split into 2 words",
        argv.RUNS,
    ]
    assert worker["launch"][0]["after"][-3:] == ["--enforce-eager", "a b", "--trust-remote-code"]


def test_manifest_of_a_leaderworkerset_is_one_object_with_both_templates_repaired() -> None:
    done = cli("preview", "-", "-o", "manifest", stdin=yaml.safe_dump(_lws()))
    assert done.returncode == 0, done.stderr
    [lws] = list(yaml.safe_load_all(done.stdout))
    templates = lws["spec"]["leaderWorkerTemplate"]
    for role in ("leaderTemplate", "workerTemplate"):
        assert templates[role]["spec"]["containers"][0]["command"][-1] == "--"
        assert '\\"\\$@\\"' in templates[role]["spec"]["containers"][0]["command"][2]
        assert names.STATUS_ANNOTATION in templates[role]["metadata"]["annotations"]


def test_preview_reads_the_deployment_of_a_single_node_service() -> None:
    pod = data_pod("llm-eval-leader")
    deployment = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "granite-kserve", "namespace": "models"},
        "spec": {"template": _template(pod)},
    }
    done = cli("preview", "-", "-o", "json", stdin=yaml.safe_dump(deployment))
    assert done.returncode == 0, done.stderr
    [result] = json.loads(done.stdout)["results"]
    assert result["decision"] == "patched"
    assert result["launch"][0]["after"][-2:] == ["--x=$(id)", "--trust-remote-code"]
