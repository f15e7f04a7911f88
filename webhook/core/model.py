"""The typed domain: what a request says around a pod, what the installation configures, and
the decision that comes back.

Everything here is frozen. Equal reviews share one `Decision` (decisions are cached), so a
decision is immutable down to its leaves: tuples, read-only mappings, immutable patch ops.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Final, NamedTuple

from webhook.core.names import (
    CREATE,
    DEFAULT_LLM_CONTAINERS,
    DEFAULT_OWN_NAMESPACE,
    DEFAULT_TARGET_CONTAINERS,
    Action,
    Mode,
    Reason,
    Rule,
    Verdict,
)
from webhook.core.patch import PatchOp
from webhook.core.raw import text


class Kind(NamedTuple):
    """A request's `kind`: group, version, kind. A field absent from the request is None; one
    of another JSON type is kept as its text, so the trace shows what was sent."""

    group: str | None
    version: str | None
    kind: str | None

    @classmethod
    def of(cls, raw: Mapping[str, Any]) -> Kind:
        return cls(text(raw.get("group")), text(raw.get("version")), text(raw.get("kind")))

    @property
    def is_pod(self) -> bool:
        return (self.group or "", self.version, self.kind) == POD_KIND

    def __str__(self) -> str:
        return f"{self.group + '/' if self.group else ''}{self.version}/{self.kind}"


POD_KIND: Final = Kind("", "v1", "Pod")


@dataclass(frozen=True, slots=True)
class Options:
    """What the installation configures: which containers are targets (`containers` in
    InferenceService pods, `llm_containers` in LLMInferenceService pods), which namespace is ours,
    which rules of the rewrite are on (all by default), the largest script rewritten, the
    bytes the decision caches may hold."""

    containers: tuple[str, ...] = DEFAULT_TARGET_CONTAINERS
    llm_containers: tuple[str, ...] = DEFAULT_LLM_CONTAINERS
    own_namespace: str = DEFAULT_OWN_NAMESPACE
    rules: frozenset[Rule] = frozenset(Rule)
    # The largest shipped script is about 24 KB (an LLM preset's): 64 KiB leaves room for a
    # runtime that grows, and bounds what one first-seen script costs to parse (docs/reference.md,
    # "Security notes"). The server's setting and every offline front end default to it.
    max_script_bytes: int = 64 * 1024
    cache_bytes: int = 32 * 1024 * 1024


class Context(NamedTuple):
    """What the request says around the pod, and what a preview simulates.

    `namespace` None means the pod's own `metadata.namespace`. `namespace_labels` is given only
    by preview: it runs the namespace test (step 0) that the API server's namespaceSelector
    does in admission, under `mode`. `shadow` marks a request through `/mutate/shadow`. `base`
    is the JSON pointer of the pod inside the object the patch applies to (a workload's pod
    template). A named tuple rather than a frozen dataclass: one is built per review, four
    times faster.
    """

    operation: str = CREATE
    kind: Kind = POD_KIND
    namespace: str | None = None
    namespace_labels: Mapping[str, str] | None = None
    mode: Mode = Mode.OPT_IN
    shadow: bool = False
    base: str = ""


DEFAULT_OPTIONS: Final = Options()
DEFAULT_CONTEXT: Final = Context()


class TraceStep(NamedTuple):
    """One line of the selection trace: a step, its verdict, and what it saw."""

    step: str
    verdict: Verdict | Reason
    detail: str


@dataclass(frozen=True, slots=True)
class ContainerPlan:
    """What happens to one target-named container: `outcome` is LOSSY_ARGS when it is
    rewritten, and then `command`/`args` are its new fields (`args` None: removed; `keep_args`:
    left as they are; `drop_script`: they are the old ones but the first, the script that moved
    into `command`). `notes` say how args now arrive differently, for warnings."""

    name: str
    outcome: Reason
    detail: str
    command: tuple[str, ...] | None = None
    args: tuple[str, ...] | None = None
    rules: tuple[Rule, ...] = ()
    keep_args: bool = False
    drop_script: bool = False
    notes: tuple[str, ...] = ()
    # How many of its args now reach the server other than they did: for the owner's Event.
    changed: int = 0


NO_RULES: Final[Mapping[str, tuple[Rule, ...]]] = MappingProxyType({})
NO_CHANGES: Final[Mapping[str, int]] = MappingProxyType({})


@dataclass(frozen=True, slots=True)
class Decision:
    """The whole answer for one pod: action and reason, the selection trace, the patch, the
    warnings, and by container the rules applied and how many args changed delivery.
    Compared and hashed by value."""

    action: Action
    reason: Reason
    trace: tuple[TraceStep, ...]
    patch: tuple[PatchOp, ...] = ()
    warnings: tuple[str, ...] = ()
    rules: Mapping[str, tuple[Rule, ...]] = field(default_factory=lambda: NO_RULES)
    changed: Mapping[str, int] = field(default_factory=lambda: NO_CHANGES)
    # False for a decision too large to cache, or made from an outcome that does not last (a
    # parse that overran its budget): what is derived from it is not cached either.
    cacheable: bool = True

    def __hash__(self) -> int:
        # The rules and counts are read-only mappings, which have no hash; equal decisions
        # still hash alike without them, and equality compares them.
        return hash((self.action, self.reason, self.trace, self.patch, self.warnings))
