"""Fault: the API server stopped for 20 seconds under a running replica, warm start and Events
on, then started again (on an API server of this test's own, so that the others' is never
down). What must hold: admission is answered throughout, first-seen scripts included; once the
API server is back, warm start parses a runtime created then, and Events reach owners again,
with no restart of the replica."""

from __future__ import annotations

import copy
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from tests.support import servers
from tests.support.builders import EXAMPLES, example, review
from tests.support.envtest import (
    ENVTEST,
    ControlPlane,
    kubeconfig_for,
    stand_in_inference_services,
    stand_in_serving_runtimes,
)
from tests.support.poll import wait
from webhook.core import names
from webhook.core.names import Rule

pytestmark = ENVTEST

NAMESPACE = "restarted"
GROUP = "serving.kserve.io"
OUTAGE_SECONDS = 20


def _owner(client: httpx.Client, name: str) -> None:
    reply = client.post(
        f"/apis/{GROUP}/v1beta1/namespaces/{NAMESPACE}/inferenceservices",
        json={
            "apiVersion": f"{GROUP}/v1beta1",
            "kind": "InferenceService",
            "metadata": {"name": name},
        },
    )
    assert reply.status_code == 201, reply.text


def _pod(owner: str, *, first_seen: bool = False) -> dict[str, Any]:
    pod = example("legacy-head-pod.yaml")
    pod["metadata"]["labels"][names.ISVC_LABEL] = owner
    if first_seen:
        container = pod["spec"]["containers"][0]
        container["args"][0] = f"# release {uuid.uuid4()}\n" + container["args"][0]
    return pod


def _repaired(live: servers.Running, pod: dict[str, Any]) -> bool:
    with live.client() as client:
        reply = client.post("/mutate", json=review(pod, namespace=NAMESPACE))
    return bool(reply.json()["response"].get("patchType") == "JSONPatch")


def _events(client: httpx.Client, owner: str) -> list[dict[str, Any]]:
    listed = client.get(
        f"/api/v1/namespaces/{NAMESPACE}/events",
        params={"fieldSelector": f"involvedObject.name={owner}"},
    )
    if listed.status_code != 200:
        return []
    items: list[dict[str, Any]] = listed.json()["items"]
    return items


def _runtime(script_mark: str) -> dict[str, Any]:
    runtime: dict[str, Any] = copy.deepcopy(
        yaml.safe_load((EXAMPLES / "legacy-servingruntime.yaml").read_text())
    )
    runtime["metadata"] = {"name": "after-restart", "namespace": NAMESPACE}
    container = runtime["spec"]["containers"][0]
    container["args"][0] = f"# {script_mark}\n" + container["args"][0]
    return runtime


def test_a_replica_rides_out_an_api_server_restart(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "plane").mkdir()
    plane = ControlPlane(tmp_path / "plane")
    plane.start()
    try:
        cluster = plane.cluster
        with cluster.client() as client:
            stand_in_serving_runtimes(client)
            stand_in_inference_services(client)
            reply = client.post("/api/v1/namespaces", json={"metadata": {"name": NAMESPACE}})
            assert reply.status_code == 201, reply.text
            _owner(client, "before")
        monkeypatch.setenv("KUBECONFIG", str(kubeconfig_for(cluster, tmp_path / "admin")))
        with servers.running(tmp_path / "server", warm_up_seconds=10) as live:
            live.state.events.repeat_seconds = 1.0
            with cluster.client() as client:
                assert _repaired(live, _pod("before"))
                wait(lambda: bool(_events(client, "before")), "the first Event")

            plane.stop_apiserver()
            stopped = time.monotonic()
            answered = 0
            while time.monotonic() - stopped < OUTAGE_SECONDS:
                assert _repaired(live, _pod("before", first_seen=True))
                answered += 1
                time.sleep(1)
            with live.ops() as ops:
                assert ops.get("/readyz").status_code == 200
            plane.start_apiserver()

            mark = str(uuid.uuid4())
            runtime = _runtime(mark)
            script = runtime["spec"]["containers"][0]["args"][0]
            with cluster.client() as client:
                created = client.post(
                    f"/apis/{GROUP}/v1alpha1/namespaces/{NAMESPACE}/servingruntimes", json=runtime
                )
                assert created.status_code == 201, created.text
                # Warm start resumed: the new runtime's script is parsed before any pod of it.
                wait(
                    lambda: live.state.scripts.get(script, frozenset(Rule)) is not None,
                    "warm start to parse a runtime created after the restart",
                    90,
                )
                _owner(client, "after")
                # Events resumed: a pod reviewed now tells its owner.
                wait(
                    lambda: _repaired(live, _pod("after")) and bool(_events(client, "after")),
                    "an Event after the restart",
                    90,
                )
    finally:
        plane.stop()
    assert answered >= OUTAGE_SECONDS // 2
