"""Runtime migration: the pod rewrite applied at the source (DESIGN §3, last paragraph).

A ServingRuntime or ClusterServingRuntime, alone or inside an OpenShift Template, has its head
(`spec.containers`) and worker (`spec.workerSpec.containers`) containers rewritten with the same
`plan_container` admission uses, so the pods KServe builds from it need no webhook.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Final

import jsonpatch

from webhook.core import patch
from webhook.core.model import DEFAULT_OPTIONS, Options
from webhook.core.names import Reason
from webhook.core.patch import PatchOp
from webhook.core.raw import mapping, string
from webhook.core.read import read_container
from webhook.core.rewrite import container_ops, plan_container

RUNTIME_KINDS: Final = frozenset({"ServingRuntime", "ClusterServingRuntime"})


@dataclass(frozen=True, slots=True)
class Migration:
    """The rewritten document (None when nothing changes) and one line per change."""

    document: Any
    changes: list[str]


def _runtimes(
    document: Any, path: tuple[str | int, ...] = ()
) -> Iterator[tuple[tuple[str | int, ...], Mapping[str, Any]]]:
    if not isinstance(document, Mapping):
        return
    kind = document.get("kind")
    if kind in RUNTIME_KINDS:
        yield path, document
    elif kind == "Template" and isinstance(document.get("objects"), list):
        for index, item in enumerate(document["objects"]):
            yield from _runtimes(item, (*path, "objects", index))


def _container_lists(spec: Mapping[str, Any]) -> Iterator[tuple[tuple[str, ...], list[Any]]]:
    if isinstance(spec.get("containers"), list):
        yield ("spec", "containers"), spec["containers"]
    worker = spec.get("workerSpec")
    if isinstance(worker, Mapping) and isinstance(worker.get("containers"), list):
        yield ("spec", "workerSpec", "containers"), worker["containers"]


def migrate_document(document: Any, *, options: Options = DEFAULT_OPTIONS) -> Migration:
    """Rewrite every legacy container of the runtimes in one document."""
    ops: list[PatchOp] = []
    changes: list[str] = []
    for path, runtime in _runtimes(document):
        spec = runtime.get("spec")
        if not isinstance(spec, Mapping):
            continue
        name = string(mapping(runtime.get("metadata")).get("name"))
        for list_path, containers in _container_lists(spec):
            for index, container in enumerate(containers):
                cname = container.get("name") if isinstance(container, Mapping) else None
                if not isinstance(cname, str) or cname not in options.containers:
                    continue
                facts = read_container(container, position=index, name=cname)
                plan = plan_container(facts, rules=options.rules, runtime=True)
                if plan.outcome is not Reason.LEGACY_SHAPE:
                    continue
                ops.extend(container_ops(plan, path=patch.pointer(*path, *list_path, index)))
                changes.append(f"{runtime['kind']}/{name} {cname}: {', '.join(plan.rules)}")
    if not ops:
        return Migration(None, [])
    return Migration(jsonpatch.apply_patch(document, patch.to_json(ops)), changes)
