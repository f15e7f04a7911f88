"""Every workload pod of every overlay (each with every optional component) on a real API
server, in a namespace that enforces the `restricted` Pod Security Standard, as the install's
own namespace does: admitted, and a pod that breaks the standard is refused there."""

from __future__ import annotations

import copy
from typing import Any, Final

import pytest

from tests.support.envtest import ENVTEST, Cluster
from tests.support.install import every_install, workload_pods

pytestmark = ENVTEST

NAMESPACE: Final = "mw-restricted"


@pytest.fixture(scope="module")
def pods(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, Any]]:
    return {
        f"{overlay} {name}": pod
        for overlay, objects in every_install(tmp_path_factory.mktemp("installs")).items()
        for name, pod in workload_pods(objects, NAMESPACE).items()
    }


@pytest.fixture(scope="module")
def restricted(cluster: Cluster, pods: dict[str, dict[str, Any]]) -> Cluster:
    """A namespace labelled `pod-security.kubernetes.io/enforce: restricted`, with the
    ServiceAccounts the pods name."""
    with cluster.client() as client:
        namespace = {
            "apiVersion": "v1",
            "kind": "Namespace",
            "metadata": {
                "name": NAMESPACE,
                "labels": {
                    "pod-security.kubernetes.io/enforce": "restricted",
                    "pod-security.kubernetes.io/enforce-version": "latest",
                },
            },
        }
        assert client.post("/api/v1/namespaces", json=namespace).status_code in (201, 409)
        for account in {pod["spec"]["serviceAccountName"] for pod in pods.values()}:
            made = client.post(
                f"/api/v1/namespaces/{NAMESPACE}/serviceaccounts",
                json={"metadata": {"name": account}},
            )
            assert made.status_code in (201, 409), made.text
    return cluster


def _create(cluster: Cluster, pod: dict[str, Any]) -> tuple[int, str]:
    """The API server's answer to creating `pod` (a dry run: every admission runs, nothing is
    stored)."""
    with cluster.client() as client:
        answer = client.post(f"/api/v1/namespaces/{NAMESPACE}/pods?dryRun=All", json=pod)
    return answer.status_code, answer.json().get("message", "")


def test_every_workload_pod_of_every_overlay_is_admitted(
    restricted: Cluster, pods: dict[str, dict[str, Any]]
) -> None:
    answers = {name: _create(restricted, pod) for name, pod in pods.items()}
    assert answers == dict.fromkeys(pods, (201, ""))


@pytest.mark.parametrize(
    ("field", "refusal"),
    [
        ("seccompProfile", "seccompProfile"),
        ("runAsNonRoot", "runAsNonRoot"),
    ],
)
def test_a_pod_that_breaks_the_standard_is_refused(
    restricted: Cluster, pods: dict[str, dict[str, Any]], field: str, refusal: str
) -> None:
    pod = copy.deepcopy(pods["openshift Deployment/multinode-webhook"])
    pod["spec"]["securityContext"].pop(field)
    for container in pod["spec"]["containers"]:
        container["securityContext"].pop(field, None)
    status, message = _create(restricted, pod)
    assert status == 403
    assert 'violates PodSecurity "restricted:latest"' in message
    assert refusal in message
