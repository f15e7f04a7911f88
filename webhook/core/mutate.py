"""Pod in, Decision out: read the pod, select, rewrite the target containers, record the status.

`mutate` is the single entry point that `/mutate`, `/mutate/shadow`, `/preview` and the CLI
share. It reads the raw pod (into `PodFacts`) and never changes it: the answer carries explicit
JSON Patch operations. The decision is a function of the facts only, cached, so the pods of
one runtime are decided once.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from functools import lru_cache
from types import MappingProxyType
from typing import Any, Final

from webhook.core.model import DEFAULT_CONTEXT, DEFAULT_OPTIONS, Context, Decision, Options
from webhook.core.names import WARNED_REASONS, Action
from webhook.core.patch import PatchOp
from webhook.core.read import PodFacts, read_pod
from webhook.core.rewrite import container_ops, status_annotation, status_op
from webhook.core.selection import select

WARNING_LIMIT: Final = 120
DECISION_CACHE_SIZE: Final = 1024


def short(text: str) -> str:
    """A warning cut to what kubectl shows on one line."""
    return text if len(text) <= WARNING_LIMIT else text[: WARNING_LIMIT - 3] + "..."


def mutate(
    pod: Mapping[str, Any],
    *,
    context: Context = DEFAULT_CONTEXT,
    options: Options = DEFAULT_OPTIONS,
) -> Decision:
    """Decide what admission does to this pod and build the patch that does it.

    A decision is cached only when the pod's command and args fit their share of the cache's
    byte budget (held twice: in the key and in the patch), and never when they could hold a
    script over the size limit (a character is at most 4 bytes); such a decision is computed
    every time, so memory does not grow with the distinct large pods a client sends.
    """
    facts = read_pod(pod, context=context, options=options)
    share = options.cache_bytes // DECISION_CACHE_SIZE
    if 2 * facts.size > share or 4 * facts.size > options.max_script_bytes:
        return dataclasses.replace(_decide(facts), cacheable=False)
    return decide(facts)


def _decide(facts: PodFacts) -> Decision:
    """The decision for a pod with these facts."""
    selection = select(facts)
    warnings = [
        short(f"multinode-webhook left {p.plan.name} unchanged: {p.plan.detail}")
        for p in selection.plans
        if p.plan.outcome in WARNED_REASONS
    ]
    if selection.action in (Action.SKIPPED, Action.UNCHANGED):
        return Decision(selection.action, selection.reason, selection.trace, (), tuple(warnings))

    targets = selection.targets
    rules = MappingProxyType({p.plan.name: p.plan.rules for p in targets})
    names = ", ".join(rules)
    if selection.action is Action.SHADOW:
        warnings.insert(
            0, short(f"multinode-webhook (shadow) would rewrite {names} to forward args")
        )
        return Decision(
            Action.SHADOW, selection.reason, selection.trace, (), tuple(warnings), rules
        )

    base = facts.base
    ops: list[PatchOp] = []
    for target in targets:
        ops.extend(container_ops(target.plan, path=f"{base}/spec/containers/{target.position}"))
    recorded: dict[str, list[str]] = {
        **selection.recorded,
        **{name: list(applied) for name, applied in rules.items()},
    }
    ops.append(
        status_op(
            status_annotation(recorded, ops),
            base=base,
            has_metadata=facts.has_metadata,
            has_annotations=facts.has_annotations,
        )
    )
    notes = [f"{t.plan.name} {t.plan.note}" for t in targets if t.plan.note]
    warnings[:0] = [
        short(f"multinode-webhook rewrote {names} so InferenceService args reach it"),
        *(short(f"multinode-webhook: {note}") for note in notes[:1]),
    ]
    return Decision(
        Action.PATCHED, selection.reason, selection.trace, tuple(ops), tuple(warnings), rules
    )


# Cached: the pods of one runtime share their facts, and so their decision.
decide = lru_cache(maxsize=DECISION_CACHE_SIZE)(_decide)
