"""Warm start on a real API server: a replica started with three ServingRuntimes present parses
their scripts before /readyz passes, and answers the first pod of each from its cache; a runtime
created while it runs is parsed before its first pod too."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from tests.support import kserve
from tests.support.builders import EXAMPLES, review
from tests.support.envtest import ENVTEST, Cluster, kubeconfig_for, stand_in_serving_runtimes
from tests.support.poll import wait
from tests.support.servers import Running, running
from webhook.core.names import Rule

NAMESPACE = "warm"


def _runtime(serial: int) -> dict[str, Any]:
    """The example legacy runtime, its scripts made its own as a new release's would be."""
    runtime: dict[str, Any] = yaml.safe_load((EXAMPLES / "legacy-servingruntime.yaml").read_text())
    runtime = copy.deepcopy(runtime)
    runtime["metadata"] = {"name": f"runtime-{serial}", "namespace": NAMESPACE}
    for container in (
        *runtime["spec"]["containers"],
        *runtime["spec"]["workerSpec"]["containers"],
    ):
        container["args"][0] = f"# release {serial}\n" + container["args"][0]
    return runtime


def _containers(runtime: dict[str, Any]) -> list[dict[str, Any]]:
    return [*runtime["spec"]["containers"], *runtime["spec"]["workerSpec"]["containers"]]


def _create(client: httpx.Client, path: str, body: dict[str, Any]) -> None:
    reply = client.post(path, json=body)
    assert reply.status_code in (201, 409), reply.text


def _metric(live: Running, name: str) -> float:
    with live.ops() as ops:
        text = ops.get("/metrics").text
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line.startswith(name))


def _first_pods_patched(live: Running, runtime: dict[str, Any]) -> None:
    with live.client() as client:
        for role in ("head", "worker"):
            pod = kserve.build_pod(runtime, role=role, user_args=["--max-model-len=4096"])
            answer = client.post("/mutate", json=review(pod, namespace=NAMESPACE)).json()
            assert answer["response"].get("patchType") == "JSONPatch", answer["response"]


@ENVTEST
def test_a_replica_knows_the_clusters_runtimes_before_their_first_pods(
    cluster: Cluster, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with cluster.client() as client:
        stand_in_serving_runtimes(client)
        _create(client, "/api/v1/namespaces", {"metadata": {"name": NAMESPACE}})
        runtimes_path = f"/apis/serving.kserve.io/v1alpha1/namespaces/{NAMESPACE}/servingruntimes"
        present = [_runtime(serial) for serial in range(3)]
        for runtime in present:
            _create(client, runtimes_path, runtime)
        monkeypatch.setenv("KUBECONFIG", str(kubeconfig_for(cluster, tmp_path / "kubeconfig")))
        with running(tmp_path) as live:
            with live.ops() as ops:
                wait(lambda: ops.get("/readyz").status_code == 200, "warm start to finish")
            # Two scripts each (head and worker), all parsed before the replica was ready (and
            # those of whatever earlier tests left in the shared cluster).
            assert _metric(live, "multinode_webhook_warm_scripts_total") >= 2 * len(present)
            for runtime in present:
                for container in _containers(runtime):
                    script = container["args"][0]
                    assert live.state.scripts.get(script, frozenset(Rule)) is not None
            for runtime in present:
                _first_pods_patched(live, runtime)
            assert _metric(live, "multinode_webhook_first_seen_scripts_total") == 0
            # A runtime created now is parsed when it appears, before its first pod.
            warmed = _metric(live, "multinode_webhook_warm_scripts_total")
            later = _runtime(3)
            _create(client, runtimes_path, later)
            wait(
                lambda: _metric(live, "multinode_webhook_warm_scripts_total") == warmed + 2,
                "the new runtime's scripts to be parsed",
            )
            _first_pods_patched(live, later)
            assert _metric(live, "multinode_webhook_first_seen_scripts_total") == 0
