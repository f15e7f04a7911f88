"""`check --audit` against the fake Kubernetes API over HTTP: pods the webhook left unrepaired."""

from __future__ import annotations

import copy
import datetime as dt
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonpatch
import pytest

from tests.support import fakeapi
from tests.support.builders import data_pod, example
from tests.support.cli import cli, one_line_error
from tests.support.crash import crashing_script, rewrite_or_crash
from webhook.adapters.kube.client import Cluster, connect
from webhook.core import names
from webhook.core.patch import to_json
from webhook.inspect.audit import RESTARTED_AT, audit, covers, restart_ops
from webhook.offline.isolation import isolated
from webhook.runtime.sandbox import Isolated, Sandbox

NS_LABELS = {
    "models": {names.INJECT_LABEL: "enabled"},
    "trial": {names.INJECT_LABEL: "shadow"},
    "other": {},
}


def _owned(pod: dict[str, Any], *, name: str, namespace: str, deployment: str) -> dict[str, Any]:
    pod = copy.deepcopy(pod)
    pod["metadata"].update(
        name=name,
        namespace=namespace,
        ownerReferences=[
            {"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": f"{deployment}-rs"}
        ],
    )
    return pod


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[tuple[fakeapi.FakeApi, Path]]:
    """The opt-in install: `models` is covered, `other` is not. In `models`, one pod the webhook
    repaired, one created while it was down, one of a runtime already fixed upstream."""
    with fakeapi.serving(tmp_path) as (api, kubeconfig):
        api.put("mutatingwebhookconfigurations", fakeapi.opt_in_configuration())
        for name, labels in NS_LABELS.items():
            api.put("namespaces", {"metadata": {"name": name, "labels": labels}})
        legacy = example("legacy-head-pod.yaml")
        repaired = _owned(legacy, name="repaired", namespace="models", deployment="llama-predictor")
        repaired["metadata"]["annotations"] = {names.STATUS_ANNOTATION: '{"rules":{}}'}
        missed = _owned(legacy, name="missed", namespace="models", deployment="llama-predictor")
        missed["metadata"]["creationTimestamp"] = "2026-11-01T08:00:00Z"
        upstream = _owned(
            data_pod("exact-in-command"), name="upstream", namespace="models", deployment="fixed"
        )
        elsewhere = _owned(legacy, name="elsewhere", namespace="other", deployment="other")
        for pod in (repaired, missed, upstream, elsewhere):
            api.put("pods", pod)
        for namespace, deployment in (
            ("models", "llama-predictor"),
            ("models", "fixed"),
            ("other", "other"),
        ):
            api.put(
                "replicasets",
                {
                    "metadata": {
                        "name": f"{deployment}-rs",
                        "namespace": namespace,
                        "ownerReferences": [{"kind": "Deployment", "name": deployment}],
                    }
                },
            )
            api.put(
                "deployments",
                {
                    "metadata": {"name": deployment, "namespace": namespace},
                    "spec": {"template": {"metadata": {"labels": {"app": deployment}}}},
                },
            )
        yield api, kubeconfig


def test_one_pod_missed_during_an_outage_is_the_one_finding(cluster: Any) -> None:
    _, kubeconfig = cluster
    done = cli("check", "--audit", "--kubeconfig", str(kubeconfig), "-o", "json")
    assert done.returncode == 1, done.stderr
    assert json.loads(done.stdout) == {
        "unrepaired": 1,
        "namespaces": ["models"],
        "owners": [
            {
                "namespace": "models",
                "kind": "Deployment",
                "name": "llama-predictor",
                "inferenceService": "llama",
                "llmInferenceService": "",
                "pods": ["missed"],
                "restart": "kubectl -n models rollout restart deployment/llama-predictor",
            }
        ],
        "scriptReplaced": [],
        "uncoveredScripts": [],
        "policySkipped": [],
    }
    text = cli("check", "--audit", "--all-namespaces", "--kubeconfig", str(kubeconfig))
    assert text.returncode == 1
    assert "!! Deployment models/llama-predictor (InferenceService llama): missed" in text.stdout
    assert "kubectl -n models rollout restart deployment/llama-predictor" in text.stdout


def test_an_uncovered_namespace_has_no_finding(cluster: Any) -> None:
    api, kubeconfig = cluster
    done = cli("check", "--audit", "--namespace", "other", "--kubeconfig", str(kubeconfig))
    assert done.returncode == 0, done.stdout + done.stderr
    assert "unrepaired pods: 0" in done.stdout
    assert api.writes() == []


def test_restart_patches_exactly_that_deployment_once_and_only_while_serving(
    cluster: Any,
) -> None:
    api, kubeconfig = cluster
    restart = ["check", "--audit", "--restart", "--kubeconfig", str(kubeconfig)]
    refused = cli(*restart)
    assert one_line_error(refused).endswith("--restart recreates pods: add --yes to go ahead")
    # Nothing serves the webhook yet: the new pods would slip through again.
    down = cli(*restart, "--yes")
    assert one_line_error(down).startswith(
        "multinode-webhook: error: --restart refused: the webhook is not serving "
        "(Deployment multinode-webhook/multinode-webhook not found"
    )
    assert api.writes() == []
    fakeapi.serving_install(api)
    done = cli(*restart, "--yes")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "restarted Deployment models/llama-predictor" in done.stderr
    assert api.writes() == [
        ("PATCH", "/apis/apps/v1/namespaces/models/deployments/llama-predictor")
    ]
    template = api.get("deployments", "models", "llama-predictor")["spec"]["template"]
    stamp = template["metadata"]["annotations"][RESTARTED_AT]
    assert dt.datetime.strptime(stamp, "%Y-%m-%dT%H:%M:%SZ")
    assert template["metadata"]["labels"] == {"app": "llama-predictor"}
    # The rollout has not replaced the pod yet: a second run leaves it to that rollout.
    again = cli(*restart, "--yes")
    assert again.returncode == 0, again.stdout + again.stderr
    assert "skipped Deployment models/llama-predictor: restarted at" in again.stderr
    assert len(api.writes()) == 1


@pytest.mark.parametrize(
    ("args", "error"),
    [
        (["--audit", "--pod", "x"], "--pod does not go with --audit"),
        (
            ["--audit", "--namespace", "a", "-A"],
            "--namespace and --all-namespaces exclude each other",
        ),
        (["-o", "json"], "-o json goes with --audit"),
        (["--restart", "--yes"], "--restart goes with --audit"),
    ],
)
def test_audit_flag_errors(cluster: Any, args: list[str], error: str) -> None:
    _, kubeconfig = cluster
    assert one_line_error(cli("check", *args, "--kubeconfig", str(kubeconfig))).endswith(error)


@pytest.mark.parametrize(
    ("namespace_labels", "pod_labels", "object_selector", "covered"),
    [
        ({names.INJECT_LABEL: "enabled"}, {}, None, True),
        ({}, {}, None, False),
        ({names.INJECT_LABEL: "enabled"}, {"tier": "a"}, {"matchLabels": {"tier": "a"}}, True),
        ({names.INJECT_LABEL: "enabled"}, {"tier": "b"}, {"matchLabels": {"tier": "a"}}, False),
        (
            {names.INJECT_LABEL: "enabled"},
            {names.INJECT_LABEL: "disabled"},
            {
                "matchExpressions": [
                    {"key": names.INJECT_LABEL, "operator": "NotIn", "values": ["disabled"]}
                ]
            },
            False,
        ),
    ],
)
def test_coverage_is_the_namespace_and_the_object_selector(
    namespace_labels: dict[str, str],
    pod_labels: dict[str, str],
    object_selector: dict[str, Any] | None,
    covered: bool,
) -> None:
    entry: dict[str, Any] = {"namespaceSelector": {"matchLabels": {names.INJECT_LABEL: "enabled"}}}
    if object_selector is not None:
        entry["objectSelector"] = object_selector
    assert covers([entry], namespace_labels=namespace_labels, pod_labels=pod_labels) is covered


@pytest.mark.parametrize(
    ("template_metadata", "path"),
    [
        (
            {"annotations": {"a": "b"}},
            "/spec/template/metadata/annotations/kubectl.kubernetes.io~1restartedAt",
        ),
        ({"labels": {"a": "b"}}, "/spec/template/metadata/annotations"),
        ({}, "/spec/template/metadata"),
    ],
)
def test_restart_ops_add_the_annotation_wherever_it_is_missing(
    template_metadata: dict[str, Any], path: str
) -> None:
    deployment = (
        {"spec": {"template": {"metadata": template_metadata}}}
        if template_metadata
        else {"spec": {"template": {}}}
    )
    when = dt.datetime(2026, 11, 25, 12, 0, tzinfo=dt.UTC)
    ops = to_json(restart_ops(deployment, when))
    assert [op["path"] for op in ops] == [path]
    patched = jsonpatch.apply_patch(deployment, ops)
    assert (
        patched["spec"]["template"]["metadata"]["annotations"][RESTARTED_AT]
        == "2026-11-25T12:00:00Z"
    )


def test_restart_skips_what_no_deployment_recreates_and_exits_1_for_it(cluster: Any) -> None:
    api, kubeconfig = cluster
    fakeapi.serving_install(api)
    bare = copy.deepcopy(example("legacy-head-pod.yaml"))
    bare["metadata"].update(name="bare", namespace="models")
    api.put("pods", bare)
    del api.objects["deployments", "models", "llama-predictor"]
    done = cli("check", "--audit", "--restart", "--yes", "--kubeconfig", str(kubeconfig))
    assert done.stderr.splitlines() == [
        "skipped Deployment models/llama-predictor: it is gone",
        "skipped Pod models/bare: no Deployment recreates it",
    ]
    assert done.returncode == 1  # the bare pod is still unrepaired
    assert api.writes() == []


def test_a_script_that_crashes_the_parser_does_not_stop_the_audit(
    cluster: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """As the command line runs it: scripts parsed in the sandbox, a crash answered as
    admission answers it (`parser-failed`, so not a pod the webhook would repair)."""
    api, kubeconfig = cluster
    crashing = _owned(
        example("legacy-head-pod.yaml"), name="crashing", namespace="models", deployment="crash"
    )
    crashing["spec"]["containers"][0]["args"][0] = crashing_script(9)
    api.put("pods", crashing)
    box = Sandbox(rewrite=rewrite_or_crash)
    try:
        with isolated(Isolated(sandbox=box)):
            found = audit(
                Cluster(connect(kubeconfig=str(kubeconfig))),
                webhook_config="multinode-webhook",
            )
    finally:
        box.close()
    assert box.crashes == 1
    assert [(o.name, o.pods) for o in found.owners] == [("llama-predictor", ["missed"])]


def _lws_pod(name: str, *, group: str) -> dict[str, Any]:
    pod = data_pod("llm-eval-leader")
    pod["metadata"]["name"] = name
    pod["metadata"]["labels"]["leaderworkerset.sigs.k8s.io/group-index"] = group
    return pod


def test_llm_pods_group_by_leaderworkerset_and_restart_by_their_leaders(cluster: Any) -> None:
    api, kubeconfig = cluster
    # Group 0's worker and group 1's leader slipped through; group 0's leader was repaired.
    repaired = _lws_pod("granite-kserve-mn-0", group="0")
    repaired["metadata"]["annotations"] = {names.STATUS_ANNOTATION: '{"rules":{}}'}
    for pod in (
        repaired,
        _lws_pod("granite-kserve-mn-0-1", group="0"),
        _lws_pod("granite-kserve-mn-1", group="1"),
    ):
        api.put("pods", pod)
    done = cli(
        "check", "--audit", "--namespace", "models", "--kubeconfig", str(kubeconfig), "-o", "json"
    )
    assert done.returncode == 1, done.stderr
    [lws] = [o for o in json.loads(done.stdout)["owners"] if o["kind"] == "LeaderWorkerSet"]
    assert lws == {
        "namespace": "models",
        "kind": "LeaderWorkerSet",
        "name": "granite-kserve-mn",
        "inferenceService": "",
        "llmInferenceService": "granite",
        "pods": ["granite-kserve-mn-0-1", "granite-kserve-mn-1"],
        "restart": "kubectl -n models delete pod granite-kserve-mn-0 granite-kserve-mn-1"
        "  # the LeaderWorkerSet recreates each group with its leader",
    }
    fakeapi.serving_install(api)
    restarted = cli("check", "--audit", "--restart", "--yes", "--kubeconfig", str(kubeconfig))
    assert "deleted the leaders granite-kserve-mn-0, granite-kserve-mn-1 of LeaderWorkerSet" in (
        restarted.stderr
    )
    assert api.get("pods", "models", "granite-kserve-mn-0") is None
    assert api.get("pods", "models", "granite-kserve-mn-1") is None
    assert api.get("pods", "models", "granite-kserve-mn-0-1") is not None


def test_a_pod_whose_args_replaced_its_script_is_named_with_its_fix(cluster: Any) -> None:
    api, kubeconfig = cluster
    api.put("pods", data_pod("llm-script-replaced"))
    done = cli("check", "--audit", "--namespace", "models", "--kubeconfig", str(kubeconfig))
    assert done.returncode == 1, done.stderr
    assert "!! Pod models/granite-kserve-mn-0-1 (LLMInferenceService granite)" in done.stdout
    assert "move the args into the env VLLM_ADDITIONAL_ARGS" in done.stdout
    found = json.loads(
        cli(
            "check",
            "--audit",
            "--namespace",
            "models",
            "--kubeconfig",
            str(kubeconfig),
            "-o",
            "json",
        ).stdout
    )
    [replaced] = found["scriptReplaced"]
    assert (replaced["pod"], replaced["llmInferenceService"]) == (
        "granite-kserve-mn-0-1",
        "granite",
    )
    # Recreating it would change nothing: --restart leaves it alone.
    fakeapi.serving_install(api)
    restarted = cli("check", "--audit", "--restart", "--yes", "--kubeconfig", str(kubeconfig))
    assert restarted.returncode == 1
    assert api.get("pods", "models", "granite-kserve-mn-0-1") is not None
