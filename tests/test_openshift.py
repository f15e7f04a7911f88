"""The install on OpenShift: every workload pod of every overlay (each with every optional
component) is admitted by the restricted-v2 SecurityContextConstraints every ServiceAccount gets
by default, as OpenShift's own SCC admission code judges it (the sccmatching package of
github.com/openshift/apiserver-library-go, built from the Go module proxy by
tests/testdata/sccmatching/build.sh and cached), in a project with OpenShift's preallocated
ranges; and the SCC manifests are OpenShift's own (../shared/fixtures/openshift-scc/).
"""

from __future__ import annotations

import copy
import json
import shutil
import subprocess
from pathlib import Path
from typing import Any, Final

import pytest
import yaml

from tests.support.builders import REPO
from tests.support.install import every_install, workload_pods

SCC_FIXTURES: Final = REPO.parent / "shared" / "fixtures" / "openshift-scc"
BUILD: Final = REPO / "tests" / "testdata" / "sccmatching" / "build.sh"
GO = shutil.which("go") or next((p for p in ("/usr/local/go/bin/go",) if Path(p).is_file()), None)
# A project as OpenShift makes one: its preallocated UID range, SELinux level and groups.
PROJECT: Final = {
    "apiVersion": "v1",
    "kind": "Namespace",
    "metadata": {
        "name": "multinode-webhook",
        "annotations": {
            "openshift.io/sa.scc.uid-range": "1000680000/10000",
            "openshift.io/sa.scc.mcs": "s0:c26,c5",
            "openshift.io/sa.scc.supplemental-groups": "1000680000/10000",
        },
    },
}

pytestmark = [
    pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl is not installed"),
    pytest.mark.skipif(
        not SCC_FIXTURES.is_dir(), reason=f"OpenShift's SCC manifests are not at {SCC_FIXTURES}"
    ),
]


@pytest.fixture(scope="module")
def scc_admit() -> Path:
    """OpenShift's SCC admission as a command (built once, then cached)."""
    if GO is None:
        pytest.skip("OpenShift's SCC admission code is Go: building it needs `go` on the PATH")
    done = subprocess.run(
        ["bash", str(BUILD)], capture_output=True, text=True, check=False, env=None
    )
    assert done.returncode == 0, done.stderr
    [line] = [x for x in done.stdout.splitlines() if x.startswith("SCC_ADMIT=")]
    return Path(line.removeprefix("SCC_ADMIT="))


def _scc(name: str) -> dict[str, Any]:
    found: dict[str, Any] = yaml.safe_load((SCC_FIXTURES / f"{name}.yaml").read_text())
    return found


def admitted(scc_admit: Path, scc: dict[str, Any], pods: dict[str, Any]) -> dict[str, list[str]]:
    """What OpenShift's SCC admission says of each pod: its errors, none when it is admitted."""
    given = {
        "scc": scc,
        "namespace": PROJECT,
        "pods": [{"name": name, "pod": pod} for name, pod in pods.items()],
    }
    done = subprocess.run(
        [str(scc_admit)], input=json.dumps(given), capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stderr
    return {v["name"]: v["errors"] for v in json.loads(done.stdout)}


@pytest.fixture(scope="module")
def installs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, list[dict[str, Any]]]:
    return every_install(tmp_path_factory.mktemp("installs"))


def test_the_fixture_is_openshifts_restricted_v2() -> None:
    scc = _scc("restricted-v2")
    assert (scc["kind"], scc["metadata"]["name"]) == ("SecurityContextConstraints", "restricted-v2")
    assert scc["runAsUser"] == {"type": "MustRunAsRange"}
    assert scc["requiredDropCapabilities"] == ["ALL"]


def test_every_workload_pod_of_every_overlay_is_admitted_by_restricted_v2(
    scc_admit: Path, installs: dict[str, list[dict[str, Any]]]
) -> None:
    pods = {
        f"{overlay} {name}": pod
        for overlay, objects in installs.items()
        for name, pod in workload_pods(objects, "multinode-webhook").items()
    }
    # Each overlay's server and the audit CronJob; the certificate Deployment where there is one.
    assert {name.split()[0] for name in pods} == set(installs)
    assert sum("multinode-webhook-certs" in name for name in pods) == 2
    verdicts = admitted(scc_admit, _scc("restricted-v2"), pods)
    assert verdicts == {name: [] for name in pods}


@pytest.mark.parametrize(
    ("change", "refusal"),
    [
        # The fields the install fixed before it ran on OpenShift.
        (
            {"runAsUser": 65532, "runAsGroup": 65532},
            "runAsUser: Invalid value: 65532: must be in the ranges: [1000680000, 1000689999]",
        ),
        (
            {"fsGroup": 65532},
            "fsGroup: Invalid value: []int64{65532}: 65532 is not an allowed group",
        ),
    ],
)
def test_a_fixed_id_is_refused_as_on_openshift(
    scc_admit: Path,
    installs: dict[str, list[dict[str, Any]]],
    change: dict[str, Any],
    refusal: str,
) -> None:
    pod = copy.deepcopy(
        workload_pods(installs["openshift"], "multinode-webhook")["Deployment/multinode-webhook"]
    )
    pod["spec"]["securityContext"].update(change)
    [errors] = admitted(scc_admit, _scc("restricted-v2"), {"pod": pod}).values()
    assert any(refusal in error for error in errors), errors


def test_no_workload_fixes_its_user_or_group(installs: dict[str, list[dict[str, Any]]]) -> None:
    for overlay, objects in installs.items():
        for name, pod in workload_pods(objects, "multinode-webhook").items():
            contexts = [
                pod["spec"].get("securityContext", {}),
                *(c.get("securityContext", {}) for c in pod["spec"]["containers"]),
            ]
            fixed = [k for c in contexts for k in ("runAsUser", "runAsGroup") if k in c]
            assert fixed == [], f"{overlay} {name}"
            assert pod["spec"]["securityContext"]["runAsNonRoot"] is True


def test_the_namespace_enforces_the_restricted_pod_security_standard(
    installs: dict[str, list[dict[str, Any]]],
) -> None:
    for objects in installs.values():
        [namespace] = [o for o in objects if o["kind"] == "Namespace"]
        labels = namespace["metadata"]["labels"]
        for mode in ("enforce", "warn", "audit"):
            assert labels[f"pod-security.kubernetes.io/{mode}"] == "restricted"
