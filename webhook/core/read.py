"""Reading a pod: what a decision reads of a pod (its typed view) and its request, gathered into
one small hashable record.

`read_pod` is the only place the core reads a pod for admission. Selection, the container
rewrites, the patch and the status are functions of these facts only, so equal facts always
get the same decision and it can be computed once. The pods of one runtime differ only in what
no decision reads (names, uids, managedFields, env), which makes almost every review on a busy
cluster a cache hit.
"""

from __future__ import annotations

from typing import Final, NamedTuple

from webhook.core.model import Context, Kind, Options
from webhook.core.names import (
    INJECT_LABEL,
    ISVC_LABEL,
    LLMISVC_PART_OF,
    MIRROR_ANNOTATION,
    PART_OF_LABEL,
    PROBLEM_ANNOTATION,
    STATUS_ANNOTATION,
    Mode,
    Rule,
)
from webhook.core.raw import is_string_list, mapping, string, text
from webhook.core.view import ContainerView, MetadataView, PodView

_NO_METADATA: Final = MetadataView()


class ContainerFacts(NamedTuple):
    """One target-named container.

    `command` None: the field is absent. `typed` False: command or args is there but is not
    a list of strings, and neither is recorded. `llm` marks a container of an
    LLMInferenceService pod (DESIGN §2.1), named in `Options.llm_containers`.
    """

    position: int
    name: str
    typed: bool
    command: tuple[str, ...] | None
    args: tuple[str, ...] | None
    llm: bool = False


class PodFacts(NamedTuple):
    """The request around the pod, the installation's namespace, and the few pod fields that
    selection and the rewrite test.

    Label values are kept as text (`None` when absent): Kubernetes only sends strings, and
    `str` renders any other JSON value as the trace would have shown it. A named tuple, not a
    dataclass: it is built, hashed and compared on every review, several times faster.
    """

    operation: str
    kind: Kind
    namespace: str
    namespace_labels_known: bool
    namespace_inject: str | None
    mode: Mode
    shadow: bool
    base: str
    own_namespace: str
    rules: frozenset[Rule]
    max_script_bytes: int
    size: int
    has_metadata: bool
    has_annotations: bool
    mirror: bool
    status: str | None
    problem: str | None
    inject: str | None
    isvc: str | None
    llm: bool
    containers: tuple[ContainerFacts, ...]


def read_container(
    container: ContainerView, *, position: int, name: str, llm: bool = False
) -> ContainerFacts:
    command, args = container.command, container.args
    if command is None:
        return ContainerFacts(position, name, typed=True, command=None, args=None, llm=llm)
    if not is_string_list(command) or (args is not None and not is_string_list(args)):
        return ContainerFacts(position, name, typed=False, command=None, args=None, llm=llm)
    return ContainerFacts(
        position,
        name,
        typed=True,
        command=tuple(command),
        args=None if args is None else tuple(args),
        llm=llm,
    )


def _size(container: ContainerFacts) -> int:
    """Characters in a container's command and args: what a cached decision holds of it."""
    return sum(map(len, container.command or ())) + sum(map(len, container.args or ()))


def read_pod(pod: PodView, *, context: Context, options: Options) -> PodFacts:
    """Read the pod once, with the request and installation around it."""
    metadata = pod.metadata or _NO_METADATA
    raw_annotations = metadata.annotations
    annotations = mapping(raw_annotations)
    labels = mapping(metadata.labels)
    status = annotations.get(STATUS_ANNOTATION)
    problem = annotations.get(PROBLEM_ANNOTATION)
    containers = pod.spec.containers if pod.spec is not None else None
    namespace_labels = context.namespace_labels
    isvc = text(labels.get(ISVC_LABEL))
    llm = labels.get(PART_OF_LABEL) == LLMISVC_PART_OF
    # An InferenceService pod's targets first: a pod with both labels is read as one.
    targets = options.containers if isvc is not None or not llm else ()
    llm_targets = options.llm_containers if llm else ()
    found = []
    for index, container in enumerate(containers or ()):
        name = container.name
        if not isinstance(name, str):
            continue
        if name in targets:
            found.append(read_container(container, position=index, name=name))
        elif name in llm_targets:
            found.append(read_container(container, position=index, name=name, llm=True))
    return PodFacts(
        operation=context.operation,
        kind=context.kind,
        namespace=(string(metadata.namespace) if context.namespace is None else context.namespace),
        namespace_labels_known=namespace_labels is not None,
        namespace_inject=None if namespace_labels is None else namespace_labels.get(INJECT_LABEL),
        mode=context.mode,
        shadow=context.shadow,
        base=context.base,
        own_namespace=options.own_namespace,
        rules=options.rules,
        max_script_bytes=options.max_script_bytes,
        size=sum(_size(container) for container in found),
        has_metadata=pod.metadata is not None,
        has_annotations=isinstance(raw_annotations, dict),
        mirror=MIRROR_ANNOTATION in annotations,
        status=status if isinstance(status, str) else None,
        problem=problem if isinstance(problem, str) else None,
        inject=text(labels.get(INJECT_LABEL)),
        isvc=isvc,
        llm=llm,
        containers=tuple(found),
    )
