"""Which namespaces an install selects: the API server's label-selector semantics, the install
mode a namespaceSelector stands for, shadow mode, and the namespaces a policy binding covers."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

from webhook.adapters.kube.client import Cluster
from webhook.core.names import (
    INJECT_LABEL,
    SYSTEM_NAMESPACES,
    Inject,
    Mode,
)
from webhook.core.raw import mapping, string
from webhook.inspect.installed_policies import InstalledPolicy

# The label the API server gives every namespace, which selectors may name.
_NAME_LABEL: Final = "kubernetes.io/metadata.name"


def label_selector_matches(selector: Mapping[str, Any] | None, labels: Mapping[str, str]) -> bool:
    """Kubernetes label selector semantics: matchLabels and matchExpressions, all must hold.

    An empty or absent selector matches everything.
    """
    selector = mapping(selector)
    for key, value in mapping(selector.get("matchLabels")).items():
        if labels.get(key) != value:
            return False
    for expression in selector.get("matchExpressions") or []:
        key, operator = expression.get("key"), expression.get("operator")
        values = expression.get("values") or []
        present = key in labels
        if operator == "In" and not (present and labels[key] in values):
            return False
        if operator == "NotIn" and present and labels[key] in values:
            return False
        if operator == "Exists" and not present:
            return False
        if operator == "DoesNotExist" and present:
            return False
    return True


def install_mode(selector: Mapping[str, Any]) -> str:
    """How an entry's namespaceSelector selects: opt-in, cluster-wide, or custom."""
    labels = mapping(selector.get("matchLabels"))
    if labels.get(INJECT_LABEL) in (Inject.ENABLED, Inject.SHADOW):
        return Mode.OPT_IN
    for expression in selector.get("matchExpressions") or []:
        if expression.get("key") == INJECT_LABEL and expression.get("operator") == "NotIn":
            return Mode.CLUSTER_WIDE
    return "custom"


def shadows(entry: Mapping[str, Any]) -> bool:
    """Whether a webhook entry calls /mutate/shadow, which never patches."""
    path = mapping(mapping(entry.get("clientConfig")).get("service")).get("path", "")
    return str(path).endswith("/shadow")


def policy_selects(
    policy: InstalledPolicy, namespace_labels: Mapping[str, str], pod_labels: Mapping[str, str]
) -> bool:
    """Whether a binding of the policy selects a pod with these labels in such a namespace."""
    return any(
        label_selector_matches(namespaces, namespace_labels)
        and label_selector_matches(objects, pod_labels)
        for _, namespaces, objects in policy.bindings
    )


def namespace_labels(cluster: Cluster) -> dict[str, dict[str, str]]:
    """Every namespace's labels, with the name label the API server gives each, which
    namespace selectors may name."""
    found = {}
    for item in cluster.namespaces():
        metadata = mapping(item.get("metadata"))
        name = string(metadata.get("name"))
        found[name] = {**mapping(metadata.get("labels")), _NAME_LABEL: name}
    return found


def policy_namespaces(
    policy: InstalledPolicy, namespaces: Mapping[str, Mapping[str, str]]
) -> list[str]:
    """The namespaces a binding of the policy selects, but the system ones, which the policy's
    own conditions leave out."""
    return [
        name
        for name, labels in sorted(namespaces.items())
        if name not in SYSTEM_NAMESPACES
        and any(label_selector_matches(selector, labels) for _, selector, _ in policy.bindings)
    ]


def covered_namespaces(
    entries: list[Any], namespaces: Mapping[str, Mapping[str, str]]
) -> tuple[set[str], set[str]]:
    """(the namespaces some entry mutates, those some entry shadows), by namespace selector."""
    mutated: set[str] = set()
    shadowed: set[str] = set()
    for entry in entries:
        into = shadowed if shadows(entry) else mutated
        selector = mapping(entry.get("namespaceSelector"))
        into.update(
            n for n, labels in namespaces.items() if label_selector_matches(selector, labels)
        )
    return mutated, shadowed
