"""The pods KServe's LLMInferenceService controller builds, rendered offline.

As the controller does (`combineBaseRefsConfig`, `MergeSpecs`, `ReplaceVariables`):

- the well-known preset for the service's shape is chosen (single node, data-parallel
  LeaderWorkerSet, and the same for prefill and decode), then the service's `baseRefs`;
- the presets' specs and then the service's own are merged as a strategic merge patch does on
  them: maps key by key, containers, env, volumes and ports by their merge keys, and every other
  list (`args`, `command` among them) replaced whole;
- the merged spec's JSON text is run as a Go template over the service (its Go field names,
  `.ObjectMeta.Name`, `.Spec.Parallelism.Data` …) and the controller's global config;
- each pod template becomes the pod its Deployment or LeaderWorkerSet creates, with KServe's
  labels, and the args the service gave that role's `main` container.

Preset selection is by the well-known name's suffix (`config-llm-template` …), so presets of
any release or distribution are chosen alike. LoRA adapters (`spec.model.lora`) add args in
KServe v0.19+ that are not rendered here.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

from webhook.core import names
from webhook.core.kinds import LWS_NAME_LABEL, NAME_LABEL
from webhook.core.raw import items, mapping, string
from webhook.offline import gobuiltins, gotemplate
from webhook.offline.documents import give

GROUP: Final = "serving.kserve.io"

# The well-known presets, by the service's shape: (prefill?, workers?) -> name suffix.
_WELL_KNOWN: Final = {
    "template": "config-llm-template",
    "worker": "config-llm-worker-data-parallel",
    "decode-template": "config-llm-decode-template",
    "decode-worker": "config-llm-decode-worker-data-parallel",
    "prefill-template": "config-llm-prefill-template",
    "prefill-worker": "config-llm-prefill-worker-data-parallel",
}
# The merge keys of the lists a pod spec merges by (Kubernetes' patchMergeKey tags).
_MERGE_KEYS: Final = {
    "containers": "name",
    "initContainers": "name",
    "ephemeralContainers": "name",
    "volumes": "name",
    "env": "name",
    "volumeMounts": "mountPath",
    "ports": "containerPort",
    "imagePullSecrets": "name",
    "hostAliases": "ip",
}
# JSON field names whose Go field name is not the name capitalised.
_GO_NAMES: Final = {"uri": "URI", "kvCacheOffloading": "KVCacheOffloading", "lora": "LoRA"}
# Fields that hold a pod spec or other Kubernetes type: handed to the template as they are.
_RAW: Final = frozenset({"template", "worker", "router", "kvCacheOffloading", "baseRefs"})
GLOBAL_CONFIG: Final = {
    "SystemNamespace": "kserve",
    "IngressGatewayName": "kserve-ingress-gateway",
    "IngressGatewayNamespace": "kserve",
    "ModelBasedRoutingHeaderName": "X-Gateway-Model-Name",
}
_WORKLOAD: Final = "llminferenceservice-workload"


class LLMRenderError(ValueError):
    """The service cannot be rendered from the presets given: the message says why."""


@dataclass(frozen=True, slots=True)
class RenderedPod:
    """One pod KServe would create for the service."""

    role: str  # single, leader, worker, prefill, prefill-leader, prefill-worker
    pod: dict[str, Any]
    # The args the service itself gave this role's `main` container; None: it gave none.
    user_args: tuple[str, ...] | None
    presets: tuple[str, ...]


def _merge_lists(base: list[Any], override: list[Any], key: str) -> list[Any]:
    merged = list(base)
    for item in override:
        at = next(
            (
                index
                for index, old in enumerate(merged)
                if isinstance(old, Mapping)
                and isinstance(item, Mapping)
                and key in item
                and old.get(key) == item.get(key)
            ),
            None,
        )
        if at is None:
            merged.append(copy.deepcopy(item))
        else:
            merged[at] = merge(merged[at], item)
    return merged


def merge(base: Any, override: Any, *, field: str = "") -> Any:
    """`override` merged onto `base` as a strategic merge patch merges the service's types."""
    if isinstance(base, Mapping) and isinstance(override, Mapping):
        out = {key: copy.deepcopy(value) for key, value in base.items()}
        for key, value in override.items():
            out[key] = merge(out[key], value, field=key) if key in out else copy.deepcopy(value)
        return out
    if isinstance(base, list) and isinstance(override, list) and field in _MERGE_KEYS:
        return _merge_lists(base, override, _MERGE_KEYS[field])
    return copy.deepcopy(override)


def _spec(obj: Mapping[str, Any]) -> dict[str, Any]:
    return dict(mapping(obj.get("spec")))


def _data_parallel(workload: Mapping[str, Any]) -> bool:
    parallelism = mapping(workload.get("parallelism"))
    return any(
        isinstance(parallelism.get(k), int) and parallelism[k] > 0 for k in ("data", "dataLocal")
    )


def _preset_named(presets: Sequence[Mapping[str, Any]], wanted: str) -> Mapping[str, Any] | None:
    """The preset called `wanted`, or whose name ends with it (a release or distribution
    prefix: `kserve-`, `v0-20-0-kserve-` …)."""
    found = [p for p in presets if string(mapping(p.get("metadata")).get("name")) == wanted]
    found = found or [
        p for p in presets if string(mapping(p.get("metadata")).get("name")).endswith("-" + wanted)
    ]
    return found[0] if found else None


def _well_known(spec: Mapping[str, Any]) -> list[str]:
    """The suffixes of the presets the controller applies to a service of this shape."""
    chosen: list[str] = []
    prefill = spec.get("prefill")
    if isinstance(prefill, Mapping):
        if prefill.get("worker") is None:
            chosen.append(_WELL_KNOWN["prefill-template"])
        elif _data_parallel(prefill):
            chosen.append(_WELL_KNOWN["prefill-worker"])
        else:
            raise LLMRenderError(
                "a prefill worker without data parallelism takes a pipeline-parallel preset, "
                "which KServe does not ship"
            )
        decode = "decode-"
    else:
        decode = ""
    if spec.get("worker") is None:  # absent or null: a nil pointer to the controller
        chosen.append(_WELL_KNOWN[f"{decode}template"])
    elif _data_parallel(spec):
        chosen.append(_WELL_KNOWN[f"{decode}worker"])
    else:
        raise LLMRenderError(
            "a worker without data parallelism (spec.parallelism.data or dataLocal) takes a "
            "pipeline-parallel preset, which KServe does not ship"
        )
    return chosen


def chosen_presets(
    service: Mapping[str, Any], presets: Sequence[Mapping[str, Any]], *, apart: str = ""
) -> list[Mapping[str, Any]]:
    """The presets the controller merges for `service`, in order: the well-known ones for its
    shape (told after its `baseRefs` are merged in), then its `baseRefs`. `apart`: how the
    front end takes a preset besides the input, for its errors."""
    spec = _spec(service)
    refs = [string(mapping(ref).get("name")) for ref in items(spec.get("baseRefs"))]
    based: list[Mapping[str, Any]] = []
    resolved: Any = spec
    for ref in refs:
        preset = _preset_named(presets, ref)
        if preset is None:
            raise LLMRenderError(f"baseRefs names {ref!r}, and no preset given is called so")
        based.append(preset)
        resolved = merge(resolved, _spec(preset))
    found: list[Mapping[str, Any]] = []
    for suffix in _well_known(mapping(resolved)):
        preset = _preset_named(presets, f"kserve-{suffix}") or _preset_named(presets, suffix)
        if preset is None:
            raise LLMRenderError(
                f"its shape takes the preset {suffix!r} (as kserve-{suffix}), which is not among "
                f"the presets given: {give(apart)}"
            )
        found.append(preset)
    return found + based


def _go(value: Any, field: str = "") -> Any:
    """A service's JSON as its Go struct reads in a template: field names capitalised, each
    object a `Struct` (true in `if` when present, as Go's non-nil pointer is); pod specs and
    other Kubernetes types as they are within (the template only hands them on)."""
    if not isinstance(value, Mapping):
        return value
    if field in _RAW:
        return gobuiltins.Struct(value)
    return gobuiltins.Struct(
        {
            _GO_NAMES.get(key, key[:1].upper() + key[1:]): _go(item, key)
            for key, item in value.items()
        }
    )


def template_data(
    service: Mapping[str, Any], *, tls: bool, global_config: Mapping[str, str] = GLOBAL_CONFIG
) -> dict[str, Any]:
    """What KServe's `ReplaceVariables` runs the merged config's template over: the service
    (its model name defaulted to its own, as KServe's defaulting does) and the controller's
    global config (`global_config`, with `EnableTLS` from `tls`)."""
    metadata = mapping(service.get("metadata"))
    spec = _spec(service)
    model = dict(mapping(spec.get("model")))
    model.setdefault("name", string(metadata.get("name")))
    spec["model"] = model
    name, namespace = string(metadata.get("name")), string(metadata.get("namespace")) or "default"
    return gobuiltins.Struct(
        ObjectMeta=gobuiltins.Struct(
            Name=name,
            Namespace=namespace,
            Labels=dict(mapping(metadata.get("labels"))),
            Annotations=dict(mapping(metadata.get("annotations"))),
        ),
        Spec=_go(spec),
        GlobalConfig=gobuiltins.Struct(
            **global_config,
            EnableTLS=tls,
            InferencePoolNamespacedName=f"{namespace}/{name}-inference-pool",
        ),
    )


def rendered_spec(
    service: Mapping[str, Any],
    presets: Sequence[Mapping[str, Any]],
    *,
    tls: bool = True,
    apart: str = "",
) -> tuple[dict[str, Any], tuple[str, ...]]:
    """The service's spec as the controller makes it: its presets merged, then its own spec,
    then the whole rendered as a template. (the spec, the presets' names in merge order)"""
    chosen = chosen_presets(service, presets, apart=apart)
    merged: Any = {}
    for preset in chosen:
        merged = merge(merged, _spec(preset))
    own = {k: v for k, v in _spec(service).items() if k != "baseRefs"}
    merged = merge(merged, own)
    text = json.dumps(merged, ensure_ascii=False)
    try:
        out = json.loads(gotemplate.render(text, template_data(service, tls=tls)))
    except ValueError as error:
        raise LLMRenderError(f"its merged presets do not render: {error}") from None
    applied = tuple(string(mapping(p.get("metadata")).get("name")) for p in chosen)
    return dict(mapping(out)), applied


def _main_args(workload: Any) -> tuple[str, ...] | None:
    for container in items(mapping(workload).get("containers")):
        if mapping(container).get("name") == names.LLM_CONTAINER:
            args = mapping(container).get("args")
            return tuple(str(a) for a in args) if isinstance(args, list) else None
    return None


def render(
    service: Mapping[str, Any],
    presets: Sequence[Mapping[str, Any]],
    *,
    tls: bool = True,
    apart: str = "",
) -> list[RenderedPod]:
    """The pods KServe creates for `service`: for each workload (decode, and prefill when it
    is given), one single-node pod, or a LeaderWorkerSet's leader and worker."""
    spec, applied = rendered_spec(service, presets, tls=tls, apart=apart)
    metadata = mapping(service.get("metadata"))
    name, namespace = string(metadata.get("name")), string(metadata.get("namespace")) or "default"
    own = _spec(service)
    workloads: list[tuple[str, Mapping[str, Any], Mapping[str, Any]]] = [("", spec, own)]
    if isinstance(spec.get("prefill"), Mapping):
        workloads.append(("prefill", mapping(spec["prefill"]), mapping(own.get("prefill"))))
    pods: list[RenderedPod] = []
    for kind, workload, given in workloads:
        suffix = f"-{kind}" if kind else ""
        multi = isinstance(workload.get("worker"), Mapping)
        roles = (
            [("leader", "template"), ("worker", "worker")] if multi else [("single", "template")]
        )
        for role, field in roles:
            template = workload.get(field)
            if not isinstance(template, Mapping):
                continue
            component = _WORKLOAD + (f"-{role}" if multi else "") + suffix
            labels = {
                names.PART_OF_LABEL: names.LLMISVC_PART_OF,
                NAME_LABEL: name,
                "app.kubernetes.io/component": component,
            }
            if role != "worker":
                labels["kserve.io/component"] = "workload"
                labels["llm-d.ai/role"] = kind or ("decode" if len(workloads) > 1 else "both")
            if multi:
                labels[LWS_NAME_LABEL] = f"{name}-kserve-mn{suffix}"
            full = f"{kind}-{role}" if kind and multi else (kind or role)
            pod = {
                "apiVersion": "v1",
                "kind": "Pod",
                "metadata": {
                    "name": f"{name}-kserve{'-mn' if multi else ''}{suffix}-{role}",
                    "namespace": namespace,
                    "labels": labels,
                },
                "spec": copy.deepcopy(dict(template)),
            }
            pods.append(RenderedPod(full, pod, _main_args(given.get(field)), applied))
    return pods
