"""Dry-run preview (DESIGN §6): walk any input down to its pods and say what admission would do.

A Pod, a workload's pod template, each item of a List or of a YAML stream, or the object of an
AdmissionReview goes through the very `mutate` that `/mutate` calls. Each gets a result with the
patch (its pointers relative to the object given), the resulting object and a unified diff.
"""

from __future__ import annotations

import copy
import difflib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final, TypedDict

import jsonpatch

from webhook import documents, keys
from webhook.admission import ReviewError, parse_review
from webhook.mutate import DEFAULT_OPTIONS, Context, Decision, Options, mutate
from webhook.patch import PatchOp
from webhook.raw import mapping, string
from webhook.selection import TraceStep

FORMATS: Final = ("json", "yaml", "patch", "diff")

# Where each workload keeps its pod template, by (API group, kind).
TEMPLATE_PATHS: Final[Mapping[tuple[str, str], tuple[str, ...]]] = {
    ("", "ReplicationController"): ("spec", "template"),
    ("", "PodTemplate"): ("template",),
    ("apps", "Deployment"): ("spec", "template"),
    ("apps", "ReplicaSet"): ("spec", "template"),
    ("apps", "StatefulSet"): ("spec", "template"),
    ("apps", "DaemonSet"): ("spec", "template"),
    ("batch", "Job"): ("spec", "template"),
    ("batch", "CronJob"): ("spec", "jobTemplate", "spec", "template"),
}


class Result(TypedDict):
    """What preview reports for one object."""

    kind: str
    name: str
    decision: str
    reason: str
    trace: list[TraceStep]
    patch: list[PatchOp]
    warnings: list[str]
    object: Any
    diff: str


@dataclass(frozen=True, slots=True)
class Simulation:
    """How to simulate the request: namespace, its labels and the install mode, all optional."""

    namespace: str | None = None
    namespace_labels: Mapping[str, str] | None = None
    mode: str = keys.MODE_OPT_IN
    options: Options = field(default=DEFAULT_OPTIONS)


def _group_version(api_version: object) -> tuple[str, str]:
    group, _, version = string(api_version).rpartition("/")
    return group, version


def _name(obj: Mapping[str, Any]) -> str:
    metadata = mapping(obj.get("metadata"))
    return string(metadata.get("name")) or string(metadata.get("generateName"))


def _diff(before: Any, after: Any, *, label: str) -> str:
    lines = difflib.unified_diff(
        documents.dump(before).splitlines(keepends=True),
        documents.dump(after).splitlines(keepends=True),
        fromfile=f"a/{label}",
        tofile=f"b/{label}",
    )
    return "".join(lines)


def _result(obj: Any, kind: str, decision: Decision) -> Result:
    name = _name(mapping(obj))
    # A copy: the decision is shared, and the patched object goes back to the caller.
    ops = copy.deepcopy(list(decision.patch))
    after = jsonpatch.apply_patch(obj, ops) if ops else obj
    return {
        "kind": kind,
        "name": name,
        "decision": decision.decision,
        "reason": decision.reason,
        "trace": list(decision.trace),
        "patch": ops,
        "warnings": list(decision.warnings),
        "object": after,
        "diff": _diff(obj, after, label=f"{kind}/{name}") if decision.patch else "",
    }


def _context(
    sim: Simulation,
    *,
    kind: Mapping[str, Any],
    namespace: str,
    operation: str = "CREATE",
    base: str = "",
) -> Context:
    return Context(
        operation=operation,
        kind=kind,
        namespace=sim.namespace or namespace or "default",
        namespace_labels=sim.namespace_labels,
        mode=sim.mode,
        base=base,
    )


def preview_object(obj: Any, sim: Simulation) -> list[Result]:
    """The results for one input document (several for a List)."""
    if isinstance(obj, list):
        return [result for item in obj for result in preview_object(item, sim)]
    if not isinstance(obj, Mapping):
        raise documents.InputError(f"expected a Kubernetes object, found a {type(obj).__name__}")
    kind = obj.get("kind")
    if not isinstance(kind, str) or not kind:
        raise documents.InputError("a document has no kind")
    if kind.endswith("List") and isinstance(obj.get("items"), list):
        return preview_object(obj["items"], sim)
    if kind == "AdmissionReview":
        try:
            review = parse_review(obj)
        except ReviewError as error:
            raise documents.InputError(f"AdmissionReview: {error}") from None
        context = _context(
            sim, kind=review.kind, namespace=review.namespace, operation=review.operation
        )
        return [
            _result(review.pod, "Pod", mutate(review.pod, context=context, options=sim.options))
        ]

    group, version = _group_version(obj.get("apiVersion"))
    namespace = string(mapping(obj.get("metadata")).get("namespace"))
    path = TEMPLATE_PATHS.get((group, kind))
    if path is None:
        context = _context(
            sim, kind={"group": group, "version": version, "kind": kind}, namespace=namespace
        )
        return [_result(obj, kind, mutate(obj, context=context, options=sim.options))]
    template: Any = obj
    for token in path:
        template = mapping(template).get(token)
    pod = {"apiVersion": "v1", "kind": "Pod", **mapping(template)}
    context = _context(
        sim,
        kind={"group": "", "version": "v1", "kind": "Pod"},
        namespace=namespace,
        base="/" + "/".join(path),
    )
    decision = mutate(pod, context=context, options=sim.options)
    return [_result(obj, kind, decision)]


def preview_text(text: str, sim: Simulation, *, allow_aliases: bool = True) -> list[Result]:
    """Results for every object in a JSON or YAML text."""
    loaded = documents.load(text, allow_aliases=allow_aliases)
    results = [result for doc in loaded for result in preview_object(doc, sim)]
    if not results:
        raise documents.InputError("the input holds no Kubernetes object")
    return results


def render(results: list[Result], fmt: str) -> str:
    """The results as the CLI prints them and `/preview` returns them."""
    if fmt == "json":
        return json.dumps({"results": results}, indent=2, ensure_ascii=False) + "\n"
    if fmt == "yaml":
        return documents.dump({"results": results})
    if fmt == "patch":
        return "".join(json.dumps(result["patch"], ensure_ascii=False) + "\n" for result in results)
    if fmt == "diff":
        return "".join(result["diff"] for result in results)
    raise ValueError(f"unknown format {fmt!r}: choose one of {', '.join(FORMATS)}")
