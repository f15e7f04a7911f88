"""Build the pods KServe builds, from runtime manifests (the shared corpus or the examples).

Head pod: the runtime's `spec.containers`, `args` = runtime args (with `{{.Name}}` replaced by
the InferenceService name) + the user's args, plus the env the controller adds. Worker pod:
`spec.workerSpec.containers` the same way, `{{.Name}}` left alone.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.support.builders import REPO
from webhook.core import names

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
    for document in yaml.safe_load_all(text):
        if not isinstance(document, dict):
            continue
        objects = document.get("objects", []) if document.get("kind") == "Template" else [document]
        found.extend(o for o in objects if o.get("kind", "").endswith("ServingRuntime"))
    return found


def controller_env(role: str, *, storage: str = "hf") -> list[dict[str, str]]:
    env = [
        {"name": "PIPELINE_PARALLEL_SIZE", "value": "2"},
        {"name": "TENSOR_PARALLEL_SIZE", "value": "1"},
        {"name": "MODEL_NAME", "value": ISVC},
        {"name": "ISVC_NAME", "value": ISVC},
        {"name": "HEAD_SVC", "value": f"{ISVC}-predictor-head"},
        {"name": "RAY_NODE_COUNT", "value": "2"},
    ]
    if role == "head":
        env.append(
            {"name": "MODEL_ID", "value": "org/model"}
            if storage == "hf"
            else {"name": "MODEL_DIR", "value": "/mnt/models"}
        )
    return env


def build_pod(
    runtime: Mapping[str, Any], *, role: str, user_args: Sequence[str] = ()
) -> dict[str, Any]:
    """The pod KServe creates for `role` ("head" or "worker") with the user's args appended."""
    spec = runtime["spec"]
    source = spec if role == "head" else spec["workerSpec"]
    target = names.HEAD_CONTAINER if role == "head" else names.WORKER_CONTAINER
    containers = copy.deepcopy(source["containers"])
    for container in containers:
        if container["name"] != target:
            continue
        args = list(container.get("args") or [])
        if role == "head":
            args = [arg.replace("{{.Name}}", ISVC) for arg in args]
        args.extend(user_args)
        if args:
            container["args"] = args
        container["env"] = [*(container.get("env") or []), *controller_env(role)]
    suffix = "head" if role == "head" else "worker-0"
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": f"{ISVC}-predictor-{suffix}",
            "namespace": NAMESPACE,
            "labels": {names.ISVC_LABEL: ISVC, "component": "predictor"},
        },
        "spec": {"containers": containers, "volumes": copy.deepcopy(source.get("volumes", []))},
    }


def corpus_pods() -> Iterator[tuple[Path, str, dict[str, Any]]]:
    """(file, role, pod) for every runtime of the corpus, head and worker."""
    for path in corpus_files():
        for runtime in load_runtimes(path):
            for role in ("head", "worker"):
                if role == "worker" and not runtime["spec"].get("workerSpec"):
                    continue
                yield path, role, build_pod(runtime, role=role, user_args=["--max-model-len=4096"])
