"""What a decision reads of a pod and its request, gathered into one small hashable record.

`mutate` reads the raw pod here and nowhere else. Selection, the container plans, the patch
and the status are functions of these facts and the installation's options only, so equal
facts always get the same decision and it can be computed once. The pods of one runtime
differ only in what no decision reads (names, uids, managedFields, env), which makes almost
every review on a busy cluster a cache hit.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, NamedTuple

from webhook import keys
from webhook.raw import mapping, string, string_list


class ContainerFacts(NamedTuple):
    """One target-named container.

    `command` None: the field is absent. `typed` False: command or args is there but is not
    a list of strings, and neither is recorded.
    """

    position: int
    name: str
    typed: bool
    command: tuple[str, ...] | None
    args: tuple[str, ...] | None


class PodFacts(NamedTuple):
    """The request around the pod, the installation's namespace, and the few pod fields that
    selection and the rewrite test.

    Label values are kept as text (`None` when absent): Kubernetes only sends strings, and
    `str` renders any other JSON value as the trace would have shown it. Named tuples, not
    dataclasses: they are built, hashed and compared on every review, several times faster.
    """

    operation: str
    kind: tuple[str | None, str | None, str | None]
    namespace: str
    namespace_labels_known: bool
    namespace_inject: str | None
    mode: str
    shadow: bool
    base: str
    own_namespace: str
    has_metadata: bool
    has_annotations: bool
    mirror: bool
    status: str | None
    inject: str | None
    isvc: str | None
    containers: tuple[ContainerFacts, ...]


def container_facts(container: Mapping[str, Any], *, position: int, name: str) -> ContainerFacts:
    command, args = container.get("command"), container.get("args")
    if command is None:
        return ContainerFacts(position, name, True, None, None)
    if not string_list(command) or (args is not None and not string_list(args)):
        return ContainerFacts(position, name, False, None, None)
    return ContainerFacts(
        position, name, True, tuple(command), None if args is None else tuple(args)
    )


def _text(value: object) -> str | None:
    return value if value is None or isinstance(value, str) else str(value)


def pod_facts(
    pod: Mapping[str, Any],
    *,
    operation: str,
    kind: Mapping[str, Any],
    namespace: str | None,
    namespace_labels: Mapping[str, str] | None,
    mode: str,
    shadow: bool,
    base: str,
    targets: tuple[str, ...],
    own_namespace: str,
) -> PodFacts:
    """Read the pod once. `namespace` None means the pod's own `metadata.namespace`."""
    raw_metadata = pod.get("metadata")
    metadata = mapping(raw_metadata)
    raw_annotations = metadata.get("annotations")
    annotations = mapping(raw_annotations)
    labels = mapping(metadata.get("labels"))
    status = annotations.get(keys.STATUS_ANNOTATION)
    containers = mapping(pod.get("spec")).get("containers")
    namespace_inject = None if namespace_labels is None else namespace_labels.get(keys.INJECT_LABEL)
    found = []
    for index, container in enumerate(containers if isinstance(containers, list) else ()):
        name = container.get("name") if isinstance(container, dict) else None
        if isinstance(name, str) and name in targets:
            found.append(container_facts(container, position=index, name=name))
    return PodFacts(
        operation,
        (_text(kind.get("group")), _text(kind.get("version")), _text(kind.get("kind"))),
        string(metadata.get("namespace")) if namespace is None else namespace,
        namespace_labels is not None,
        namespace_inject,
        mode,
        shadow,
        base,
        own_namespace,
        isinstance(raw_metadata, dict),
        isinstance(raw_annotations, dict),
        keys.MIRROR_ANNOTATION in annotations,
        status if isinstance(status, str) else None,
        _text(labels.get(keys.INJECT_LABEL)),
        _text(labels.get(keys.ISVC_LABEL)),
        tuple(found),
    )
