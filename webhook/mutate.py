"""Pod in, Decision out: selection, the per-container rewrite plan, the patch and the status.

`mutate` is the single entry point `/mutate`, `/mutate/shadow`, `/preview` and the CLI share.
It reads the raw pod dict and never changes it: the result is a list of explicit JSON Patch
operations. `plan_container` is the per-container half, shared with runtime migration.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

import orjson

from webhook import __version__, keys, patch
from webhook.patch import PatchOp
from webhook.raw import mapping, string, string_list
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


@dataclass(slots=True)
class ContainerPlan:
    """What happens to one named container: `outcome` is LEGACY_SHAPE when it is rewritten."""

    name: str
    outcome: str
    detail: str
    command: list[str] | None = None
    args: list[str] | None = None
    rules: tuple[str, ...] = ()


@dataclass(slots=True)
class Decision:
    """The whole answer for one pod."""

    decision: str
    reason: str
    trace: list[TraceStep]
    patch: list[PatchOp]
    warnings: list[str]
    rules: dict[str, tuple[str, ...]]


DEFAULT_OPTIONS: Final = Options()
DEFAULT_CONTEXT: Final = Context()


def _is_bash_c(command: Sequence[Any]) -> bool:
    return len(command) >= 2 and command[0] in keys.BASH_PATHS and command[1] == "-c"


def plan_container(container: Mapping[str, Any], *, name: str) -> ContainerPlan:
    """Classify a target-named container and, for the legacy shape, compute its new fields."""
    command, args = container.get("command"), container.get("args")
    if command is None:
        return ContainerPlan(name, keys.ALREADY_MIGRATED, "no command: the image's entrypoint runs")
    if not string_list(command) or (args is not None and not string_list(args)):
        return ContainerPlan(name, keys.NOT_A_TARGET, "command or args is not a list of strings")
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
        command=[command[0], "-c", rewritten.script, name],
        args=args[1:] or None,
        rules=rewritten.rules,
    )


def container_ops(plan: ContainerPlan, *, path: str) -> list[PatchOp]:
    """The patch that applies a LEGACY_SHAPE plan to the container at `path`."""
    args_op = (
        patch.remove(path + "/args")
        if plan.args is None
        else patch.replace(path + "/args", plan.args)
    )
    return [patch.replace(path + "/command", plan.command), args_op]


def previous_rules(annotations: Mapping[str, Any]) -> dict[str, list[str]]:
    """The rules an earlier run recorded in the status annotation, by container."""
    if keys.STATUS_ANNOTATION not in annotations:
        return {}
    try:
        status = orjson.loads(annotations[keys.STATUS_ANNOTATION])
        rules = status["rules"]
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
    return orjson.dumps(body, option=orjson.OPT_SORT_KEYS).decode()


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
    """Decide what admission does to this pod and build the patch that does it."""
    metadata = mapping(pod.get("metadata"))
    namespace = context.namespace
    if namespace is None:
        namespace = string(metadata.get("namespace"))
    selection = select(
        pod,
        operation=context.operation,
        kind=context.kind,
        namespace=namespace,
        own_namespace=options.own_namespace,
        namespace_labels=context.namespace_labels,
        mode=context.mode,
    )
    trace = selection.trace
    if selection.skip_reason is not None:
        return Decision(keys.SKIPPED, selection.skip_reason, trace, [], [], {})

    annotations = mapping(metadata.get("annotations"))
    recorded = previous_rules(annotations)
    containers = mapping(pod.get("spec")).get("containers")
    plans: list[tuple[int, ContainerPlan]] = []
    for index, container in enumerate(containers if isinstance(containers, list) else []):
        name = container.get("name") if isinstance(container, dict) else None
        if not isinstance(name, str) or name not in options.containers:
            continue
        if name in recorded:
            plan = ContainerPlan(name, keys.ALREADY_MIGRATED, f"{keys.STATUS_ANNOTATION} names it")
        else:
            plan = plan_container(container, name=name)
        trace.append({"step": f"container/{name}", "verdict": plan.outcome, "detail": plan.detail})
        plans.append((index, plan))

    warnings = [
        short(f"multinode-webhook left {plan.name} unchanged: {plan.detail}")
        for _, plan in plans
        if plan.outcome == keys.NO_LAUNCH_COMMAND
    ]
    targets = [(index, plan) for index, plan in plans if plan.outcome == keys.LEGACY_SHAPE]
    if not targets:
        return Decision(
            keys.UNCHANGED, _unchanged_reason([p for _, p in plans]), trace, [], warnings, {}
        )

    rules = {plan.name: plan.rules for _, plan in targets}
    names = ", ".join(rules)
    if selection.shadow or context.shadow:
        warnings.insert(
            0, short(f"multinode-webhook (shadow) would rewrite {names} to forward args")
        )
        return Decision(keys.SHADOW, keys.LEGACY_SHAPE, trace, [], warnings, rules)

    ops: list[PatchOp] = []
    for index, plan in targets:
        ops.extend(container_ops(plan, path=f"{context.base}/spec/containers/{index}"))
    merged = {**recorded, **{name: list(applied) for name, applied in rules.items()}}
    status = status_annotation(merged, ops)
    if isinstance(metadata.get("annotations"), dict):
        ops.append(
            patch.add(
                context.base + patch.pointer("metadata", "annotations", keys.STATUS_ANNOTATION),
                status,
            )
        )
    elif isinstance(pod.get("metadata"), dict):
        ops.append(
            patch.add(context.base + "/metadata/annotations", {keys.STATUS_ANNOTATION: status})
        )
    else:
        ops.append(
            patch.add(context.base + "/metadata", {"annotations": {keys.STATUS_ANNOTATION: status}})
        )
    warnings.insert(
        0, short(f"multinode-webhook rewrote {names} so InferenceService args reach it")
    )
    return Decision(keys.PATCHED, keys.LEGACY_SHAPE, trace, ops, warnings, rules)
