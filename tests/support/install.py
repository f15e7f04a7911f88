"""The overlay docs/install.md writes for an install, written for the tests that render or apply it."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path
from typing import Any, Final

import yaml

from tests.support.builders import REPO

DEPLOY: Final = REPO / "deploy"
OVERLAYS: Final = ("opt-in", "cluster-wide", "cert-manager", "openshift")
OPTIONAL: Final = ("servicemonitor", "networkpolicy", "audit", "monitoring")


def user_overlay(folder: Path, overlay: str, *, namespace: str | None) -> Path:
    """A kustomization in `folder`, as docs/install.md writes one: one of our overlays, every
    optional component, and to install elsewhere the namespace line (with cert-manager, also
    its namespace-refs transformer)."""
    folder.mkdir(parents=True)
    kustomization: dict[str, Any] = {
        "apiVersion": "kustomize.config.k8s.io/v1beta1",
        "kind": "Kustomization",
        "resources": [os.path.relpath(DEPLOY / "overlays" / overlay, folder)],
        "components": [os.path.relpath(DEPLOY / "components" / c, folder) for c in OPTIONAL],
    }
    if namespace is not None:
        kustomization["namespace"] = namespace
        if overlay == "cert-manager":
            refs = DEPLOY / "components" / "cert-manager" / "namespace-refs"
            kustomization["transformers"] = [os.path.relpath(refs, folder)]
    (folder / "kustomization.yaml").write_text(yaml.safe_dump(kustomization))
    return folder


def render(path: Path) -> list[dict[str, Any]]:
    """The objects kustomize renders from the kustomization in `path`."""
    done = subprocess.run(
        ["kubectl", "kustomize", "--load-restrictor", "LoadRestrictionsNone", str(path)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return [doc for doc in yaml.safe_load_all(done.stdout) if doc]


def workload_pods(objects: list[dict[str, Any]], namespace: str) -> dict[str, dict[str, Any]]:
    """The pod each workload of `objects` would make, by `kind/name`: its template as a Pod in
    `namespace`, under the name a controller gives it."""
    pods: dict[str, dict[str, Any]] = {}
    for obj in objects:
        spec = obj.get("spec", {})
        template = spec.get("jobTemplate", {}).get("spec", {}).get("template") or spec.get(
            "template"
        )
        if not template:
            continue
        name = obj["metadata"]["name"]
        pods[f"{obj['kind']}/{name}"] = {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {
                **template.get("metadata", {}),
                "name": f"{name}-0",
                "namespace": namespace,
            },
            "spec": template["spec"],
        }
    return pods


def every_install(work: Path) -> dict[str, list[dict[str, Any]]]:
    """Each overlay with every optional component, as that overlay renders it."""
    return {
        overlay: render(user_overlay(work / overlay, overlay, namespace=None))
        for overlay in OVERLAYS
    }


def rendered_alert_rules(work: Path) -> dict[str, Any]:
    """The PrometheusRule of the opt-in overlay with the monitoring component, as kustomize
    renders it in `work`."""
    (work / "kustomization.yaml").write_text(
        yaml.safe_dump(
            {
                "apiVersion": "kustomize.config.k8s.io/v1beta1",
                "kind": "Kustomization",
                "resources": [os.path.relpath(DEPLOY / "overlays" / "opt-in", work)],
                "components": [os.path.relpath(DEPLOY / "components" / "monitoring", work)],
            }
        )
    )
    done = subprocess.run(
        ["kubectl", "kustomize", "--load-restrictor", "LoadRestrictionsNone", str(work)],
        capture_output=True,
        text=True,
        check=True,
    )
    [rule] = [d for d in yaml.safe_load_all(done.stdout) if d and d["kind"] == "PrometheusRule"]
    found: dict[str, Any] = rule
    return found
