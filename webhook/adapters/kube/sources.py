"""The cluster's scripts, as `policy --from-cluster` compiles them: its ServingRuntimes and
ClusterServingRuntimes, its LLMInferenceServiceConfig presets (in each version the API server
serves, each object once), and the LeaderWorkerSets and Deployments KServe made for its
LLMInferenceServices (their scripts rendered)."""

from __future__ import annotations

from typing import Any, Final

from webhook.adapters.kube.client import Cluster
from webhook.core.names import LLMISVC_PART_OF, PART_OF_LABEL
from webhook.core.raw import display_name, mapping, string

_KINDS: Final = (
    ("serving.kserve.io", "v1alpha1", "servingruntimes"),
    ("serving.kserve.io", "v1alpha1", "clusterservingruntimes"),
    ("leaderworkerset.x-k8s.io", "v1", "leaderworkersets"),
)


# The presets' kind, newest version first: a cluster may serve either, or both.
_PRESETS: Final = (
    ("serving.kserve.io", "v1alpha2", "llminferenceserviceconfigs"),
    ("serving.kserve.io", "v1alpha1", "llminferenceserviceconfigs"),
)


# (group, version, plural, label selector): what a serving replica follows to parse the scripts
# its pods will bring before they come (`webhook.runtime.scripts`).
FOLLOWED: Final = (
    *((group, version, plural, "") for group, version, plural in _KINDS),
    ("apps", "v1", "deployments", f"{PART_OF_LABEL}={LLMISVC_PART_OF}"),
)


def cluster_sources(cluster: Cluster) -> list[tuple[str, dict[str, Any]]]:
    """(where, object) for every runtime, preset and LLMInferenceService workload of the
    cluster."""
    found: list[tuple[str, dict[str, Any]]] = []
    for group, version, plural in _KINDS:
        for item in cluster.objects(group, version, plural):
            found.append((_where(item), item))
    seen: set[str] = set()
    for group, version, plural in _PRESETS:
        for item in cluster.objects(group, version, plural):
            uid = string(mapping(item.get("metadata")).get("uid"))
            if not uid or uid not in seen:
                seen.add(uid)
                found.append((_where(item), item))
    for listed in cluster.deployments(label_selector=f"{PART_OF_LABEL}={LLMISVC_PART_OF}"):
        deployment = {"apiVersion": "apps/v1", "kind": "Deployment", **listed}
        found.append((_where(deployment), deployment))
    return found


def _where(item: dict[str, Any]) -> str:
    namespace = string(mapping(item.get("metadata")).get("namespace"))
    return f"cluster {namespace + '/' if namespace else ''}{display_name(item)}"
