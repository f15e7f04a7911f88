"""Whether and why a pod is rewritten: all of DESIGN §4, steps 0 to 7, in one function.

`select` answers for `/mutate`, `/mutate/shadow`, `/preview` and the CLI alike, from the pod's
facts only. Step 0 (the namespace test) runs only when the caller knows the namespace's labels:
in admission the API server's namespaceSelector has done it already. Step 6 classifies every
target-named container with the container rewrite's own plan, so the verdict and the rewrite
can never disagree.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from webhook.core.model import ContainerPlan, TraceStep
from webhook.core.names import (
    CREATE,
    INJECT_LABEL,
    ISVC_LABEL,
    LLMISVC_PART_OF,
    MIRROR_ANNOTATION,
    PART_OF_LABEL,
    POD_OPT_OUT,
    STATUS_ANNOTATION,
    SYSTEM_NAMESPACES,
    WARNED_REASONS,
    Action,
    Inject,
    Mode,
    Reason,
    Verdict,
)
from webhook.core.parsed import Needed, Rewrites
from webhook.core.read import PodFacts
from webhook.core.rewrite import container_script, plan_container, previous_rules

# When no container is rewritten, the first of these outcomes present names the pod's reason.
_UNCHANGED_PRECEDENCE = (*WARNED_REASONS, Reason.ALREADY_MIGRATED)


@dataclass(frozen=True, slots=True)
class Positioned:
    """A container's plan and its index in `spec.containers`."""

    position: int
    plan: ContainerPlan


@dataclass(frozen=True, slots=True)
class Selection:
    """The verdict: what admission does, why, the trace that led there, and (from step 6 on)
    the plan of every target-named container."""

    action: Action
    reason: Reason
    trace: tuple[TraceStep, ...]
    plans: tuple[Positioned, ...] = ()
    # The rules the status annotation says earlier runs applied, by container.
    recorded: Mapping[str, list[str]] = field(default_factory=dict)

    @property
    def targets(self) -> tuple[Positioned, ...]:
        """The containers that are rewritten."""
        return tuple(p for p in self.plans if p.plan.outcome is Reason.LOSSY_ARGS)


def namespace_verdict(inject: str | None, mode: Mode) -> tuple[bool, bool, str]:
    """(selected, shadow, detail) for a namespace with this inject label under this mode."""
    if inject == Inject.DISABLED:
        return False, False, f"{INJECT_LABEL}={inject}"
    if inject == Inject.SHADOW:
        return True, True, f"{INJECT_LABEL}={inject}"
    if inject == Inject.ENABLED:
        return True, False, f"{INJECT_LABEL}={inject}"
    if mode == Mode.CLUSTER_WIDE:
        return True, False, f"{mode} install and no {INJECT_LABEL}={Inject.DISABLED}"
    return False, False, f"{mode} install and no {INJECT_LABEL} label"


def select(facts: PodFacts, *, rewrites: Rewrites) -> Selection:
    """Run the selection steps in order; the first that matches decides. Scripts' rewrites are
    read through `rewrites` (the scripts of `scripts_needed`)."""
    trace: list[TraceStep] = []
    skipped, shadow = _ours(facts, trace)
    if skipped is not None:
        return Selection(Action.SKIPPED, skipped, tuple(trace))
    # Step 6: does any container lose its args?
    recorded = previous_rules(facts.status)
    plans: list[Positioned] = []
    for container in facts.containers:
        name = container.name
        if name in recorded:
            plan = ContainerPlan(name, Reason.ALREADY_MIGRATED, f"{STATUS_ANNOTATION} names it")
        else:
            plan = plan_container(
                container,
                rules=facts.rules,
                max_script_bytes=facts.max_script_bytes,
                rewrites=rewrites,
            )
        trace.append(TraceStep(f"container/{name}", plan.outcome, plan.detail))
        plans.append(Positioned(container.position, plan))

    outcomes = {positioned.plan.outcome for positioned in plans}
    if Reason.LOSSY_ARGS in outcomes:
        action = Action.SHADOW if shadow else Action.PATCHED
        return Selection(action, Reason.LOSSY_ARGS, tuple(trace), tuple(plans), recorded)
    reason = next((r for r in _UNCHANGED_PRECEDENCE if r in outcomes), Reason.NOT_A_TARGET)
    return Selection(Action.UNCHANGED, reason, tuple(trace), tuple(plans), recorded)


def scripts_needed(facts: PodFacts) -> list[Needed]:
    """The scripts `select` reads for a pod with these facts, in container order: none for a
    pod that steps 0 to 5 skip, nor for a container already migrated or decided without its
    script."""
    if _ours(facts, [])[0] is not None:
        return []
    recorded = previous_rules(facts.status)
    needed: list[Needed] = []
    for container in facts.containers:
        if container.name in recorded:
            continue
        script = container_script(container, max_script_bytes=facts.max_script_bytes)
        if isinstance(script, str):
            needed.append(Needed(script, facts.rules, container.name))
    return needed


def _ours(facts: PodFacts, trace: list[TraceStep]) -> tuple[Reason | None, bool]:
    """Steps 0 to 5, traced: the reason the pod is skipped (None: it is ours to look at), and
    whether it is looked at in shadow mode."""

    def step(reason: Reason, skipped: bool, detail: str) -> bool:
        trace.append(TraceStep(reason, Verdict.SKIP if skipped else Verdict.PASS, detail))
        return skipped

    shadow = facts.shadow
    if facts.namespace_labels_known:
        selected, shadow_namespace, detail = namespace_verdict(facts.namespace_inject, facts.mode)
        shadow = shadow or shadow_namespace
        if step(Reason.NAMESPACE_NOT_SELECTED, not selected, detail):
            return Reason.NAMESPACE_NOT_SELECTED, shadow

    kind = facts.kind
    create_pod = kind.is_pod and facts.operation == CREATE
    if step(Reason.NOT_POD_CREATE, not create_pod, f"{facts.operation} {kind}"):
        return Reason.NOT_POD_CREATE, shadow

    namespace = facts.namespace
    system = namespace in SYSTEM_NAMESPACES or namespace == facts.own_namespace
    if step(Reason.SYSTEM_NAMESPACE, system, f"namespace {namespace or '(none)'}"):
        return Reason.SYSTEM_NAMESPACE, shadow

    mirror = facts.mirror
    if step(Reason.MIRROR_POD, mirror, f"{MIRROR_ANNOTATION} {'set' if mirror else 'absent'}"):
        return Reason.MIRROR_POD, shadow

    opt_detail = f'{INJECT_LABEL}="{facts.inject or ""}"'
    if step(Reason.POD_OPTED_OUT, facts.inject == POD_OPT_OUT, opt_detail):
        return Reason.POD_OPTED_OUT, shadow

    isvc = facts.isvc
    if isvc is not None:
        kserve_detail = f"{ISVC_LABEL}={isvc}"
    elif facts.llm:
        kserve_detail = f"{PART_OF_LABEL}={LLMISVC_PART_OF}"
    else:
        kserve_detail = f"no {ISVC_LABEL}, no {PART_OF_LABEL}={LLMISVC_PART_OF}"
    if step(Reason.NOT_KSERVE, isvc is None and not facts.llm, kserve_detail):
        return Reason.NOT_KSERVE, shadow
    return None, shadow
