"""What the owner of a pod is told of its review: the Kubernetes Events a decision calls for, on
the InferenceService or LLMInferenceService whose args the pod carries (DESIGN §7.2).

Pure: a decision and the pod's labels in, `Notice`s out, each one line that names what the
owner can do. Sending them, later and off the admission path, is the transport's job
(`webhook/runtime/events.py`). A pod of no owner, and a pod with nothing to tell, yield none.
"""

from __future__ import annotations

import hashlib
import re
from types import MappingProxyType
from typing import Final, NamedTuple

from webhook.core.kinds import ISVC_KIND, LLMISVC_KIND, NAME_LABEL
from webhook.core.memo import Memo
from webhook.core.model import Decision
from webhook.core.names import (
    INJECT_LABEL,
    ISVC_LABEL,
    LLM_EXTRA_ARGS_ENV,
    LLMISVC_PART_OF,
    PART_OF_LABEL,
    Action,
    Inject,
    Reason,
)
from webhook.core.view import PodView

# KServe names an LLMInferenceService's workloads with this label (DESIGN §2.1).
NORMAL: Final = "Normal"
WARNING: Final = "Warning"
REPAIRED: Final = "ArgsRepaired"
WOULD_REPAIR: Final = "WouldRepair"
REVIEW_FAILED: Final = "ReviewFailed"
# kube-apiserver keeps an Event's message whole up to 1 KiB in events.k8s.io; ours stay under.
MESSAGE_LIMIT: Final = 1024
# An owner is named by a label value: at most 63 characters, as Kubernetes checks them.
_OWNER_NAME: Final = re.compile(r"[a-z0-9]([-a-z0-9.]{0,61}[a-z0-9])?")
_MIGRATE: Final = "`multinode-webhook migrate` does it"
_LOST: Final = "so its args may not reach the model server"

# The containers' reasons an owner is warned of: the name of its Event, and what to do.
_WARNED: Final = MappingProxyType(
    {
        Reason.SCRIPT_REPLACED: (
            "ScriptReplaced",
            "the LLMInferenceService's args replaced the preset's launch script, so bash runs the "
            f"first arg as a script and vLLM never starts. Move these args to {LLM_EXTRA_ARGS_ENV} "
            f"({_MIGRATE}), or upgrade KServe",
        ),
        Reason.ARGS_IGNORED: (
            "ArgsIgnored",
            "its args come after the preset's launch script and never reach vLLM. Move them to "
            f"{LLM_EXTRA_ARGS_ENV} ({_MIGRATE}), or upgrade KServe",
        ),
        Reason.UNSUPPORTED_CHARACTERS: (
            "UnsupportedCharacters",
            f"left unrepaired: its script holds a character above U+FFFF, {_LOST}. Remove it from "
            f"the runtime's script, or move the script into command ({_MIGRATE})",
        ),
        Reason.PARSER_FAILED: (
            "ParserFailed",
            f"left unrepaired: the webhook's bash parser failed on its script, {_LOST}. Move the "
            f"script into command at its source ({_MIGRATE})",
        ),
        Reason.PARSE_TIMEOUT: (
            "ParseTimeout",
            f"left unrepaired: its script took longer to parse than the webhook allows, {_LOST}. "
            "The webhook parses it again after a minute: delete the pod then to have it reviewed "
            f"again, or move the script into command at its source ({_MIGRATE})",
        ),
    }
)


class Owner(NamedTuple):
    """The object whose args a pod carries."""

    kind: str
    name: str
    namespace: str


class Notice(NamedTuple):
    """One Event to send: on `owner`, of `type` (Normal, Warning), with `reason` and `message`.
    `digest` tells apart repairs whose messages read alike but whose patches differ: each is an
    Event series of its own."""

    owner: Owner
    type: str
    reason: str
    message: str
    digest: str = ""


def owner_of(pod: PodView, *, namespace: str) -> Owner | None:
    """The InferenceService (by its pod label) or LLMInferenceService (by KServe's name label
    beside `part-of`) that owns the pod; None for any other pod, or a name Kubernetes would
    refuse."""
    labels = pod.metadata.labels if pod.metadata is not None else None
    if not isinstance(labels, dict) or not namespace:
        return None
    kind, name = ISVC_KIND, labels.get(ISVC_LABEL)
    if name is None and labels.get(PART_OF_LABEL) == LLMISVC_PART_OF:
        kind, name = LLMISVC_KIND, labels.get(NAME_LABEL)
    if not isinstance(name, str) or not _OWNER_NAME.fullmatch(name):
        return None
    return Owner(kind, name, namespace)


Said = Memo[Decision, tuple[tuple[str, str, str, str], ...]]
"""What the Events of each decision say, kept by the Event queue: the pods of one runtime share
their decision, and so these."""


def notices(decision: Decision, owner: Owner, *, said: Said | None = None) -> tuple[Notice, ...]:
    """The Events a decision calls for: a repair (or, in shadow mode, the repair it would
    make), and a warning for each container left with a problem its owner can fix."""
    if decision.action not in (Action.PATCHED, Action.SHADOW) and not decision.warnings:
        return ()
    known = said.get(decision) if said is not None else None
    if known is None:
        known = _said(decision)
        if said is not None and decision.cacheable:
            said.put(decision, known)
    return tuple(Notice(owner, *each) for each in known)


def _said(decision: Decision) -> tuple[tuple[str, str, str, str], ...]:
    """(type, reason, message, digest) of each Event."""
    said: list[tuple[str, str, str, str]] = []
    if decision.action in (Action.PATCHED, Action.SHADOW):
        parts = " and ".join(
            f"container {name} ({_args(decision.changed.get(name, 0))}; rules {', '.join(rules)})"
            for name, rules in decision.rules.items()
        )
        if decision.action is Action.PATCHED:
            message = (
                f"multinode-webhook repaired {parts}: every arg now reaches the model server "
                "as written. Nothing to do; each new pod is repaired the same way"
            )
            said.append((NORMAL, REPAIRED, _cut(message), _digest(decision)))
        else:
            message = (
                f"multinode-webhook (shadow) would repair {parts}. Label the namespace "
                f"{INJECT_LABEL}={Inject.ENABLED} to repair new pods as they are created"
            )
            said.append((NORMAL, WOULD_REPAIR, _cut(message), _digest(decision)))
    for step in decision.trace:
        warned = _WARNED.get(step.verdict) if isinstance(step.verdict, Reason) else None
        if warned is not None:
            container = step.step.removeprefix("container/")
            said.append((WARNING, warned[0], _cut(f"container {container}: {warned[1]}"), ""))
    return tuple(said)


def failed(owner: Owner, *, error: str, denied: bool) -> Notice:
    """The warning for a pod the webhook could not review, answered by its error policy."""
    if denied:
        what = "so it was refused and its controller retries. Tell your platform team"
    else:
        what = (
            f"so it was admitted unchanged, {_LOST}. Delete the pod to have it reviewed again; "
            "`multinode-webhook check --audit` lists such pods"
        )
    message = f"multinode-webhook could not review a pod ({error}), {what}"
    return Notice(owner, WARNING, REVIEW_FAILED, _cut(message))


def _args(count: int) -> str:
    return "1 arg changed delivery" if count == 1 else f"{count} args changed delivery"


def _digest(decision: Decision) -> str:
    ops = repr(tuple((op.op, op.path, op.value) for op in decision.patch))
    return hashlib.sha256(ops.encode("utf-8", "surrogatepass")).hexdigest()[:16]


def _cut(message: str) -> str:
    return message if len(message) <= MESSAGE_LIMIT else message[: MESSAGE_LIMIT - 3] + "..."
