"""The install of docs/install.md, on a real API server: `kubectl apply --server-side -k`, then what the
cluster would run, run here.

There is no kubelet, scheduler or controller manager in envtest: no pod ever starts. So the
certificate Deployment's container is run here as a kubelet would run it (its args with
`$(VAR)` expanded from its env, with a token of its own ServiceAccount, so that the install's
RBAC is what is tested), and the webhook Deployment's container is started on the files of the
Secret it made, mounted where its volume says, until `/readyz` answers.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import re
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from tests.support import poll, servers
from tests.support.cli import cli
from tests.support.envtest import ENVTEST, Cluster, kubeconfig_for, kubectl, stand_in_crd
from tests.support.install import user_overlay
from webhook import __version__
from webhook.adapters import certs

pytestmark = ENVTEST

# Stand-ins for the CRDs of cert-manager and the Prometheus Operator, which are not installed.
STAND_INS = [
    ("cert-manager.io", "Certificate", "certificates"),
    ("cert-manager.io", "Issuer", "issuers"),
    ("monitoring.coreos.com", "ServiceMonitor", "servicemonitors"),
    ("monitoring.coreos.com", "PrometheusRule", "prometheusrules"),
]
CONFIGURATIONS = "/apis/admissionregistration.k8s.io/v1/mutatingwebhookconfigurations"


def _stand_in_crds(client: httpx.Client) -> None:
    for group, kind, plural in STAND_INS:
        stand_in_crd(client, group=group, kind=kind, plural=plural)


def _expand(value: str, env: Mapping[str, str]) -> str:
    """`$(VAR)` as the kubelet expands it in args."""
    return re.sub(r"\$\(([A-Za-z_][A-Za-z0-9_]*)\)", lambda m: env.get(m[1], m[0]), value)


def _container_env(container: Mapping[str, Any], *, namespace: str) -> dict[str, str]:
    """The container's env as the kubelet sets it; the pod's namespace is the one fieldRef used."""
    env = {}
    for item in container.get("env", []):
        if "value" in item:
            env[item["name"]] = item["value"]
        else:
            assert item["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.namespace", item
            env[item["name"]] = namespace
    return env


def _as_kubelet(
    template: Mapping[str, Any], namespace: str, cluster: Cluster, work: Path
) -> tuple[list[str], dict[str, str]]:
    """A pod template's one container, as the kubelet would run it: its args with `$(VAR)`
    expanded from its env, and a token of the template's own ServiceAccount. (argv, env)"""
    [container] = template["spec"]["containers"]
    account = template["spec"]["serviceAccountName"]
    token = subprocess.run(
        [
            "kubectl",
            "--kubeconfig",
            str(kubeconfig_for(cluster, work / "admin")),
            "create",
            "token",
            account,
            "-n",
            namespace,
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    env = _container_env(container, namespace=namespace)
    args = [_expand(arg, env) for arg in container["args"]]
    as_pod = kubeconfig_for(cluster, work / f"{account}.kubeconfig", token=token)
    return [sys.executable, "-m", "webhook", *args], {
        **os.environ,
        **env,
        "KUBECONFIG": str(as_pod),
    }


def _run_as_kubelet(
    template: Mapping[str, Any], namespace: str, cluster: Cluster, work: Path
) -> subprocess.CompletedProcess[str]:
    """A container that runs to its end (a Job's)."""
    argv, env = _as_kubelet(template, namespace, cluster, work)
    return subprocess.run(argv, capture_output=True, text=True, check=False, timeout=120, env=env)


def _keep_certificates(
    client: httpx.Client, keeper: Mapping[str, Any], cluster: Cluster, work: Path
) -> tuple[dict[str, Any], dict[str, Any], str]:
    """The certificate Deployment's container, run as the kubelet would until the Secret it
    makes and the caBundle it writes agree, then stopped as a rollout stops it (SIGTERM).
    (the Secret, the configuration, what it said)"""
    namespace = keeper["metadata"]["namespace"]
    argv, env = _as_kubelet(keeper["spec"]["template"], namespace, cluster, work)
    secret_path = f"/api/v1/namespaces/{namespace}/secrets/multinode-webhook-tls"
    configuration_path = f"{CONFIGURATIONS}/multinode-webhook"

    def agreed() -> bool:
        secret = client.get(secret_path)
        if secret.status_code != 200:
            return False
        ca = base64.b64decode(secret.json()["data"]["ca.crt"])
        webhooks = client.get(configuration_path).json()["webhooks"]
        return {e["clientConfig"].get("caBundle") for e in webhooks} == {certs.ca_bundle(ca)}

    log = work / "keeper.log"
    with (
        log.open("w") as output,
        subprocess.Popen(
            argv, stdout=output, stderr=subprocess.STDOUT, text=True, env=env
        ) as process,
    ):
        try:
            # Its first pass said (a pass is said once it is done), and what it made agrees.
            poll.wait(
                lambda: "caBundle" in log.read_text() and agreed(),
                "the Secret and caBundle the certificate Deployment keeps",
                120,
            )
        finally:
            process.send_signal(signal.SIGTERM)
            process.wait(timeout=60)
    said = log.read_text()
    assert process.returncode == 0, said
    return client.get(secret_path).json(), client.get(configuration_path).json(), said


@contextlib.contextmanager
def _deployment_serving(
    deployment: Mapping[str, Any], secret: Mapping[str, Any], work: Path
) -> Iterator[tuple[int, int]]:
    """The Deployment's container on the Secret's files, where its volume is mounted: its own
    args, with the ports moved to free ones on 127.0.0.1. (https port, http port)"""
    namespace = deployment["metadata"]["namespace"]
    spec = deployment["spec"]["template"]["spec"]
    [container] = spec["containers"]
    [volume] = [v for v in spec["volumes"] if v.get("secret", {}).get("secretName")]
    assert volume["secret"]["secretName"] == secret["metadata"]["name"]
    [mount] = [m for m in container["volumeMounts"] if m["name"] == volume["name"]]
    mounted = work / "mounted"
    mounted.mkdir()
    for name, data in secret["data"].items():
        (mounted / name).write_bytes(base64.b64decode(data))
    env = _container_env(container, namespace=namespace)
    args = [
        _expand(arg, env).replace(mount["mountPath"], str(mounted)) for arg in container["args"]
    ]
    with servers.spawned(work, env=env, command=args) as (_, https_port, http_port):
        yield https_port, http_port


def _placed(admin: Path, rendered: list[dict[str, Any]], install: str) -> None:
    """Every object is where the render says: namespaced ones in the install's namespace."""
    for obj in rendered:
        meta = obj["metadata"]
        where = ["-n", meta["namespace"]] if "namespace" in meta else []
        found = json.loads(
            kubectl(admin, "get", obj["kind"].lower(), meta["name"], *where, "-o", "json")
        )
        assert found["metadata"].get("namespace") == meta.get("namespace"), obj["kind"]
        if "namespace" in meta:
            assert meta["namespace"] == install, (obj["kind"], meta["name"])


def _certificates(
    client: httpx.Client, keeper: Mapping[str, Any], cluster: Cluster, work: Path, redo: Any
) -> tuple[dict[str, Any], dict[str, Any]]:
    """The certificate Deployment run as the kubelet would: the Secret and the configuration
    it made, checked to stay as they are when `redo()` runs and it starts again."""
    secret, configuration, said = _keep_certificates(client, keeper, cluster, work)
    print(said)
    before = (secret["metadata"]["resourceVersion"], configuration["metadata"]["resourceVersion"])
    redo()
    again, configured, said = _keep_certificates(client, keeper, cluster, work)
    assert "is current" in said, said
    after = (again["metadata"]["resourceVersion"], configured["metadata"]["resourceVersion"])
    assert after == before
    return secret, configuration


def _serves_as_the_api_server_expects(
    deployment: Mapping[str, Any],
    secret: Mapping[str, Any],
    configuration: Mapping[str, Any],
    work: Path,
) -> None:
    """The Deployment's own container serves on the Secret, ready, with a certificate that
    verifies against caBundle for the name the API server calls."""
    with _deployment_serving(deployment, secret, work) as (https_port, http_port):
        assert httpx.get(f"http://127.0.0.1:{http_port}/readyz").status_code == 200
        entry = configuration["webhooks"][0]
        service = entry["clientConfig"]["service"]
        host = f"{service['name']}.{service['namespace']}.svc"
        context = servers.client_context(base64.b64decode(entry["clientConfig"]["caBundle"]))
        with (
            socket.create_connection(("127.0.0.1", https_port), timeout=10) as raw,
            context.wrap_socket(raw, server_hostname=host) as tls,
        ):
            assert tls.getpeercert() is not None


def _one(rendered: list[dict[str, Any]], kind: str, name: str) -> dict[str, Any]:
    [found] = [o for o in rendered if o["kind"] == kind and o["metadata"]["name"] == name]
    return found


@pytest.mark.parametrize(
    ("overlay", "namespace"),
    [
        ("opt-in", None),
        ("cluster-wide", "mw-cluster-wide"),
        ("cert-manager", "mw-cert-manager"),
    ],
)
def test_the_documented_install_works(
    cluster: Cluster, tmp_path: Path, overlay: str, namespace: str | None
) -> None:
    admin = kubeconfig_for(cluster, tmp_path / "kubeconfig")
    source = user_overlay(tmp_path / "my-install", overlay, namespace=namespace)
    rendered = [
        d for d in yaml.safe_load_all(kubectl(admin, "kustomize", str(source))) if d is not None
    ]
    install = namespace or "multinode-webhook"
    with cluster.client() as client:
        _stand_in_crds(client)
        client.delete(f"{CONFIGURATIONS}/multinode-webhook")  # another test's
        try:
            kubectl(admin, "apply", "--server-side", "-k", str(source))
            _placed(admin, rendered, install)
            # No pod runs here, so the install is down, and check must say so.
            done = cli("check", "--kubeconfig", str(admin))
            assert done.returncode == 1, done.stdout + done.stderr
            assert f"!! Deployment {install}/multinode-webhook has no ready replicas" in done.stdout
            assert f"!! Service {install}/multinode-webhook has no ready endpoints" in done.stdout
            # The audit CronJob's command, with its own ServiceAccount: its RBAC reads all the
            # audit reads (exit 1 exactly when it finds pods, such as those the other e2e
            # tests left unrepaired; an RBAC refusal would be exit 2).
            audit = _one(rendered, "CronJob", "multinode-webhook-audit")
            template = audit["spec"]["jobTemplate"]["spec"]["template"]
            done = _run_as_kubelet(template, install, cluster, tmp_path)
            found = json.loads(done.stdout)["unrepaired"] if done.stdout else None
            assert (done.returncode, found is not None) == (1 if found else 0, True), done.stderr
            if overlay != "cert-manager":  # there cert-manager makes the Secret; not here
                secret, configuration = _certificates(
                    client,
                    _one(rendered, "Deployment", "multinode-webhook-certs"),
                    cluster,
                    tmp_path,
                    # Applying the install again, as an upgrade does, keeps caBundle.
                    lambda: kubectl(admin, "apply", "--server-side", "-k", str(source)),
                )
                deployment = _one(rendered, "Deployment", "multinode-webhook")
                _serves_as_the_api_server_expects(deployment, secret, configuration, tmp_path)
            # The break glass of docs/operate.md, then uninstall (no namespace controller runs here to
            # finish deleting the namespace, so kubectl is not asked to wait for it).
            kubectl(admin, "delete", "mutatingwebhookconfiguration", "multinode-webhook")
            kubectl(admin, "delete", "-k", str(source), "--ignore-not-found", "--wait=false")
        finally:
            client.delete(f"{CONFIGURATIONS}/multinode-webhook")


def _unapplied(wanted: Any, live: Any, where: str = "") -> list[str]:
    """The fields of `wanted` that `live` does not hold as given (what the API server adds, such
    as defaults and status, is not compared; an empty list or map it stores as absent)."""
    if wanted in ([], {}) and live is None:
        return []
    if isinstance(wanted, dict):
        if not isinstance(live, dict):
            return [where or "/"]
        return [
            miss
            for key, value in wanted.items()
            for miss in _unapplied(value, live.get(key), f"{where}/{key}")
        ]
    if isinstance(wanted, list):
        if not isinstance(live, list) or len(live) != len(wanted):
            return [where]
        return [
            miss
            for index, (a, b) in enumerate(zip(wanted, live, strict=True))
            for miss in _unapplied(a, b, f"{where}/{index}")
        ]
    return [] if wanted == live else [f"{where}: {live!r} instead of {wanted!r}"]


def _rendered(admin: Path, source: Path) -> list[dict[str, Any]]:
    return [
        d for d in yaml.safe_load_all(kubectl(admin, "kustomize", str(source))) if d is not None
    ]


def test_an_upgrade_updates_every_object_and_keeps_the_certificate(
    cluster: Cluster, tmp_path: Path
) -> None:
    """The upgrade of docs/install.md: another tag in the user's overlay, then the install's own apply,
    while the certificate Deployment of the first install has made the Secret."""
    admin = kubeconfig_for(cluster, tmp_path / "kubeconfig")
    source = user_overlay(tmp_path / "my-install", "opt-in", namespace="mw-upgrade")
    with cluster.client() as client:
        _stand_in_crds(client)
        client.delete(f"{CONFIGURATIONS}/multinode-webhook")  # another test's
        try:
            kubectl(admin, "apply", "--server-side", "-k", str(source))
            first = _rendered(admin, source)
            keeper = _one(first, "Deployment", "multinode-webhook-certs")
            image = keeper["spec"]["template"]["spec"]["containers"][0]["image"]
            assert image == f"multinode-webhook:{__version__}"
            secret, configuration, _ = _keep_certificates(client, keeper, cluster, tmp_path)

            kustomization = yaml.safe_load((source / "kustomization.yaml").read_text())
            kustomization["images"] = [{"name": "multinode-webhook", "newTag": "9.9.9"}]
            (source / "kustomization.yaml").write_text(yaml.safe_dump(kustomization))
            kubectl(admin, "apply", "--server-side", "-k", str(source))

            upgraded = _rendered(admin, source)
            workloads = [o for o in upgraded if o["kind"] in ("Deployment", "CronJob")]
            assert len(workloads) == 3  # the webhook, its certificates, the audit
            for obj in upgraded:
                meta = obj["metadata"]
                where = ["-n", meta["namespace"]] if "namespace" in meta else []
                live = json.loads(
                    kubectl(admin, "get", obj["kind"].lower(), meta["name"], *where, "-o", "json")
                )
                assert not _unapplied(obj, live), (obj["kind"], meta["name"])
            assert "9.9.9" in json.dumps(workloads)

            # The new certificate Deployment finds the pair current: nothing is remade.
            kept, configured, said = _keep_certificates(
                client, _one(upgraded, "Deployment", "multinode-webhook-certs"), cluster, tmp_path
            )
            assert "is current" in said, said
            assert kept["data"] == secret["data"]
            assert [e["clientConfig"]["caBundle"] for e in configured["webhooks"]] == [
                e["clientConfig"]["caBundle"] for e in configuration["webhooks"]
            ]
            kubectl(admin, "delete", "-k", str(source), "--ignore-not-found", "--wait=false")
        finally:
            client.delete(f"{CONFIGURATIONS}/multinode-webhook")
