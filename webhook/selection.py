"""Whether a pod is ours to look at: DESIGN §4 steps 0 to 5, in that order, with a trace.

One pure function answers for `/mutate`, `/mutate/shadow`, `/preview` and the CLI. Step 0
(the namespace test) runs only when the caller knows the namespace's labels: in admission the
API server's namespaceSelector has done it already.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, TypedDict

from webhook import keys
from webhook.facts import PodFacts
from webhook.raw import mapping

POD_KIND: Mapping[str, str] = {"group": "", "version": "v1", "kind": "Pod"}

PASS = "pass"
SKIP = "skip"


class TraceStep(TypedDict):
    """One line of the selection trace, as preview shows it."""

    step: str
    verdict: str
    detail: str


@dataclass(slots=True)
class Selection:
    """The verdict of steps 0 to 5: `skip_reason` is None when the pod goes on to the rewrite."""

    skip_reason: str | None
    shadow: bool
    trace: list[TraceStep]


def namespace_verdict(inject: str | None, mode: str) -> tuple[bool, bool, str]:
    """(selected, shadow, detail) for a namespace with this inject label under this mode."""
    if inject == keys.NAMESPACE_DISABLED:
        return False, False, f"{keys.INJECT_LABEL}={inject}"
    if inject == keys.NAMESPACE_SHADOW:
        return True, True, f"{keys.INJECT_LABEL}={inject}"
    if inject == keys.NAMESPACE_ENABLED:
        return True, False, f"{keys.INJECT_LABEL}={inject}"
    if mode == keys.MODE_CLUSTER_WIDE:
        return True, False, f"{mode} install and no {keys.INJECT_LABEL}={keys.NAMESPACE_DISABLED}"
    return False, False, f"{mode} install and no {keys.INJECT_LABEL} label"


def select(facts: PodFacts) -> Selection:
    """Run the selection steps and say where, if anywhere, the pod leaves the path."""
    trace: list[TraceStep] = []
    shadow = False

    def step(name: str, skipped: bool, detail: str) -> bool:
        trace.append({"step": name, "verdict": SKIP if skipped else PASS, "detail": detail})
        return skipped

    def skip(reason: str) -> Selection:
        return Selection(reason, shadow, trace)

    if facts.namespace_labels_known:
        selected, shadow, detail = namespace_verdict(facts.namespace_inject, facts.mode)
        if step(keys.NAMESPACE_NOT_SELECTED, not selected, detail):
            return skip(keys.NAMESPACE_NOT_SELECTED)

    group, version, kind_name = facts.kind
    is_pod = (group or "", version, kind_name) == ("", "v1", "Pod")
    described = f"{facts.operation} {group + '/' if group else ''}{version}/{kind_name}"
    if step(keys.NOT_POD_CREATE, not (is_pod and facts.operation == "CREATE"), described):
        return skip(keys.NOT_POD_CREATE)

    namespace = facts.namespace
    system = namespace in keys.SYSTEM_NAMESPACES or namespace == facts.own_namespace
    if step(keys.SYSTEM_NAMESPACE, system, f"namespace {namespace or '(none)'}"):
        return skip(keys.SYSTEM_NAMESPACE)

    mirror = facts.mirror
    if step(keys.MIRROR_POD, mirror, f"{keys.MIRROR_ANNOTATION} {'set' if mirror else 'absent'}"):
        return skip(keys.MIRROR_POD)

    opted_out = facts.inject == keys.POD_OPT_OUT
    opt_detail = f'{keys.INJECT_LABEL}="{facts.inject or ""}"'
    if step(keys.POD_OPTED_OUT, opted_out, opt_detail):
        return skip(keys.POD_OPTED_OUT)

    isvc = facts.isvc
    isvc_detail = f"{keys.ISVC_LABEL}={isvc}" if isvc is not None else f"no {keys.ISVC_LABEL}"
    if step(keys.NOT_KSERVE, isvc is None, isvc_detail):
        return skip(keys.NOT_KSERVE)

    return Selection(None, shadow, trace)


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
