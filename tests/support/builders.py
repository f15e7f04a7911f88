"""Builders for what the tests feed the webhook: the example and test-data pods, a generic
KServe-labelled pod, AdmissionReview bodies around any object, and the goldens, the
independent record of what admission makes of each test-data pod (and `migrate` of each
service), with how a stale one is written anew (`UPDATE_GOLDEN=1`)."""

from __future__ import annotations

import copy
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Final

import pytest
import yaml

from webhook import __version__
from webhook.core import names
from webhook.core.model import Decision
from webhook.core.mutate import mutate
from webhook.core.script import rewrite_script
from webhook.core.view import pod_view

REPO: Final = Path(__file__).resolve().parents[2]
# libyaml's safe loader where PyYAML has it: the corpus is read many times over a run.
SAFE_LOADER: Final = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
EXAMPLES: Final = REPO / "examples"
TESTDATA: Final = REPO / "tests" / "testdata"

LEGACY_HEAD: Final[dict[str, Any]] = {
    "name": names.HEAD_CONTAINER,
    "command": ["bash", "-c"],
    "args": ["python -m huggingfaceserver --x\n", "--user"],
}


def admit(pod: Mapping[str, Any], **request: Any) -> Decision:
    """What admission decides for a pod held as a plain dict (`mutate` on its typed view, its
    scripts parsed here); `request` is `mutate`'s context and options."""
    return mutate(pod_view(pod), **{"rewrites": rewrite_script, **request})


def _load(path: Path) -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load(path.read_text())
    return loaded


# Goldens hold this in place of the webhook's version, so that a release touches none.
VERSION_MASK: Final = "<version>"


def golden(name: str) -> dict[str, Any]:
    """The golden of test-data pod `name`: decision, reason, warnings and the admitted
    `object`, whose status annotation names this version as the webhook writes it."""
    found = _load(TESTDATA / "pods" / f"{name}.golden.yaml")
    annotations = found["object"].get("metadata", {}).get("annotations", {})
    if names.STATUS_ANNOTATION in annotations:
        status = annotations[names.STATUS_ANNOTATION]
        annotations[names.STATUS_ANNOTATION] = status.replace(VERSION_MASK, __version__)
    return found


# Set to 1, a stale golden is written anew (refused under CI).
UPDATE_GOLDEN: Final = os.environ.get("UPDATE_GOLDEN") == "1"


def refresh_golden(path: Path, text: str, *, stale: bool) -> None:
    """Under UPDATE_GOLDEN=1, write a stale golden as `text` and fail naming it, so that its
    diff is reviewed and it never passes by comparing a golden with itself; fail when there is
    none."""
    if UPDATE_GOLDEN and stale:
        assert not os.environ.get("CI"), "UPDATE_GOLDEN is refused under CI"
        path.write_text(text)
        pytest.fail(f"updated {path.name}: review its diff, then run again without UPDATE_GOLDEN")
    assert path.exists(), f"no golden {path.name}: run with UPDATE_GOLDEN=1"


def example(name: str) -> dict[str, Any]:
    """A manifest of `examples/`, freshly loaded."""
    return _load(EXAMPLES / name)


# Every workload kind preview walks into, with its API version and where its pod template is.
WORKLOADS: Final = [
    ("Deployment", "apps/v1", ("spec", "template")),
    ("ReplicaSet", "apps/v1", ("spec", "template")),
    ("StatefulSet", "apps/v1", ("spec", "template")),
    ("DaemonSet", "apps/v1", ("spec", "template")),
    ("Job", "batch/v1", ("spec", "template")),
    ("CronJob", "batch/v1", ("spec", "jobTemplate", "spec", "template")),
]


def workload(kind: str, api_version: str, template_path: tuple[str, ...]) -> dict[str, Any]:
    """A workload of `kind` whose pod template, at `template_path`, is the legacy head pod's."""
    pod = example("legacy-head-pod.yaml")
    template: dict[str, Any] = {"metadata": pod["metadata"], "spec": pod["spec"]}
    for token in reversed(template_path[1:]):
        template = {token: template}
    return {
        "apiVersion": api_version,
        "kind": kind,
        "metadata": {"name": "w", "namespace": "models"},
        template_path[0]: template,
    }


def data_pod(name: str) -> dict[str, Any]:
    """An input pod of `tests/testdata/pods/`, freshly loaded."""
    return _load(TESTDATA / "pods" / f"{name}.yaml")


def pod(
    *,
    labels: dict[str, str] | None = None,
    annotations: dict[str, str] | None = None,
    containers: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """A small KServe pod: the InferenceService label, and a legacy head unless told otherwise."""
    metadata: dict[str, Any] = {"name": "p", "labels": {names.ISVC_LABEL: "m", **(labels or {})}}
    if annotations is not None:
        metadata["annotations"] = annotations
    return {
        "metadata": metadata,
        "spec": {"containers": containers or [copy.deepcopy(LEGACY_HEAD)]},
    }


def review(
    obj: dict[str, Any] | None = None,
    *,
    api_version: str = "admission.k8s.io/v1",
    **request: Any,
) -> dict[str, Any]:
    """An AdmissionReview of a Pod CREATE in `models` (default object: the example head pod).

    Keyword arguments replace fields of `request`, None included, so a test can send a field
    that is missing or of the wrong type.
    """
    return {
        "apiVersion": api_version,
        "kind": "AdmissionReview",
        "request": {
            "uid": "0d7c5b3e-8c1f-4a55-b0e3-6f1a2b3c4d5e",
            "kind": {"group": "", "version": "v1", "kind": "Pod"},
            "resource": {"group": "", "version": "v1", "resource": "pods"},
            "operation": "CREATE",
            "namespace": "models",
            "dryRun": False,
            "object": obj if obj is not None else example("legacy-head-pod.yaml"),
            **request,
        },
    }
