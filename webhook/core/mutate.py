"""Pod in, Decision out: read the pod, select, rewrite the target containers, record the status.

`mutate` is the entry point that `/preview` and the CLI share; admission runs its two halves
itself (`read_pod`, then `decide`), to have the scripts of `scripts_needed` parsed in between.
It reads the pod's typed view (into `PodFacts`) and never changes the pod: the answer carries
explicit JSON Patch operations. The decision is a function of the facts and the scripts'
rewrites only, kept in a `Decisions` its owner hands in, so the pods of one runtime are decided
once.
"""

from __future__ import annotations

import dataclasses
import re
from types import MappingProxyType
from typing import Final

from webhook.core.kinds import ISVC_KIND, LLMISVC_KIND
from webhook.core.memo import Memo
from webhook.core.model import DEFAULT_CONTEXT, DEFAULT_OPTIONS, Context, Decision, Options
from webhook.core.names import (
    PROBLEM_ANNOTATION,
    STATUS_ANNOTATION,
    WARNED_REASONS,
    Action,
    Reason,
)
from webhook.core.parsed import Rewrites
from webhook.core.patch import PatchOp
from webhook.core.read import PodFacts, read_pod
from webhook.core.rewrite import annotation_ops, container_ops, problem_text, status_annotation
from webhook.core.selection import Selection, select
from webhook.core.view import PodView

WARNING_LIMIT: Final = 120
# An arg as a warning quotes it (its repr, or in double quotes), not an apostrophe's word.
_QUOTED: Final = re.compile(r"(?<!\w)('(?:[^'\\]|\\.)*'|\"(?:[^\"\\]|\\.)*\")(?!\w)")
DECISION_CACHE_SIZE: Final = 1024


def short(text: str) -> str:
    """A warning cut to what kubectl shows on one line: its longest quoted arg shortened, so
    that the sentence is said whole, else its end cut."""
    if len(text) <= WARNING_LIMIT:
        return text
    quoted = max(_QUOTED.finditer(text), key=lambda found: len(found[0]), default=None)
    if quoted is not None:
        quote, body = quoted[0][0], quoted[0][1:-1]
        keep = len(body) - (len(text) - WARNING_LIMIT) - len("...")
        if keep > 0:
            return f"{text[: quoted.start()]}{quote}{body[:keep]}...{quote}{text[quoted.end() :]}"
    return text[: WARNING_LIMIT - 3] + "..."


class Decisions:
    """The decisions a process has made, by pod facts: the pods of one runtime share their
    facts, and so their decision. Owned by the server (or a command's run) and handed to
    `mutate`.

    A decision is kept only when the pod's command and args fit their share of the byte
    budget (held twice: in the key and in the patch), and never when they could hold a script
    over the size limit (a character is at most 4 bytes); such a decision is marked not
    cacheable, so memory does not grow with the distinct large pods a client sends. Nor is a
    decision made from an outcome that does not last (a parse that overran its budget).
    """

    def __init__(self, options: Options, *, size: int = DECISION_CACHE_SIZE) -> None:
        self._share = options.cache_bytes // size
        self._max_script_bytes = options.max_script_bytes
        self._memo: Memo[PodFacts, Decision] = Memo(size)

    def get(self, facts: PodFacts) -> Decision | None:
        return self._memo.get(facts)

    def keep(self, facts: PodFacts, decision: Decision) -> Decision:
        """The decision as it is to be answered: kept when it may be, else marked so."""
        if 2 * facts.size > self._share or 4 * facts.size > self._max_script_bytes:
            return dataclasses.replace(decision, cacheable=False)
        return self._memo.put(facts, decision) if decision.cacheable else decision


def mutate(
    pod: PodView,
    *,
    rewrites: Rewrites,
    context: Context = DEFAULT_CONTEXT,
    options: Options = DEFAULT_OPTIONS,
    decisions: Decisions | None = None,
) -> Decision:
    """Decide what admission does to this pod and build the patch that does it, reading its
    scripts' rewrites through `rewrites`; with `decisions`, a pod whose facts were seen is
    answered from them."""
    facts = read_pod(pod, context=context, options=options)
    if decisions is None:
        decisions = Decisions(options, size=1)
    return decisions.get(facts) or decisions.keep(facts, decide(facts, rewrites=rewrites))


def _owner(facts: PodFacts) -> str:
    """The kind of object whose args the pod carries."""
    return LLMISVC_KIND if facts.isvc is None and facts.llm else ISVC_KIND


def _problem(facts: PodFacts, selection: Selection) -> dict[str, str]:
    """The problem annotation a pod gets when the args of its containers replaced their
    script (DESIGN §2.1), unless it says so already."""
    replaced = [p.plan.name for p in selection.plans if p.plan.outcome is Reason.SCRIPT_REPLACED]
    if not replaced or selection.action is Action.SHADOW:
        return {}
    text = problem_text(replaced)
    return {} if facts.problem == text else {PROBLEM_ANNOTATION: text}


def decide(facts: PodFacts, *, rewrites: Rewrites) -> Decision:
    """The decision for a pod with these facts."""
    selection = select(facts, rewrites=rewrites)
    # A parse timeout is remembered for a while only: the decision must not outlast it.
    lasting = all(p.plan.outcome is not Reason.PARSE_TIMEOUT for p in selection.plans)
    warnings = [
        short(f"multinode-webhook left {p.plan.name} unchanged: {p.plan.detail}")
        for p in selection.plans
        if p.plan.outcome in WARNED_REASONS
    ]
    base = facts.base
    annotations = _problem(facts, selection)

    def annotated(values: dict[str, str]) -> list[PatchOp]:
        return annotation_ops(
            values,
            base=base,
            has_metadata=facts.has_metadata,
            has_annotations=facts.has_annotations,
        )

    if selection.action in (Action.SKIPPED, Action.UNCHANGED):
        return Decision(
            selection.action,
            selection.reason,
            selection.trace,
            tuple(annotated(annotations)),
            tuple(warnings),
            cacheable=lasting,
        )

    targets = selection.targets
    rules = MappingProxyType({p.plan.name: p.plan.rules for p in targets})
    changed = MappingProxyType({p.plan.name: p.plan.changed for p in targets})
    names = ", ".join(rules)
    if selection.action is Action.SHADOW:
        warnings.insert(
            0, short(f"multinode-webhook (shadow) would rewrite {names} to forward args")
        )
        return Decision(
            Action.SHADOW,
            selection.reason,
            selection.trace,
            (),
            tuple(warnings),
            rules,
            changed,
            cacheable=lasting,
        )

    ops: list[PatchOp] = []
    commands: dict[str, tuple[str, ...]] = {}
    old = {container.position: container.command for container in facts.containers}
    for target in targets:
        path = f"{base}/spec/containers/{target.position}"
        ops.extend(container_ops(target.plan, path=path))
        commands[path + "/command"] = old.get(target.position) or ()
    recorded: dict[str, list[str]] = {
        **selection.recorded,
        **{name: list(applied) for name, applied in rules.items()},
    }
    annotations[STATUS_ANNOTATION] = status_annotation(recorded, ops, commands=commands)
    ops.extend(annotated(annotations))
    notes = [f"{t.plan.name} {note}" for t in targets for note in t.plan.notes]
    warnings[:0] = [
        short(f"multinode-webhook rewrote {names} so {_owner(facts)} args reach it"),
        *(short(f"multinode-webhook: {note}") for note in notes),
    ]
    return Decision(
        Action.PATCHED,
        selection.reason,
        selection.trace,
        tuple(ops),
        tuple(warnings),
        rules,
        changed,
        cacheable=lasting,
    )
