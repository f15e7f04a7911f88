"""Runtime manifests (the shared corpus or the examples), and the pods KServe builds from them.

The pods come from the product's own renderer (`webhook.offline.render`), given an
InferenceService that carries the user's args: one implementation of KServe's rules.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.support.builders import REPO, SAFE_LOADER
from webhook.core import names
from webhook.offline.render import render

CORPUS = REPO.parent / "shared" / "fixtures" / "kserve-runtimes"

ISVC = "llama"
NAMESPACE = "models"

# Runtimes in the legacy shape (script in args), by file-name prefix.
LEGACY_PREFIXES = (
    "v0.15.0-rc0-kserve-",
    "unreleased-6a651d1-pr3972-",
    "odh-model-controller-odh-v2.21-",
    "odh-model-controller-odh-v2.22-to-v2.24-",
    "odh-model-controller-odh-v2.25-",
    "odh-model-controller-incubating-testdata-",
)
# Runtimes whose args already arrive exactly (`"$@"` and a fixed `$0`, or no shell at all).
EXACT_PREFIXES = ("odh-model-controller-odh-v3.5-",)

_HELM_LINE = re.compile(r"^\s*\{\{-.*\}\}\s*$")
_HELM_PLACEHOLDER = re.compile(r"\{\{.*?\}\}")


def corpus_files() -> list[Path]:
    """Every runtime manifest of the shared corpus, or a skip naming what is missing."""
    if not CORPUS.is_dir():
        pytest.skip(f"shared runtime corpus not found at {CORPUS} (only CI and developers have it)")
    return sorted(p for p in CORPUS.iterdir() if p.name.endswith((".yaml", ".yaml.tmpl")))


def family(path: Path) -> str:
    """The file family for the tally: release manifest, Helm template, kustomize source, ODH."""
    name = path.name
    if name.startswith("odh-"):
        return "odh-template" if "template" in name else "odh-servingruntime"
    if name.endswith(".tmpl"):
        return "helm-template"
    if "release-manifest" in name:
        return "release-manifest"
    return "kustomize-source"


def render_helm(text: str) -> str:
    """A Helm template made plain YAML: directive lines dropped, values replaced.

    The chart's model name placeholder renders to KServe's own `{{.Name}}`.
    """
    lines = [line for line in text.splitlines(keepends=True) if not _HELM_LINE.match(line)]
    rendered = "".join(lines).replace(
        "{{ .Values.kserve.servingruntime.modelNamePlaceholder }}", "__NAME__"
    )
    return _HELM_PLACEHOLDER.sub("placeholder", rendered).replace("__NAME__", "{{.Name}}")


def load_runtimes(path: Path) -> list[Mapping[str, Any]]:
    """The ServingRuntime-like objects in a manifest (inside Templates too)."""
    text = path.read_text()
    if path.name.endswith(".tmpl"):
        text = render_helm(text)
    found: list[Mapping[str, Any]] = []
    for document in yaml.load_all(text, Loader=SAFE_LOADER):
        if not isinstance(document, dict):
            continue
        objects = document.get("objects", []) if document.get("kind") == "Template" else [document]
        found.extend(o for o in objects if o.get("kind", "").endswith("ServingRuntime"))
    return found


def inference_service(
    runtime: Mapping[str, Any],
    *,
    user_args: Sequence[str] = (),
    worker_args: Sequence[str] | None = None,
) -> dict[str, Any]:
    """An InferenceService on `runtime` with `user_args` on its model (and, unless given
    apart, on its worker container), its model on a PVC."""
    return {
        "apiVersion": "serving.kserve.io/v1beta1",
        "kind": "InferenceService",
        "metadata": {
            "name": ISVC,
            "namespace": NAMESPACE,
            "annotations": {"serving.kserve.io/deploymentMode": "RawDeployment"},
        },
        "spec": {
            "predictor": {
                "model": {
                    "modelFormat": {"name": "huggingface"},
                    "runtime": runtime["metadata"]["name"],
                    "storageUri": "pvc://models/llama",
                    "args": list(user_args),
                },
                "workerSpec": {
                    "pipelineParallelSize": 2,
                    "containers": [
                        {
                            "name": names.WORKER_CONTAINER,
                            "args": list(user_args if worker_args is None else worker_args),
                        }
                    ],
                },
            }
        },
    }


def build_pod(
    runtime: Mapping[str, Any], *, role: str, user_args: Sequence[str] = ()
) -> dict[str, Any]:
    """The pod KServe creates for `role` ("head" or "worker") with the user's args appended,
    rendered as `multinode-webhook preview` renders an InferenceService."""
    if not runtime["spec"].get("workerSpec"):  # a single-node runtime: its head alone
        runtime = {**runtime, "spec": {**runtime["spec"], "workerSpec": {"containers": []}}}
    isvc = inference_service(runtime, user_args=user_args)
    [pod] = [rendered.pod for rendered in render(isvc, runtime) if rendered.role == role]
    return pod


def corpus_pods() -> Iterator[tuple[Path, str, dict[str, Any]]]:
    """(file, role, pod) for every runtime of the corpus, head and worker."""
    for path in corpus_files():
        for runtime in load_runtimes(path):
            for role in ("head", "worker"):
                if role == "worker" and not runtime["spec"].get("workerSpec"):
                    continue
                yield path, role, build_pod(runtime, role=role, user_args=["--max-model-len=4096"])
