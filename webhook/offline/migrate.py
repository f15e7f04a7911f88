"""Runtime migration: the pod rewrite applied at the source (DESIGN §3, last paragraph).

A ServingRuntime or ClusterServingRuntime, alone, inside an OpenShift Template or in any
`List`, has its head (`spec.containers`) and worker (`spec.workerSpec.containers`) containers
rewritten with the same `plan_container` admission uses, so the pods KServe builds from it
need no webhook. `migrate_text` edits YAML in place: only the changed `command` and `args`
lines differ, comments and quoting elsewhere stay as written.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from functools import partial
from typing import Any, Final

import jsonpatch
import yaml

from webhook.core import patch
from webhook.core.model import DEFAULT_OPTIONS, ContainerPlan, Options
from webhook.core.names import Reason
from webhook.core.patch import PatchOp
from webhook.core.raw import display_name, mapping, string
from webhook.core.read import read_container
from webhook.core.rewrite import container_ops, plan_container
from webhook.offline import documents, splice
from webhook.offline.sandbox import ParserCrashed, resolved

RUNTIME_KINDS: Final = frozenset({"ServingRuntime", "ClusterServingRuntime"})
Path = tuple[str | int, ...]


@dataclass(frozen=True, slots=True)
class Change:
    """One rewritten container: its runtime (with the Template around it), the runtime's
    namespace ("" for a ClusterServingRuntime or none given), and the rules."""

    runtime: str
    container: str
    rules: tuple[str, ...]
    namespace: str = ""

    def __str__(self) -> str:
        return f"{self.runtime} {self.container}: {', '.join(self.rules)}"


@dataclass(frozen=True, slots=True)
class Migration:
    """The rewritten document (None when nothing changes) and its changes."""

    document: Any
    changes: list[Change]


@dataclass(frozen=True, slots=True)
class _Target:
    path: Path
    plan: ContainerPlan
    change: Change


def _label(obj: Mapping[str, Any]) -> str:
    return f"{obj.get('kind')}/{display_name(obj)}"


def _runtimes(document: Any, path: Path = (), parent: str = "") -> Iterator[tuple[Path, str, Any]]:
    """(path, label, runtime) for every runtime in a document, Templates and Lists walked."""
    if not isinstance(document, Mapping):
        return
    kind = document.get("kind")
    if kind in RUNTIME_KINDS:
        yield path, f"{parent}{_label(document)}", document
    elif kind == "Template" and isinstance(document.get("objects"), list):
        for index, item in enumerate(document["objects"]):
            yield from _runtimes(item, (*path, "objects", index), f"{_label(document)} ")
    elif (
        isinstance(kind, str) and kind.endswith("List") and isinstance(document.get("items"), list)
    ):
        for index, item in enumerate(document["items"]):
            yield from _runtimes(item, (*path, "items", index), parent)


def _targets(document: Any, options: Options) -> Iterator[_Target]:
    for path, label, runtime in _runtimes(document):
        lists = [("spec", "containers"), ("spec", "workerSpec", "containers")]
        for list_path in lists:
            containers: Any = runtime
            for token in list_path:
                containers = mapping(containers).get(token)
            for index, container in enumerate(containers if isinstance(containers, list) else []):
                name = container.get("name") if isinstance(container, Mapping) else None
                if not isinstance(name, str) or name not in options.containers:
                    continue
                facts = read_container(container, position=index, name=name)
                plan = resolved(
                    partial(
                        plan_container,
                        facts,
                        rules=options.rules,
                        max_script_bytes=options.max_script_bytes,
                        runtime=True,
                        parse=options.parse_scripts,
                    ),
                    what=label,
                )
                if plan.outcome is Reason.LOSSY_ARGS:
                    namespace = string(mapping(runtime.get("metadata")).get("namespace"))
                    change = Change(label, name, tuple(plan.rules), namespace)
                    yield _Target((*path, *list_path, index), plan, change)


def migrate_document(document: Any, *, options: Options = DEFAULT_OPTIONS) -> Migration:
    """Rewrite every container of the runtimes in one document whose args do not arrive."""
    targets = list(_targets(document, options))
    if not targets:
        return Migration(None, [])
    return Migration(_applied(document, targets), [t.change for t in targets])


def _applied(document: Any, targets: list[_Target]) -> Any:
    """A copy of the document with every target's plan applied."""
    ops: list[PatchOp] = []
    for target in targets:
        ops.extend(container_ops(target.plan, path=patch.pointer(*target.path)))
    return jsonpatch.apply_patch(document, patch.to_json(ops))


def _node_at(root: yaml.Node, path: Path) -> yaml.Node | None:
    node: yaml.Node | None = root
    for token in path:
        node = splice.child(node, token) if node is not None else None
    return node


def _edits(text: str, root: yaml.Node, target: _Target) -> list[splice.Edit] | None:
    """The in-place edits of one container, or None when they cannot be made in place."""
    container = _node_at(root, target.path)
    command = splice.child(container, "command") if container is not None else None
    if container is None or not isinstance(command, yaml.SequenceNode):
        return None
    plan = target.plan
    new_command = list(plan.command or ())
    # The shell and its options keep their text, and so does a $0 that was already there.
    kept: list[yaml.Node | None] = [*command.value[: len(new_command) - 2], None, None]
    if len(command.value) == len(new_command) and plan.keep_args:
        kept[-1] = command.value[-1]
    edits = [splice.replace_list(text, container, "command", new_command, kept=kept)]
    if not plan.keep_args:
        args = splice.child(container, "args")
        moved = list(args.value[1:]) if isinstance(args, yaml.SequenceNode) else []
        items = list(plan.args) if plan.args is not None else None
        edits.append(splice.replace_list(text, container, "args", items, kept=moved))
    return None if None in edits else [e for e in edits if e is not None]


def migrate_text(
    text: str, *, name: str = "<input>", options: Options = DEFAULT_OPTIONS
) -> tuple[str, list[Change]]:
    """The input with every runtime migrated, and the changes. YAML is edited in place; a
    document that cannot be is written out again whole. JSON comes back as JSON."""
    try:
        return _migrated(text, name=name, options=options)
    except ParserCrashed as error:
        raise ParserCrashed(f"{name}: {error}") from None


def _migrated(text: str, *, name: str, options: Options) -> tuple[str, list[Change]]:
    if text.lstrip().startswith(("{", "[")):
        [document] = documents.load(text, name=name)
        migration = migrate_document(_checked(document, name), options=options)
        if migration.document is None:
            return text, []
        return json.dumps(
            migration.document, indent=2, ensure_ascii=False
        ) + "\n", migration.changes
    loaded = documents.load_positioned(text, name=name)
    if not any(document is not None for _, document in loaded):
        raise documents.InputError(f"{name}: the input holds no Kubernetes object")
    edits: list[splice.Edit] = []
    changes: list[Change] = []
    expected: list[Any] = []
    whole = False
    for root, document in loaded:
        targets = list(_targets(_checked(document, name), options)) if document is not None else []
        expected.append(_applied(document, targets) if targets else document)
        for target in targets:
            changes.append(target.change)
            found = _edits(text, root, target)
            whole = whole or found is None
            edits.extend(found or ())
    if not changes:
        return text, []
    edited = splice.apply(text, edits) if not whole else ""
    if whole or [d for _, d in documents.load_positioned(edited, name=name)] != expected:
        # Not editable in place: every document written out again, none of its values lost.
        edited = "---\n".join(documents.dump(d) for d in expected if d is not None)
    return edited, changes


def _checked(document: Any, name: str) -> Any:
    if document is not None and not isinstance(document, Mapping):
        kind = type(document).__name__
        raise documents.InputError(f"{name}: expected a Kubernetes object, found a {kind}")
    return document
