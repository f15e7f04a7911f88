"""KServe's kinds and the Kubernetes objects around them, each defined once: which kinds hold
the scripts (runtimes, presets, services), which labels name an owner, and where each workload
keeps its pod templates and each preset its roles' containers. Walking a document's objects
(`webhook.offline.documents.objects_in`) reads these."""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Final

ISVC_KIND: Final = "InferenceService"
LLMISVC_KIND: Final = "LLMInferenceService"
# An LLMInferenceService's presets.
PRESET_KIND: Final = "LLMInferenceServiceConfig"
RUNTIME_KINDS: Final = frozenset({"ServingRuntime", "ClusterServingRuntime"})
# The kinds whose scripts `migrate` rewrites at their source.
SOURCE_KINDS: Final = RUNTIME_KINDS | {PRESET_KIND, LLMISVC_KIND}

# KServe's name for an LLMInferenceService's pods, beside `app.kubernetes.io/part-of`.
NAME_LABEL: Final = "app.kubernetes.io/name"

# A LeaderWorkerSet (KServe's multi-node LLMInferenceService): its name label on its pods, and
# its two pod templates, the leader's (the workers' when it has none of its own) and the
# workers'.
LWS_KIND: Final = ("leaderworkerset.x-k8s.io", "LeaderWorkerSet")
LWS_NAME_LABEL: Final = "leaderworkerset.sigs.k8s.io/name"
LWS_TEMPLATES: Final = (
    ("leader", ("spec", "leaderWorkerTemplate", "leaderTemplate")),
    ("worker", ("spec", "leaderWorkerTemplate", "workerTemplate")),
)

# Where each workload keeps its pod template, by (API group, kind).
TEMPLATE_PATHS: Final[Mapping[tuple[str, str], tuple[str, ...]]] = MappingProxyType(
    {
        ("", "ReplicationController"): ("spec", "template"),
        ("", "PodTemplate"): ("template",),
        ("apps", "Deployment"): ("spec", "template"),
        ("apps", "ReplicaSet"): ("spec", "template"),
        ("apps", "StatefulSet"): ("spec", "template"),
        ("apps", "DaemonSet"): ("spec", "template"),
        ("batch", "Job"): ("spec", "template"),
        ("batch", "CronJob"): ("spec", "jobTemplate", "spec", "template"),
    }
)

# Where a preset (and an LLMInferenceService's spec) holds the pod templates of its roles, under
# `spec`, each with the role's name.
PRESET_ROLES: Final = (
    (("template",), "template"),
    (("worker",), "worker"),
    (("prefill", "template"), "prefill template"),
    (("prefill", "worker"), "prefill worker"),
)
PRESET_TEMPLATES: Final = tuple(path for path, _ in PRESET_ROLES)
