"""The head and worker pods KServe builds from an InferenceService and its runtime.

The rules are those of KServe's raw-deployment multi-node predictor, release by release:

- containers merge by name, the InferenceService's fields winning, except `args`, which are the
  runtime's followed by the InferenceService's, and `env`, merged by name;
- the head is the runtime's `kserve-container` merged with `spec.predictor.model`; the worker
  is its `workerSpec` `worker-container` merged with `spec.predictor.workerSpec.containers[0]`;
- `{{.Name}}`, `{{.Namespace}}`, `{{.Labels.KEY}}` and `{{.Annotations.KEY}}` (also written
  `{{index .Labels "KEY"}}`) are filled from the InferenceService's metadata on the head only;
- the controller adds the env of its release (`RELEASES`), and the pods get KServe's labels;
- for a `pvc://` model, KServe's pod webhook mounts the claim at `/mnt/models`.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

from webhook.core import names
from webhook.core.raw import items, mapping, string
from webhook.offline.documents import give

MODEL_MOUNT: Final = "/mnt/models"
PVC_VOLUME: Final = "kserve-pvc-source"
SOURCE_URI_ANNOTATION: Final = "internal.serving.kserve.io/storage-initializer-sourceuri"
# Keys of the InferenceService's model spec that describe the model, not a container field.
_MODEL_KEYS: Final = frozenset({"modelFormat", "runtime", "storageUri", "protocolVersion"})
# Lists Kubernetes merges by a key rather than replaces, and that key.
_MERGE_KEYS: Final = {"env": "name", "volumeMounts": "mountPath", "ports": "containerPort"}
_PLACEHOLDER: Final = re.compile(
    r"\{\{\s*(?:\.(Name|Namespace)|\.(Labels|Annotations)\.([A-Za-z0-9_]+)"
    r'|index\s+\.(Labels|Annotations)\s+"([^"]+)")\s*\}\}'
)


class RenderError(ValueError):
    """An InferenceService that cannot be rendered, and why."""


@dataclass(frozen=True, slots=True)
class Release:
    """The env one KServe release line adds to multi-node predictor pods."""

    line: str
    first: tuple[int, int, int]
    default_pipeline: int
    head_gpu_env: bool  # RAY_NODE_COUNT and REQUEST_GPU_COUNT
    oci_model_dir: bool
    isvc_name_everywhere: bool  # INFERENCE_SERVICE_NAME on every head container
    worker_parallel_env: bool  # PIPELINE/TENSOR_PARALLEL_SIZE and WORKER_SVC on the worker


RELEASES: Final = (
    Release("v0.15.0", (0, 15, 0), 2, False, False, False, False),
    Release("v0.15.1", (0, 15, 1), 1, True, False, False, False),
    Release("v0.16", (0, 16, 0), 1, True, True, False, False),
    Release("v0.17", (0, 17, 0), 1, True, True, True, False),
    Release("v0.18", (0, 18, 0), 1, True, True, True, True),
)
NEWEST: Final = "0.20.0"
_LAST: Final = (0, 20)
_VERSION: Final = re.compile(r"v?(\d+)\.(\d+)(?:\.(\d+))?(?:-rc\d+)?")


def release(version: str) -> Release:
    """The release line a KServe version belongs to (`0.19.1`, `v0.15.0-rc1`, `0.17`)."""
    match = _VERSION.fullmatch(version.strip())
    if match is None:
        raise RenderError(f"KServe version {version!r} is not MAJOR.MINOR[.PATCH]")
    number = (int(match[1]), int(match[2]), int(match[3] or 0))
    if number < RELEASES[0].first or number[:2] > _LAST:
        raise RenderError(
            f"KServe {version} has no multi-node predictor rules here: "
            f"known are v0.15.0 to v{_LAST[0]}.{_LAST[1]}.x"
        )
    return [r for r in RELEASES if r.first <= number][-1]


@dataclass(frozen=True, slots=True)
class Rendered:
    """One pod KServe would create, with the args the user wrote on its container."""

    role: str  # "head" or "worker"
    pod: dict[str, Any]
    user_args: tuple[str, ...]


def _merged_list(base: list[Any], patch: list[Any], key: str) -> list[Any]:
    merged = [copy.deepcopy(item) for item in base]
    for item in patch:
        index = next(
            (i for i, old in enumerate(merged) if mapping(old).get(key) == mapping(item).get(key)),
            None,
        )
        if index is None:
            merged.append(copy.deepcopy(item))
        else:
            merged[index] = copy.deepcopy(item)
    return merged


def merge_container(runtime: Mapping[str, Any], isvc: Mapping[str, Any]) -> dict[str, Any]:
    """KServe's container merge: the InferenceService's fields over the runtime's."""
    merged = copy.deepcopy(dict(runtime))
    for key, value in isvc.items():
        if key in _MODEL_KEYS or (key == "name" and not value):
            continue
        if key == "args":
            merged["args"] = [*items(merged.get("args")), *(value or [])]
        elif key == "command":
            if value:
                merged["command"] = copy.deepcopy(value)
        elif key in _MERGE_KEYS and isinstance(value, list):
            merged[key] = _merged_list(merged.get(key) or [], value, _MERGE_KEYS[key])
        elif isinstance(value, Mapping) and isinstance(merged.get(key), Mapping):
            merged[key] = {**merged[key], **copy.deepcopy(dict(value))}
        else:
            merged[key] = copy.deepcopy(value)
    if not merged.get("args"):
        merged.pop("args", None)
    return merged


def fill_placeholders(value: Any, metadata: Mapping[str, Any]) -> Any:
    """`value` with every ObjectMeta placeholder filled, in every string it holds."""

    def fill(match: re.Match[str]) -> str:
        if match[1]:
            return string(metadata.get(match[1].lower()))
        field, key = (match[2], match[3]) if match[2] else (match[4], match[5])
        return string(mapping(metadata.get(field.lower())).get(key))

    if isinstance(value, str):
        return _PLACEHOLDER.sub(fill, value)
    if isinstance(value, list):
        return [fill_placeholders(item, metadata) for item in value]
    if isinstance(value, Mapping):
        return {key: fill_placeholders(item, metadata) for key, item in value.items()}
    return value


def _set_env(container: dict[str, Any], env: Sequence[tuple[str, str]]) -> None:
    """AddEnvVarToPodSpec: overwrite a variable of the same name, or append it."""
    added = [{"name": name, "value": value} for name, value in env]
    container["env"] = _merged_list(items(container.get("env")), added, "name")


@dataclass(frozen=True, slots=True)
class _Predictor:
    name: str
    namespace: str
    generation: str
    pipeline: int
    tensor: int
    storage: str

    def model_dir(self, line: Release) -> bool:
        return self.storage.startswith("pvc://") or (
            line.oci_model_dir and self.storage.startswith("oci://")
        )


def controller_env(role: str, predictor: _Predictor, line: Release) -> list[tuple[str, str]]:
    """The env KServe's controller adds to the head's `kserve-container` or the worker."""
    parallel = [
        ("PIPELINE_PARALLEL_SIZE", str(predictor.pipeline)),
        ("TENSOR_PARALLEL_SIZE", str(predictor.tensor)),
    ]
    counts = [
        ("RAY_NODE_COUNT", str(predictor.pipeline)),
        ("REQUEST_GPU_COUNT", str(predictor.tensor)),
    ]
    head_svc = ("HEAD_SVC", f"{predictor.name}-head-{predictor.generation}")
    if role == "head":
        env = [*parallel, ("MODEL_NAME", predictor.name)]
        if predictor.model_dir(line):
            env.append(("MODEL_DIR", MODEL_MOUNT))
        return env + (counts if line.head_gpu_env else [])
    if not line.head_gpu_env:
        return [parallel[0], ("ISVC_NAME", predictor.name), head_svc]
    env = [*counts, ("ISVC_NAME", predictor.name), head_svc]
    if line.worker_parallel_env:
        workers = ("WORKER_SVC", f"{predictor.name}-workers-{predictor.generation}")
        env += [*parallel, workers]
    return env


def _labels(
    runtime: Mapping[str, Any], isvc: Mapping[str, Any], predictor: _Predictor, *, role: str
) -> dict[str, str]:
    app = f"isvc.{predictor.name}-predictor" + ("-worker" if role == "worker" else "")
    return {
        **mapping(mapping(runtime.get("metadata")).get("labels")),
        **mapping(mapping(isvc.get("metadata")).get("labels")),
        **mapping(mapping(mapping(isvc.get("spec")).get("predictor")).get("labels")),
        names.ISVC_LABEL: predictor.name,
        "component": "predictor",
        "isvc.generation": predictor.generation,
        "app": app,
    }


def _mount_pvc(pod: dict[str, Any], target: str, storage: str) -> None:
    """What KServe's pod webhook does for a `pvc://CLAIM/PATH` model."""
    claim, _, sub_path = storage.removeprefix("pvc://").partition("/")
    spec = pod["spec"]
    spec["volumes"] = [
        *spec.get("volumes", []),
        {"name": PVC_VOLUME, "persistentVolumeClaim": {"claimName": claim, "readOnly": True}},
    ]
    mount = {"name": PVC_VOLUME, "mountPath": MODEL_MOUNT, "readOnly": True}
    if sub_path:
        mount["subPath"] = sub_path
    for container in spec["containers"]:
        if container.get("name") == target:
            container["volumeMounts"] = [*(container.get("volumeMounts") or []), mount]


def choose_runtime(
    isvc: Mapping[str, Any], runtimes: Sequence[Mapping[str, Any]], *, apart: str = ""
) -> Mapping[str, Any]:
    """The runtime `spec.predictor.model.runtime` names, or the only multi-node one given;
    `apart`: how the front end takes a runtime besides the input, for its errors."""
    wanted = string(
        mapping(mapping(mapping(isvc.get("spec")).get("predictor")).get("model")).get("runtime")
    )
    multinode = [r for r in runtimes if mapping(r.get("spec")).get("workerSpec")]
    if wanted:
        named = [r for r in runtimes if mapping(r.get("metadata")).get("name") == wanted]
        if not named:
            given = ", ".join(string(mapping(r.get("metadata")).get("name")) for r in runtimes)
            raise RenderError(
                f"the InferenceService names runtime {wanted!r}, not among those given "
                f"({given or 'none'}): {give(apart)}"
            )
        return named[0]
    if len(multinode) == 1:
        return multinode[0]
    if not multinode:
        raise RenderError(f"no multi-node runtime (one with spec.workerSpec) given: {give(apart)}")
    raise RenderError(
        "several multi-node runtimes given and the InferenceService names none "
        "(spec.predictor.model.runtime)"
    )


def render(
    isvc: Mapping[str, Any], runtime: Mapping[str, Any], *, version: str = NEWEST
) -> list[Rendered]:
    """The head pod and the worker pod KServe `version` creates for `isvc` on `runtime`."""
    line = release(version)
    metadata = mapping(isvc.get("metadata"))
    name = string(metadata.get("name"))
    if not name:
        raise RenderError("the InferenceService has no metadata.name")
    predictor_spec = mapping(mapping(isvc.get("spec")).get("predictor"))
    worker_spec = mapping(predictor_spec.get("workerSpec"))
    runtime_spec = mapping(runtime.get("spec"))
    if not predictor_spec.get("workerSpec") or not runtime_spec.get("workerSpec"):
        raise RenderError(
            "not a multi-node predictor: both spec.predictor.workerSpec of the "
            "InferenceService and spec.workerSpec of the runtime must be set"
        )
    model = mapping(predictor_spec.get("model"))
    predictor = _Predictor(
        name=name,
        namespace=string(metadata.get("namespace")) or "default",
        generation=str(metadata.get("generation") or 1),
        pipeline=int(worker_spec.get("pipelineParallelSize") or line.default_pipeline),
        tensor=int(worker_spec.get("tensorParallelSize") or 1),
        storage=string(model.get("storageUri")),
    )
    filled_metadata = {**metadata, "namespace": predictor.namespace}
    pods = []
    for role, source, patch, target in (
        ("head", runtime_spec, model, names.HEAD_CONTAINER),
        (
            "worker",
            mapping(runtime_spec.get("workerSpec")),
            mapping(next(iter(items(worker_spec.get("containers"))), {})),
            names.WORKER_CONTAINER,
        ),
    ):
        containers = [copy.deepcopy(c) for c in items(source.get("containers"))]
        if role == "worker":
            containers = [c for c in containers if mapping(c).get("name") == target][:1]
        for index, container in enumerate(containers):
            if mapping(container).get("name") != target:
                continue
            merged = merge_container(container, patch)
            if role == "head":
                merged = fill_placeholders(merged, filled_metadata)
            _set_env(merged, controller_env(role, predictor, line))
            containers[index] = merged
        if role == "head":
            containers += [copy.deepcopy(c) for c in items(predictor_spec.get("containers"))]
            if line.isvc_name_everywhere:
                for container in containers:
                    _set_env(container, [("INFERENCE_SERVICE_NAME", name)])
        suffix = "-worker" if role == "worker" else ""
        pod: dict[str, Any] = {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {
                "generateName": f"{name}-predictor{suffix}-",
                "namespace": predictor.namespace,
                "labels": _labels(runtime, isvc, predictor, role=role),
            },
            "spec": {
                **{k: copy.deepcopy(v) for k, v in source.items() if k not in _NOT_POD_SPEC},
                "containers": containers,
            },
        }
        if role == "head" and predictor.storage:
            pod["metadata"]["annotations"] = {SOURCE_URI_ANNOTATION: predictor.storage}
        if predictor.storage.startswith("pvc://"):
            _mount_pvc(pod, target, predictor.storage)
        user_args = tuple(str(a) for a in items(patch.get("args")))
        pods.append(Rendered(role, pod, user_args))
    return pods


# Runtime spec fields that are not pod spec fields.
_NOT_POD_SPEC: Final = frozenset(
    {
        "containers",
        "workerSpec",
        "supportedModelFormats",
        "multiModel",
        "disabled",
        "protocolVersions",
        "grpcEndpoint",
        "grpcDataEndpoint",
        "httpDataEndpoint",
        "replicas",
        "storageHelper",
        "builtInAdapter",
        "annotations",
        "labels",
        "pipelineParallelSize",
        "tensorParallelSize",
        "size",
    }
)
