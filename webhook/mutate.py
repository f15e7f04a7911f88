"""Pod in, Decision out: selection, the per-container rewrite plan, the patch and the status.

`mutate` is the single entry point `/mutate`, `/mutate/shadow`, `/preview` and the CLI share.
It reads the raw pod dict (into `PodFacts`) and never changes it: the result is a list of
explicit JSON Patch operations. `plan_container` is the per-container half, shared with
runtime migration.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any, Final

from webhook import __version__, keys, patch
from webhook.facts import ContainerFacts, PodFacts, pod_facts
from webhook.patch import PatchOp
from webhook.raw import string_list
from webhook.rewrite import rewrite_script
from webhook.selection import POD_KIND, TraceStep, select

WARNING_LIMIT: Final = 120


@dataclass(frozen=True, slots=True)
class Options:
    """What the installation configures: which containers are targets, which namespace is ours."""

    containers: tuple[str, ...] = keys.DEFAULT_TARGET_CONTAINERS
    own_namespace: str = keys.DEFAULT_OWN_NAMESPACE


@dataclass(slots=True)
class Context:
    """What the request says around the pod.

    `namespace` None means the pod's own `metadata.namespace`. `namespace_labels` is given only
    by preview (admission's namespace test is the API server's). `base` is the JSON pointer of
    the pod inside the object the patch applies to (a workload's pod template).
    """

    operation: str = "CREATE"
    kind: Mapping[str, Any] = field(default_factory=lambda: dict(POD_KIND))
    namespace: str | None = None
    namespace_labels: Mapping[str, str] | None = None
    mode: str = keys.MODE_OPT_IN
    shadow: bool = False
    base: str = ""


@dataclass(frozen=True, slots=True)
class ContainerPlan:
    """What happens to one named container: `outcome` is LEGACY_SHAPE when it is rewritten."""

    name: str
    outcome: str
    detail: str
    command: tuple[str, ...] | None = None
    args: tuple[str, ...] | None = None
    rules: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True, eq=False)
class Decision:
    """The whole answer for one pod.

    Equal reviews share one Decision (see `mutate`), so it is immutable down to its tuples,
    and compared and hashed by identity, which lets the wire response cache what it derives
    from it. Copy a patch before applying it to a document that will be changed further.
    """

    decision: str
    reason: str
    trace: tuple[TraceStep, ...]
    patch: tuple[PatchOp, ...]
    warnings: tuple[str, ...]
    rules: Mapping[str, tuple[str, ...]]


DEFAULT_OPTIONS: Final = Options()
DEFAULT_CONTEXT: Final = Context()
DECISION_CACHE_SIZE: Final = 1024


def _is_bash_c(command: Sequence[str]) -> bool:
    return len(command) >= 2 and command[0] in keys.BASH_PATHS and command[1] == "-c"


def plan_container(container: ContainerFacts) -> ContainerPlan:
    """Classify a target-named container and, for the legacy shape, compute its new fields."""
    name, command, args = container.name, container.command, container.args
    if not container.typed:
        return ContainerPlan(name, keys.NOT_A_TARGET, "command or args is not a list of strings")
    if command is None:
        return ContainerPlan(name, keys.ALREADY_MIGRATED, "no command: the image's entrypoint runs")
    if not _is_bash_c(command):
        return ContainerPlan(name, keys.ALREADY_MIGRATED, "command is not bash -c")
    if len(command) > 2:
        return ContainerPlan(name, keys.ALREADY_MIGRATED, "the script is already in command")
    if not args:
        return ContainerPlan(name, keys.NOT_A_TARGET, "bash -c with no script in args")
    rewritten = rewrite_script(args[0])
    if rewritten.script is None:
        return ContainerPlan(name, keys.NO_LAUNCH_COMMAND, rewritten.detail)
    return ContainerPlan(
        name,
        keys.LEGACY_SHAPE,
        f"launch command: {rewritten.detail}",
        command=(command[0], "-c", rewritten.script, name),
        args=args[1:] or None,
        rules=rewritten.rules,
    )


def container_ops(plan: ContainerPlan, *, path: str) -> list[PatchOp]:
    """The patch that applies a LEGACY_SHAPE plan to the container at `path`."""
    args_op = (
        patch.remove(path + "/args")
        if plan.args is None
        else patch.replace(path + "/args", list(plan.args))
    )
    return [patch.replace(path + "/command", list(plan.command or ())), args_op]


def previous_rules(status: str | None) -> dict[str, list[str]]:
    """The rules an earlier run recorded in the status annotation, by container."""
    if status is None:
        return {}
    try:
        rules = json.loads(status)["rules"]
    except (KeyError, TypeError, ValueError):
        return {}
    if not isinstance(rules, dict):
        return {}
    return {str(name): list(applied) for name, applied in rules.items() if string_list(applied)}


def patch_digest(ops: Sequence[PatchOp]) -> str:
    """sha256 over each operation's op, path and string values, NUL-separated; 16 hex digits.

    Built from the strings themselves rather than a JSON rendering, so that every encoder
    (the CLI's, the server's) records the same digest for the same patch.
    """
    digest = hashlib.sha256()
    for op in ops:
        value = op.get("value")
        parts = [op["op"], op["path"], *(value if isinstance(value, list) else ())]
        digest.update("\0".join(parts).encode("utf-8", "surrogatepass") + b"\n")
    return f"sha256:{digest.hexdigest()[:16]}"


def status_annotation(rules: Mapping[str, Sequence[str]], ops: Sequence[PatchOp]) -> str:
    """The compact JSON recorded on the pod: version, rules by container, digest of the patch."""
    body = {"version": __version__, "rules": rules, "digest": patch_digest(ops)}
    return json.dumps(body, sort_keys=True, separators=(",", ":"))


def short(text: str) -> str:
    """A warning cut to what kubectl shows on one line."""
    return text if len(text) <= WARNING_LIMIT else text[: WARNING_LIMIT - 3] + "..."


def _unchanged_reason(plans: Sequence[ContainerPlan]) -> str:
    outcomes = {plan.outcome for plan in plans}
    for reason in (keys.NO_LAUNCH_COMMAND, keys.ALREADY_MIGRATED):
        if reason in outcomes:
            return reason
    return keys.NOT_A_TARGET


def mutate(
    pod: Mapping[str, Any],
    *,
    context: Context = DEFAULT_CONTEXT,
    options: Options = DEFAULT_OPTIONS,
) -> Decision:
    """Decide what admission does to this pod and build the patch that does it.

    The pod is read once into `PodFacts`; the decision is a function of those facts only,
    cached, so the pods of one runtime are decided once.
    """
    return decide(request_facts(pod, context=context, options=options))


def request_facts(
    pod: Mapping[str, Any],
    *,
    context: Context = DEFAULT_CONTEXT,
    options: Options = DEFAULT_OPTIONS,
) -> PodFacts:
    """What the decision for this pod, in this request, under these options, depends on."""
    return pod_facts(
        pod,
        operation=context.operation,
        kind=context.kind,
        namespace=context.namespace,
        namespace_labels=context.namespace_labels,
        mode=context.mode,
        shadow=context.shadow,
        base=context.base,
        targets=options.containers,
        own_namespace=options.own_namespace,
    )


@lru_cache(maxsize=DECISION_CACHE_SIZE)
def decide(facts: PodFacts) -> Decision:
    """The decision for a pod with these facts."""
    selection = select(facts)
    trace = selection.trace
    if selection.skip_reason is not None:
        return Decision(keys.SKIPPED, selection.skip_reason, tuple(trace), (), (), {})

    recorded = previous_rules(facts.status)
    plans: list[tuple[int, ContainerPlan]] = []
    for container in facts.containers:
        name = container.name
        if name in recorded:
            plan = ContainerPlan(name, keys.ALREADY_MIGRATED, f"{keys.STATUS_ANNOTATION} names it")
        else:
            plan = plan_container(container)
        trace.append({"step": f"container/{name}", "verdict": plan.outcome, "detail": plan.detail})
        plans.append((container.position, plan))

    warnings = [
        short(f"multinode-webhook left {plan.name} unchanged: {plan.detail}")
        for _, plan in plans
        if plan.outcome == keys.NO_LAUNCH_COMMAND
    ]
    targets = [(index, plan) for index, plan in plans if plan.outcome == keys.LEGACY_SHAPE]
    if not targets:
        reason = _unchanged_reason([p for _, p in plans])
        return Decision(keys.UNCHANGED, reason, tuple(trace), (), tuple(warnings), {})

    rules = {plan.name: plan.rules for _, plan in targets}
    names = ", ".join(rules)
    if selection.shadow or facts.shadow:
        warnings.insert(
            0, short(f"multinode-webhook (shadow) would rewrite {names} to forward args")
        )
        return Decision(keys.SHADOW, keys.LEGACY_SHAPE, tuple(trace), (), tuple(warnings), rules)

    base = facts.base
    ops: list[PatchOp] = []
    for index, plan in targets:
        ops.extend(container_ops(plan, path=f"{base}/spec/containers/{index}"))
    merged = {**recorded, **{name: list(applied) for name, applied in rules.items()}}
    status = status_annotation(merged, ops)
    if facts.has_annotations:
        path = base + patch.pointer("metadata", "annotations", keys.STATUS_ANNOTATION)
        ops.append(patch.add(path, status))
    elif facts.has_metadata:
        ops.append(patch.add(base + "/metadata/annotations", {keys.STATUS_ANNOTATION: status}))
    else:
        ops.append(patch.add(base + "/metadata", {"annotations": {keys.STATUS_ANNOTATION: status}}))
    warnings.insert(
        0, short(f"multinode-webhook rewrote {names} so InferenceService args reach it")
    )
    return Decision(
        keys.PATCHED, keys.LEGACY_SHAPE, tuple(trace), tuple(ops), tuple(warnings), rules
    )
