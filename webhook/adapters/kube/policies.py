"""The compiled policies installed in a cluster (`multinode-webhook policy`): which scripts
they repair, which namespaces their bindings select, and whether one covers a given pod.

Ours are the MutatingAdmissionPolicies that carry the shapes annotation: the digests of the
scripts compiled into them. A pod is covered when a binding of such a policy selects its
namespace and labels, and the digest of its target container's script is among them.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

from webhook.adapters.kube.client import Cluster
from webhook.core.evaluated import policy_leaves
from webhook.core.model import DEFAULT_CONTEXT, DEFAULT_OPTIONS, Options
from webhook.core.names import POLICY_SHAPES_ANNOTATION, PREFIX
from webhook.core.raw import mapping, string
from webhook.core.read import read_pod
from webhook.core.rewrite import container_shape
from webhook.core.view import pod_view

GROUP: Final = "admissionregistration.k8s.io"
VERSION: Final = "v1"


@dataclass(frozen=True, slots=True)
class InstalledPolicy:
    """A compiled policy, the digests of its scripts, and its bindings' selectors."""

    name: str
    version: str
    failure_policy: str
    digests: frozenset[str]
    # (binding name, namespaceSelector, objectSelector) of each binding naming the policy.
    bindings: tuple[tuple[str, Mapping[str, Any], Mapping[str, Any]], ...]


def installed_policies(cluster: Cluster) -> list[InstalledPolicy]:
    """Every compiled policy of ours in the cluster, with its bindings."""
    bindings = cluster.objects(GROUP, VERSION, "mutatingadmissionpolicybindings")
    found = []
    for policy in cluster.objects(GROUP, VERSION, "mutatingadmissionpolicies"):
        metadata = mapping(policy.get("metadata"))
        annotations = mapping(metadata.get("annotations"))
        if POLICY_SHAPES_ANNOTATION not in annotations:
            continue
        try:
            digests = json.loads(string(annotations[POLICY_SHAPES_ANNOTATION]))
        except ValueError:
            digests = []
        name = string(metadata.get("name"))
        found.append(
            InstalledPolicy(
                name=name,
                version=string(annotations.get(f"{PREFIX}/version")),
                failure_policy=string(mapping(policy.get("spec")).get("failurePolicy")),
                digests=frozenset(str(d) for d in digests if isinstance(d, str)),
                bindings=tuple(
                    (
                        string(mapping(b.get("metadata")).get("name")),
                        mapping(
                            mapping(mapping(b.get("spec")).get("matchResources")).get(
                                "namespaceSelector"
                            )
                        ),
                        mapping(
                            mapping(mapping(b.get("spec")).get("matchResources")).get(
                                "objectSelector"
                            )
                        ),
                    )
                    for b in bindings
                    if mapping(b.get("spec")).get("policyName") == name
                ),
            )
        )
    return found


def policy_leaves_pod(pod: Mapping[str, Any], options: Options = DEFAULT_OPTIONS) -> bool:
    """Whether a compiled policy leaves this LLMInferenceService pod to the webhook for its
    args: a quote in an arg of a target container (every LLM shape it compiles is eval's)."""
    facts = read_pod(pod_view(pod), context=DEFAULT_CONTEXT, options=options)
    return any(
        container.llm and container.args is not None and policy_leaves(container.args)
        for container in facts.containers
    )


def pod_shapes(pod: Mapping[str, Any], options: Options = DEFAULT_OPTIONS) -> list[str]:
    """The shape digests of the pod's target-named containers, as admission reads them."""
    facts = read_pod(pod_view(pod), context=DEFAULT_CONTEXT, options=options)
    found = []
    for container in facts.containers:
        if container.typed and container.command is not None:
            digest = container_shape(container.name, container.command, container.args or ())
            if digest is not None:
                found.append(digest)
    return found
