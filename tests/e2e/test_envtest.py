"""End to end against a real kube-apiserver and etcd (the envtest convention).

Set KUBEBUILDER_ASSETS to a folder holding `kube-apiserver` and `etcd` (`tests/e2e/envtest.sh`
builds them, as controller-runtime's setup-envtest lays them out) to run it; without them every
test here skips, saying why. The API server calls the webhook by URL on 127.0.0.1 with the
rendered opt-in configuration, and `check --audit` reads the same API server for the pod
admitted while the webhook was down.
"""

from __future__ import annotations

import contextlib
import json
import shutil
import signal
import threading
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support import llmisvc, servers
from tests.support.builders import data_pod, example
from tests.support.cli import cli
from tests.support.envtest import (
    ENVTEST,
    Cluster,
    kubeconfig_for,
    register_webhook,
    stand_in_serving_runtimes,
)
from tests.support.keepalive import Service
from tests.support.poll import wait
from tests.support.proof import launch
from webhook.core import names
from webhook.core.names import Inject

pytestmark = ENVTEST


def _namespace(client: httpx.Client, name: str, labels: dict[str, str]) -> None:
    reply = client.post(
        "/api/v1/namespaces",
        json={
            "apiVersion": "v1",
            "kind": "Namespace",
            "metadata": {"name": name, "labels": labels},
        },
    )
    assert reply.status_code in (201, 409), reply.text


def _create(
    client: httpx.Client, namespace: str, pod: dict[str, Any], *, dry_run: bool = False
) -> httpx.Response:
    body = {**pod, "metadata": {**pod["metadata"], "namespace": namespace}}
    params = {"dryRun": "All"} if dry_run else {}
    return client.post(f"/api/v1/namespaces/{namespace}/pods", json=body, params=params)


def _named(pod: dict[str, Any], name: str, **labels: str) -> dict[str, Any]:
    metadata = {**pod["metadata"], "name": name, "labels": {**pod["metadata"]["labels"], **labels}}
    return {**pod, "metadata": metadata}


POSTFIX_PODS = [
    ("kserve-postfix-head", names.HEAD_CONTAINER),
    ("odh-cmd-string", names.HEAD_CONTAINER),
    ("postfix-worker-with-args", names.WORKER_CONTAINER),
    ("sh-unquoted-args", names.HEAD_CONTAINER),
]


def _rewritten(stored: dict[str, Any], container: str) -> bool:
    target = next(c for c in stored["spec"]["containers"] if c["name"] == container)
    return target["command"][-1] == container and names.STATUS_ANNOTATION in stored["metadata"].get(
        "annotations", {}
    )


def test_admission_through_a_real_api_server(cluster: Cluster, tmp_path: Path) -> None:
    head, worker = example("legacy-head-pod.yaml"), example("legacy-worker-pod.yaml")
    with cluster.client() as client:
        _namespace(client, "enabled", {names.INJECT_LABEL: Inject.ENABLED})
        _namespace(client, "trial", {names.INJECT_LABEL: Inject.SHADOW})
        _namespace(client, "plain", {})
        with servers.running(tmp_path) as live:
            register_webhook(client, live.https_port, live.ca_pem)
            # The API server picks up a new webhook configuration within a moment.
            wait(
                lambda: _rewritten(
                    _create(client, "enabled", _named(head, "probe"), dry_run=True).json(),
                    names.HEAD_CONTAINER,
                ),
                "the webhook to be called",
            )

            # The legacy shape, and every post-fix shape the matchConditions must let through.
            shapes = [
                (head, names.HEAD_CONTAINER),
                (worker, names.WORKER_CONTAINER),
                *((_named(data_pod(name), name), container) for name, container in POSTFIX_PODS),
            ]
            for pod, container in shapes:
                reply = _create(client, "enabled", pod)
                assert reply.status_code == 201, reply.text
                assert _rewritten(reply.json(), container)
                assert "multinode-webhook rewrote" in reply.headers.get("warning", "")

            untouched = {
                "plain": _named(head, "elsewhere"),
                "enabled": _named(head, "opted-out", **{names.INJECT_LABEL: names.POD_OPT_OUT}),
            }
            for namespace, pod in untouched.items():
                reply = _create(client, namespace, pod)
                assert reply.status_code == 201, reply.text
                assert reply.json()["spec"]["containers"][0]["command"] == ["bash", "-c"]

            reply = _create(client, "trial", _named(head, "shadowed"))
            assert reply.status_code == 201
            assert reply.json()["spec"]["containers"][0]["command"] == ["bash", "-c"]
            assert "(shadow) would rewrite" in reply.headers.get("warning", "")

            reply = _create(client, "enabled", _named(head, "dry"), dry_run=True)
            assert _rewritten(reply.json(), names.HEAD_CONTAINER)
            assert client.get("/api/v1/namespaces/enabled/pods/dry").status_code == 404

        # The webhook is gone: pods are still admitted, unchanged (failurePolicy: Ignore).
        reply = _create(client, "enabled", _named(head, "fail-open"))
        assert reply.status_code == 201, reply.text
        assert reply.json()["spec"]["containers"][0]["command"] == ["bash", "-c"]


def _serving_again(client: httpx.Client, live: servers.Running) -> None:
    register_webhook(client, live.https_port, live.ca_pem)
    wait(
        lambda: _rewritten(
            _create(
                client, "audited", _named(example("legacy-head-pod.yaml"), "probe"), dry_run=True
            ).json(),
            names.HEAD_CONTAINER,
        ),
        "the webhook to be called",
    )


def test_audit_finds_the_pod_admitted_during_an_outage(cluster: Cluster, tmp_path: Path) -> None:
    head = example("legacy-head-pod.yaml")
    kubeconfig = kubeconfig_for(cluster, tmp_path / "kubeconfig")
    with cluster.client() as client:
        _namespace(client, "audited", {names.INJECT_LABEL: Inject.ENABLED})
        with servers.running(tmp_path / "before") as live:
            _serving_again(client, live)
            reply = _create(client, "audited", _named(head, "repaired"))
            assert _rewritten(reply.json(), names.HEAD_CONTAINER)
        # The webhook is down: the pod is admitted as it is, and nothing says so.
        reply = _create(client, "audited", _named(head, "outage"))
        assert reply.status_code == 201, reply.text
        assert reply.json()["spec"]["containers"][0]["command"] == ["bash", "-c"]
        with servers.running(tmp_path / "after") as live:
            _serving_again(client, live)
            done = cli(
                "check",
                "--audit",
                "--namespace",
                "audited",
                "-o",
                "json",
                "--kubeconfig",
                str(kubeconfig),
            )
    assert done.returncode == 1, done.stdout + done.stderr
    found = json.loads(done.stdout)
    assert found["unrepaired"] == 1
    assert [(o["kind"], o["name"], o["pods"]) for o in found["owners"]] == [
        ("Pod", "outage", ["outage"])
    ]


def test_kubectl_is_available_for_rendering() -> None:
    assert shutil.which("kubectl"), "the e2e test renders the overlay with kubectl kustomize"


def _costly(serial: int) -> dict[str, Any]:
    """A post-fix head pod whose distinct script of about 60 KiB names `$@` thousands of times:
    costly to analyse, and new to every replica."""
    pod = _named(example("legacy-head-pod.yaml"), f"flood-{serial}")
    head = f"# {serial}\npython -m huggingfaceserver"
    script = head + " $@" * ((60 * 1024 - len(head)) // 3) + "\n"
    pod["spec"]["containers"][0]["command"] = ["bash", "-c", script]
    pod["spec"]["containers"][0]["args"] = ["--x"]
    return pod


def _flood(cluster: Cluster, tenant: int, stop: threading.Event, flooded: list[int]) -> None:
    """Create costly pods in the tenant's namespace until `stop`."""
    with cluster.client() as client:
        serial = tenant * 1_000_000
        while not stop.is_set():
            serial += 1
            if _create(client, f"flood-{tenant}", _costly(serial)).status_code == 201:
                flooded.append(serial)


def _keep_creating(
    cluster: Cluster, worker: int, stop: threading.Event, created: list[str], failures: list[str]
) -> None:
    """Create the example head pod in `rolling` under new names until `stop`."""
    head = example("legacy-head-pod.yaml")
    with cluster.client() as client:
        serial = 0
        while not stop.is_set():
            name = f"rolling-{worker}-{serial}"
            reply = _create(client, "rolling", _named(head, name))
            if reply.status_code == 201:
                created.append(name)
            else:
                failures.append(reply.text)
            serial += 1


def _unrepaired(stored: list[dict[str, Any]]) -> list[str]:
    """The names of the stored pods that carry no status annotation of ours."""
    return [
        p["metadata"]["name"]
        for p in stored
        if names.STATUS_ANNOTATION not in p["metadata"].get("annotations", {})
    ]


def _runtime_of(client: httpx.Client, pod: dict[str, Any], *, namespace: str) -> None:
    """A ServingRuntime whose head container is the pod's, for warm start to find."""
    stand_in_serving_runtimes(client)
    [head] = [c for c in pod["spec"]["containers"] if c["name"] == names.HEAD_CONTAINER]
    runtime = {
        "apiVersion": "serving.kserve.io/v1alpha1",
        "kind": "ServingRuntime",
        "metadata": {"name": "rolling-runtime", "namespace": namespace},
        "spec": {"containers": [head]},
    }
    path = f"/apis/serving.kserve.io/v1alpha1/namespaces/{namespace}/servingruntimes"
    reply = client.post(path, json=runtime)
    assert reply.status_code in (201, 409), reply.text


def test_rolling_restarts_let_no_pod_through(cluster: Cluster, tmp_path: Path) -> None:
    """Two `serve` replicas behind a conntrack-like proxy, the API server calling it by URL;
    pods are created all along while each replica in turn is replaced, and two tenants flood
    the webhook with costly first-seen scripts: every pod of the others is stored repaired.

    The replicas run as deployed, with cluster credentials: warm start parses the runtime of
    the pods being created before a new replica is ready. Without it, a new replica's first
    such pod can wait behind two flood parses past its deadline, and be admitted unrepaired by
    the error policy (what warm start is for)."""
    head = example("legacy-head-pod.yaml")
    flags = ("--log-level", "warning")
    credentials = {"KUBECONFIG": str(kubeconfig_for(cluster, tmp_path / "kubeconfig"))}
    created: list[str] = []
    failures: list[str] = []
    flooded: list[int] = []
    stop = threading.Event()

    with cluster.client() as client, contextlib.ExitStack() as stack:
        for namespace in ("rolling", "flood-0", "flood-1"):
            _namespace(client, namespace, {names.INJECT_LABEL: Inject.ENABLED})
        _runtime_of(client, head, namespace="rolling")
        process, https_port, _ = stack.enter_context(
            servers.spawned(tmp_path, *flags, env=credentials)
        )
        service = Service(https_port)
        stack.callback(service.close)
        register_webhook(client, service.port, (tmp_path / "certs" / "ca.crt").read_bytes())
        wait(
            lambda: _rewritten(
                _create(client, "rolling", _named(head, "probe"), dry_run=True).json(),
                names.HEAD_CONTAINER,
            ),
            "the webhook to be called",
        )
        creators = [
            threading.Thread(target=_keep_creating, args=(cluster, n, stop, created, failures))
            for n in range(6)
        ]
        creators += [
            threading.Thread(target=_flood, args=(cluster, n, stop, flooded)) for n in (0, 1)
        ]
        for creator in creators:
            creator.start()

        def more(count: int) -> None:
            target = len(created) + count
            wait(lambda: len(created) >= target, f"{count} more pods created", 60)

        try:
            more(100)
            for _ in range(3):
                old = process
                process, https_port, _ = stack.enter_context(
                    servers.spawned(tmp_path, *flags, env=credentials)
                )
                service.backend = https_port
                more(100)  # the preStop pause: the old replica still serves its own
                old.send_signal(signal.SIGTERM)
                assert old.wait(60) == 0
                more(100)
        finally:
            stop.set()
            for creator in creators:
                creator.join(30)
        stored = client.get("/api/v1/namespaces/rolling/pods").json()["items"]
        client.delete(
            "/apis/admissionregistration.k8s.io/v1/mutatingwebhookconfigurations/multinode-webhook"
        )
    assert not failures, failures[:3]
    unrepaired = _unrepaired(stored)
    print(
        f"{len(created)} pods created over 3 restarts, {len(unrepaired)} unrepaired, "
        f"{len(flooded)} flooding pods"
    )
    assert flooded  # the flood ran
    assert len(created) > 200
    assert unrepaired == []


def _stored_argv(stored: dict[str, Any], workdir: Path) -> list[str]:
    return launch(stored, names.LLM_CONTAINER, workdir, added=llmisvc.LWS_ENV)


def test_llminferenceservice_pods_through_a_real_api_server(
    cluster: Cluster, tmp_path: Path
) -> None:
    preset = llmisvc.CORPUS / "kserve-v0.20.0-config-llm-worker-data-parallel.yaml"
    legacy = llmisvc.CORPUS / "kserve-v0.16.0-config-llm-worker-data-parallel.yaml"
    if not preset.is_file():
        pytest.skip(f"shared LLM preset corpus not found at {llmisvc.CORPUS}")
    config = llmisvc.load(preset)
    args = ["--served-model-name=my model", "--x=$(id)", "a;b", "it's", "", "'{\"a\": 1}'"]
    delivered = [*args[:5], '{"a": 1}']
    leader = llmisvc.build_pod(config, role="leader", user_args=args)
    worker = llmisvc.build_pod(config, role="worker", user_args=["--enforce-eager", "x y"])
    flags = {
        role: _stored_argv(llmisvc.build_pod(config, role=role), tmp_path / f"{role}-bare")
        for role in ("leader", "worker")
    }
    with cluster.client() as client:
        _namespace(client, "llm", {names.INJECT_LABEL: Inject.ENABLED})
        _namespace(client, "llm-plain", {})
        with servers.running(tmp_path) as live:
            register_webhook(client, live.https_port, live.ca_pem)
            wait(
                lambda: (
                    names.STATUS_ANNOTATION
                    in _create(client, "llm", _named(leader, "probe"), dry_run=True)
                    .json()["metadata"]
                    .get("annotations", {})
                ),
                "the webhook to be called",
            )
            stored = {}
            for role, pod in (("leader", leader), ("worker", worker)):
                reply = _create(client, "llm", pod)
                assert reply.status_code == 201, reply.text
                assert "multinode-webhook rewrote main" in reply.headers.get("warning", "")
                stored[role] = reply.json()
            replaced = llmisvc.build_pod(
                llmisvc.load(legacy), role="leader", user_args=["--max-model-len=4096"]
            )
            reply = _create(client, "llm", _named(replaced, "replaced"))
            explained = reply.json()
            plain = _create(client, "llm-plain", _named(leader, "elsewhere")).json()
            opted_out = _create(
                client,
                "llm",
                _named(leader, "opted-out", **{names.INJECT_LABEL: names.POD_OPT_OUT}),
            ).json()

    where = (
        flags["leader"].index("--trust-remote-code")
        if "--trust-remote-code" in flags["leader"]
        else len(flags["leader"])
    )
    got = _stored_argv(stored["leader"], tmp_path / "leader")
    assert got == [*flags["leader"][:where], *delivered, *flags["leader"][where:]]
    got = _stored_argv(stored["worker"], tmp_path / "worker")
    assert got[len(flags["worker"]) :] == ["--enforce-eager", "x y"]
    assert names.PROBLEM_ANNOTATION in explained["metadata"]["annotations"]
    assert explained["spec"]["containers"][0]["args"] == ["--max-model-len=4096"]
    for untouched in (plain, opted_out):
        assert untouched["spec"]["containers"][0]["command"][-1] == "--"
        assert '$@"' in untouched["spec"]["containers"][0]["command"][2]
        assert names.STATUS_ANNOTATION not in untouched["metadata"].get("annotations", {})
