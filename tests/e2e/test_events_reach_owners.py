"""Events on a real API server: the webhook, with the token of the install's own
ServiceAccount (so that the ClusterRole of `deploy/` is what is tested), tells an
InferenceService of its repaired pods and an LLMInferenceService of args that replaced its
script, as `kubectl get events` and `kubectl describe` show them; a dryRun create tells
nothing, and 50 pods of one InferenceService make one Event series."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from tests.support import llmisvc, servers
from tests.support.builders import example
from tests.support.envtest import (
    ENVTEST,
    Cluster,
    kubeconfig_for,
    kubectl,
    register_webhook,
    stand_in_crd,
    stand_in_inference_services,
)
from tests.support.install import user_overlay
from tests.support.poll import wait
from webhook.core import names
from webhook.core.names import Inject

pytestmark = ENVTEST

NAMESPACE = "told"
INSTALL = "mw-events"
GROUP = "serving.kserve.io"


def _created(client: httpx.Client, path: str, body: dict[str, Any]) -> dict[str, Any]:
    reply = client.post(path, json=body)
    assert reply.status_code in (201, 409), reply.text
    found: dict[str, Any] = client.get(f"{path}/{body['metadata']['name']}").json()
    return found


def _as_the_webhook(cluster: Cluster, work: Path) -> Path:
    """A kubeconfig with a token of the install's ServiceAccount, bound by its ClusterRole."""
    admin = kubeconfig_for(cluster, work / "admin")
    source = user_overlay(work / "install", "opt-in", namespace=INSTALL)
    rendered = yaml.safe_load_all(kubectl(admin, "kustomize", str(source)))
    wanted = {("ServiceAccount", "multinode-webhook"), ("ClusterRole", "multinode-webhook")}
    wanted.add(("ClusterRoleBinding", "multinode-webhook"))
    wanted.add(("Namespace", INSTALL))
    objects = [d for d in rendered if d and (d["kind"], d["metadata"]["name"]) in wanted]
    assert len(objects) == len(wanted)
    (work / "rbac.yaml").write_text(yaml.safe_dump_all(objects))
    kubectl(admin, "apply", "--server-side", "-f", str(work / "rbac.yaml"))
    token = kubectl(admin, "create", "token", "multinode-webhook", "-n", INSTALL).strip()
    return kubeconfig_for(cluster, work / "webhook.kubeconfig", token=token)


def _pod(name: str, owner: str) -> dict[str, Any]:
    pod = example("legacy-head-pod.yaml")
    pod["metadata"] = {**pod["metadata"], "name": name, "namespace": NAMESPACE}
    pod["metadata"]["labels"] = {**pod["metadata"]["labels"], names.ISVC_LABEL: owner}
    pod["spec"]["containers"][0]["args"] += ["--max-model-len", "8192"]
    return pod


def _events(admin: Path, kind: str) -> list[dict[str, Any]]:
    listed = kubectl(
        admin,
        "get",
        "events",
        "-n",
        NAMESPACE,
        "--field-selector",
        f"involvedObject.kind={kind}",
        "-o",
        "json",
    )
    items: list[dict[str, Any]] = json.loads(listed)["items"]
    return items


def test_owners_are_told_what_admission_did(
    cluster: Cluster, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    admin = kubeconfig_for(cluster, tmp_path / "admin")
    pods = f"/api/v1/namespaces/{NAMESPACE}/pods"
    with cluster.client() as client:
        stand_in_inference_services(client)
        stand_in_crd(
            client,
            group=GROUP,
            kind="LLMInferenceService",
            plural="llminferenceservices",
            version="v1alpha2",
        )
        namespace = {
            "metadata": {"name": NAMESPACE, "labels": {names.INJECT_LABEL: Inject.ENABLED}}
        }
        _created(client, "/api/v1/namespaces", namespace)
        isvcs = f"/apis/{GROUP}/v1beta1/namespaces/{NAMESPACE}/inferenceservices"
        owners = {
            name: _created(
                client,
                isvcs,
                {
                    "apiVersion": f"{GROUP}/v1beta1",
                    "kind": "InferenceService",
                    "metadata": {"name": name},
                },
            )
            for name in ("llama", "many", "dry")
        }
        llm = _created(
            client,
            f"/apis/{GROUP}/v1alpha2/namespaces/{NAMESPACE}/llminferenceservices",
            {
                "apiVersion": f"{GROUP}/v1alpha2",
                "kind": "LLMInferenceService",
                "metadata": {"name": llmisvc.NAME},
            },
        )
        monkeypatch.setenv("KUBECONFIG", str(_as_the_webhook(cluster, tmp_path)))
        with servers.running(tmp_path) as live:
            live.state.events.repeat_seconds = 1.0  # ten seconds in production
            register_webhook(client, live.https_port, live.ca_pem)
            probe = _pod("probe", "dry")

            def called() -> bool:
                reply = client.post(pods, json=probe, params={"dryRun": "All"})
                return names.STATUS_ANNOTATION in reply.json()["metadata"].get("annotations", {})

            wait(called, "the webhook to be called")
            reply = client.post(pods, json=_pod("llama-head", "llama"))
            assert reply.status_code == 201, reply.text
            replaced = llmisvc.build_pod(
                llmisvc.SCRIPT_IN_ARGS_PRESET, role="leader", user_args=["--max-model-len=4096"]
            )
            replaced["metadata"]["namespace"] = NAMESPACE
            reply = client.post(pods, json=replaced)
            assert reply.status_code == 201, reply.text
            for serial in range(50):
                reply = client.post(pods, json=_pod(f"many-{serial}", "many"))
                assert reply.status_code == 201, reply.text

            def counted() -> bool:
                found = {e["involvedObject"]["name"]: e for e in _events(admin, "InferenceService")}
                return found.get("many", {}).get("count") == 50 and "llama" in found

            wait(counted, "the Event series to count every pod", 60)

    # Every arg after the script in args: all of them lost before the repair.
    user_args = len(_pod("any", "llama")["spec"]["containers"][0]["args"]) - 1
    repaired = _events(admin, "InferenceService")
    # One series each: `many`'s 50 pods are counted into one Event, `dry` has none.
    assert sorted(e["involvedObject"]["name"] for e in repaired) == ["llama", "many"]
    for event in repaired:
        owner = owners[event["involvedObject"]["name"]]
        assert event["involvedObject"]["uid"] == owner["metadata"]["uid"]
        assert (event["type"], event["reason"]) == ("Normal", "ArgsRepaired")
        assert event["message"].startswith(
            f"multinode-webhook repaired container {names.HEAD_CONTAINER} "
            f"({user_args} args changed delivery;"
        )
        assert "\n" not in event["message"]
    [warned] = _events(admin, "LLMInferenceService")
    assert (warned["type"], warned["reason"]) == ("Warning", "ScriptReplaced")
    assert warned["involvedObject"]["uid"] == llm["metadata"]["uid"]
    assert "Move these args to VLLM_ADDITIONAL_ARGS" in warned["message"]
    # What a model owner reads.
    described = kubectl(admin, "describe", "inferenceservice", "llama", "-n", NAMESPACE)
    assert "ArgsRepaired" in described
    assert "multinode-webhook repaired container" in described
