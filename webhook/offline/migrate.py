"""Runtime migration: the pod rewrite applied at the source (DESIGN §3, last paragraph; §2.1).

A ServingRuntime or ClusterServingRuntime, alone, inside an OpenShift Template or in any
`List`, has its head (`spec.containers`) and worker (`spec.workerSpec.containers`) containers
rewritten with the same `plan_container` admission uses, so the pods KServe builds from it
need no webhook. So does an LLMInferenceServiceConfig preset's `main` (leader, worker, prefill):
its Go template actions (`{{ … }}`) are masked while the script is parsed and kept byte for
byte. A multi-node LLMInferenceService whose `main` carries args of its own has them moved
into `VLLM_ADDITIONAL_ARGS`, each shell-quoted, since on KServe v0.16 and RHOAI up to 3.3 they
replace the preset's script (DESIGN §2.1); one set from `valueFrom` cannot take them, and the
change says so. `migrate_text` edits YAML in place: only the
changed `command` and `args` lines differ, comments and quoting elsewhere stay as written.

It is long because it is one job, a document's changes made once and written two ways (in
place, or whole where its YAML cannot be edited so), and the two must agree.
"""

from __future__ import annotations

import json
import re
import shlex
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any, Final

import jsonpatch
import yaml

from webhook.core import patch
from webhook.core.kinds import LLMISVC_KIND, PRESET_KIND, SOURCE_KINDS
from webhook.core.model import DEFAULT_OPTIONS, ContainerPlan, Options
from webhook.core.names import LLM_EXTRA_ARGS_ENV, Reason
from webhook.core.patch import PatchOp
from webhook.core.raw import at, items, mapping, string
from webhook.core.read import read_container
from webhook.core.rewrite import container_ops, plan_container
from webhook.core.view import container_view
from webhook.offline import documents, isolation, splice
from webhook.offline.documents import Path, objects_in
from webhook.offline.isolation import ParserFailed

# Where each kind keeps the container lists migrate looks at.
_RUNTIME_LISTS: Final = (("spec", "containers"), ("spec", "workerSpec", "containers"))
_LLM_LISTS: Final = (
    ("spec", "template", "containers"),
    ("spec", "worker", "containers"),
    ("spec", "prefill", "template", "containers"),
    ("spec", "prefill", "worker", "containers"),
)
# Which pods a container list makes: one name (a preset's `main`) can stand in several.
_ROLES: Final[Mapping[Path, str]] = {
    ("spec", "containers"): "head",
    ("spec", "workerSpec", "containers"): "worker",
    ("spec", "template", "containers"): "template",
    ("spec", "worker", "containers"): "worker",
    ("spec", "prefill", "template", "containers"): "prefill template",
    ("spec", "prefill", "worker", "containers"): "prefill worker",
}
_ACTION: Final = re.compile(r"\{\{.*?\}\}", re.DOTALL)
# The rule named for args moved into VLLM_ADDITIONAL_ARGS.
ARGS_TO_ENV: Final = "args-to-env"


@dataclass(frozen=True, slots=True)
class Change:
    """One rewritten container: its runtime (with the Template around it), the runtime's
    namespace ("" for a ClusterServingRuntime or none given), and the rules."""

    runtime: str
    container: str
    rules: tuple[str, ...]
    namespace: str = ""
    role: str = ""  # which pods it is in: head, worker, template, prefill worker...
    # Its document could not be edited in place and was written out again whole: its values
    # kept, its comments and quoting not.
    rewritten: bool = False
    # Why the rules could not be applied, the container left as it was ("": they were).
    left: str = ""

    @property
    def where(self) -> str:
        """The container with its role: `main (worker)`."""
        return f"{self.container} ({self.role})" if self.role else self.container

    def __str__(self) -> str:
        done = f"{self.runtime} {self.where}: {', '.join(self.rules)}"
        return f"{done}: {self.left}" if self.left else done


@dataclass(frozen=True, slots=True)
class Migration:
    """The rewritten document (None when nothing changes) and its changes, with those that
    could not be made (their `left` says why)."""

    document: Any
    changes: list[Change]


@dataclass(frozen=True, slots=True)
class _Target:
    """A container to change: its plan when the rewrite changes it (None: `ops` does; neither
    when its change says why it is left as it is)."""

    path: Path
    plan: ContainerPlan | None
    change: Change
    ops: tuple[PatchOp, ...] = ()


def _targets(document: Any, options: Options) -> Iterator[_Target]:
    for path, label, source in objects_in(document):
        kind = string(source.get("kind"))
        if kind not in SOURCE_KINDS:
            continue
        llm = kind in (PRESET_KIND, LLMISVC_KIND)
        names = options.llm_containers if llm else options.containers
        namespace = string(mapping(source.get("metadata")).get("namespace"))
        for list_path in _LLM_LISTS if llm else _RUNTIME_LISTS:
            containers = at(source, list_path)
            for index, container in enumerate(containers if isinstance(containers, list) else []):
                name = container.get("name") if isinstance(container, Mapping) else None
                if not isinstance(name, str) or name not in names:
                    continue
                where = (*path, *list_path, index)
                role = _ROLES[list_path]
                if kind == LLMISVC_KIND:
                    if _multi_node(source):
                        change = Change(label, name, (ARGS_TO_ENV,), namespace, role)
                        yield from _args_to_env(container, where, change)
                    continue
                plan = _plan(
                    container, index=index, name=name, llm=llm, label=label, options=options
                )
                if plan.outcome is Reason.LOSSY_ARGS:
                    change = Change(label, name, tuple(plan.rules), namespace, role)
                    yield _Target(where, plan, change)


def _plan(
    container: Mapping[str, Any], *, index: int, name: str, llm: bool, label: str, options: Options
) -> ContainerPlan:
    """The container's plan, with a preset's template actions masked while it is made."""
    masked, unmask = _masked(container)
    facts = read_container(container_view(masked), position=index, name=name, llm=llm)
    plan = plan_container(
        facts,
        rules=options.rules,
        max_script_bytes=options.max_script_bytes,
        rewrites=isolation.current().rewrite,
        runtime=True,
    )
    if plan.outcome is Reason.PARSER_FAILED:
        raise isolation.ParserFailed(
            f"{label}: container {name}: {isolation.PARSER_FAILED_MESSAGE}"
        )
    return replace(
        plan,
        command=None if plan.command is None else tuple(map(unmask, plan.command)),
        args=None if plan.args is None else tuple(map(unmask, plan.args)),
    )


def _masked(container: Mapping[str, Any]) -> tuple[Mapping[str, Any], Callable[[str], str]]:
    """The container with every `{{ … }}` of its command and args replaced by a word the
    shell reads as plain text, and the function that puts them back."""
    words = [
        w
        for w in (*items(container.get("command")), *items(container.get("args")))
        if isinstance(w, str)
    ]
    actions = sorted({a for word in words for a in _ACTION.findall(word)})
    if not actions:
        return container, lambda text: text
    taken = "\0".join(words)
    stem = next(f"MNW{n}T" for n in range(1000) if f"MNW{n}T" not in taken)
    marks = {action: f"{stem}{i}Z" for i, action in enumerate(actions)}
    back = {mark: action for action, mark in marks.items()}
    mark_pattern = re.compile(f"{stem}\\d+Z")

    def mask(value: Any) -> Any:
        if not isinstance(value, list):
            return value
        return [
            _ACTION.sub(lambda m: marks[m.group(0)], w) if isinstance(w, str) else w for w in value
        ]

    def unmask(text: str) -> str:
        return mark_pattern.sub(lambda m: back[m.group(0)], text)

    masked = {
        **container,
        "command": mask(container.get("command")),
        "args": mask(container.get("args")),
    }
    return {k: v for k, v in masked.items() if v is not None or k in container}, unmask


def _multi_node(service: Mapping[str, Any]) -> bool:
    """Whether an LLMInferenceService runs on several nodes (a LeaderWorkerSet), whose presets
    run a shell script in every release; a single node's may run vllm with no shell."""
    spec = mapping(service.get("spec"))
    return "worker" in spec or "worker" in mapping(spec.get("prefill"))


def additional_args(args: Sequence[object]) -> str:
    """The VLLM_ADDITIONAL_ARGS value from which a preset's eval yields each arg exactly: each
    one shell-quoted."""
    return " ".join(shlex.quote(str(arg)) for arg in args)


def _args_to_env(container: Mapping[str, Any], path: Path, change: Change) -> Iterator[_Target]:
    """Move a container's args into VLLM_ADDITIONAL_ARGS, each shell-quoted, so that the
    preset's eval yields each one exactly."""
    args = container.get("args")
    if container.get("command") is not None or not args or not isinstance(args, list):
        return
    quoted = additional_args(args)
    env = container.get("env")
    at = patch.pointer(*path)
    ops: list[PatchOp] = [patch.remove(at + "/args")]
    if not isinstance(env, list):
        ops.append(patch.add(at + "/env", [{"name": LLM_EXTRA_ARGS_ENV, "value": quoted}]))
    else:
        index = next(
            (i for i, item in enumerate(env) if mapping(item).get("name") == LLM_EXTRA_ARGS_ENV),
            None,
        )
        if index is None:
            ops.append(patch.add(at + "/env/-", {"name": LLM_EXTRA_ARGS_ENV, "value": quoted}))
        else:
            entry = mapping(env[index])
            why = _unextendable(entry)
            if why:
                yield _Target(path, None, replace(change, left=why))
                return
            # A block scalar's last line break would end eval's command before the args.
            before = string(entry.get("value")).rstrip("\n")
            value = f"{before} {quoted}" if before else quoted
            ops.append(patch.replace(f"{at}/env/{index}/value", value))
    yield _Target(path, None, change, tuple(ops))


def _unextendable(entry: Mapping[str, Any]) -> str:
    """Why the args cannot go after the value of a VLLM_ADDITIONAL_ARGS entry ("": they can)."""
    if "valueFrom" in entry:
        return (
            f"{LLM_EXTRA_ARGS_ENV} comes from valueFrom, which migrate cannot add the args to; "
            "move them there by hand"
        )
    if not isinstance(entry.get("value"), str):
        return (
            f"{LLM_EXTRA_ARGS_ENV} has no value for migrate to add the args to; move them "
            "there by hand"
        )
    return ""


def migrate_document(document: Any, *, options: Options = DEFAULT_OPTIONS) -> Migration:
    """Rewrite every container of the runtimes in one document whose args do not arrive."""
    targets = list(_targets(document, options))
    if all(target.change.left for target in targets):
        return Migration(None, [t.change for t in targets])
    return Migration(_applied(document, targets), [t.change for t in targets])


def _applied(document: Any, targets: list[_Target]) -> Any:
    """A copy of the document with every target's plan applied."""
    ops: list[PatchOp] = []
    for target in targets:
        if target.plan is None:
            ops.extend(target.ops)
        else:
            ops.extend(container_ops(target.plan, path=patch.pointer(*target.path)))
    return jsonpatch.apply_patch(document, patch.to_json(ops))


def _node_at(root: yaml.Node, path: Path) -> yaml.Node | None:
    node: yaml.Node | None = root
    for token in path:
        node = splice.child(node, token) if node is not None else None
    return node


def _edits(text: str, root: yaml.Node, target: _Target) -> list[splice.Edit] | None:
    """The in-place edits of one container, or None when they cannot be made in place."""
    if target.change.left:
        return []
    container = _node_at(root, target.path)
    if target.plan is None and container is not None:
        return _env_edits(text, container, target)
    command = splice.child(container, "command") if container is not None else None
    plan = target.plan
    if container is None or not isinstance(command, yaml.SequenceNode) or plan is None:
        return None
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


def _env_edits(text: str, container: yaml.Node, target: _Target) -> list[splice.Edit] | None:
    """The in-place edits of args moved into VLLM_ADDITIONAL_ARGS: `args` goes, and the
    variable is set where it was, added to `env`, or takes `env` the place of `args`."""
    [*_, last] = patch.to_json(target.ops)  # the env op, after the removal of args
    given = last["value"]
    value = given[0]["value"] if isinstance(given, list) else given
    value = value["value"] if isinstance(value, Mapping) else value
    if not isinstance(value, str):
        return None
    env = splice.child(container, "env")
    edits: list[splice.Edit | None]
    if last["op"] == "replace":
        entry = next(
            (
                item
                for item in (env.value if isinstance(env, yaml.SequenceNode) else [])
                if splice.child(item, "name") is not None
                and getattr(splice.child(item, "name"), "value", None) == LLM_EXTRA_ARGS_ENV
            ),
            None,
        )
        scalar = splice.child(entry, "value") if entry is not None else None
        edits = [
            splice.replace_list(text, container, "args", None),
            splice.replace_scalar(text, scalar, value) if scalar is not None else None,
        ]
    elif env is None:
        edits = [
            splice.replace_key_with_pairs(
                text, container, "args", new_key="env", name=LLM_EXTRA_ARGS_ENV, value=value
            )
        ]
    else:
        edits = [
            splice.replace_list(text, container, "args", None),
            splice.append_pair(text, container, "env", name=LLM_EXTRA_ARGS_ENV, value=value),
        ]
    return None if None in edits else [e for e in edits if e is not None]


def migrate_text(
    text: str, *, name: str = "<input>", options: Options = DEFAULT_OPTIONS
) -> tuple[str, list[Change]]:
    """The input with every runtime migrated, and the changes. YAML is edited in place; a
    document that cannot be is written out again whole. JSON comes back as JSON."""
    try:
        return _migrated(text, name=name, options=options)
    except ParserFailed as error:
        raise ParserFailed(f"{name}: {error}") from None


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
    for root, document in loaded:
        targets = list(_targets(_checked(document, name), options)) if document is not None else []
        migrated = _applied(document, targets) if targets else document
        expected.append(migrated)
        found = [_edits(text, root, target) for target in targets]
        if all(edit is not None for edit in found):
            changes.extend(target.change for target in targets)
            edits.extend(edit for each in found for edit in each or ())
            continue
        # Not editable in place: this document alone is written out again, its values kept.
        changes.extend(_rewritten(target.change) for target in targets)
        start, end = root.start_mark.index, root.end_mark.index
        dumped = documents.dump(migrated)
        # The document ends in a line break when its span holds one, as the text did.
        if not text[start:end].endswith("\n"):
            dumped = dumped.removesuffix("\n")
        edits.append(splice.Edit(start, end, dumped))
    if not changes:
        return text, []
    # An anchor's text is reached through each of its aliases too: edit it once.
    edited = splice.apply(text, list(dict.fromkeys(edits)))
    if _reread(edited, name) != expected:
        # Edits that do not read back as meant (two aliases of one anchor changed in different
        # ways): every document written out again, none of its values lost.
        edited = "---\n".join(documents.dump(d) for d in expected if d is not None)
        changes = [_rewritten(change) for change in changes]
    return edited, changes


def _rewritten(change: Change) -> Change:
    """The change, made in a document written out again whole (a container left is not)."""
    return change if change.left else replace(change, rewritten=True)


def _reread(edited: str, name: str) -> list[Any] | None:
    """The documents of the edited text; None when the edits made it unreadable (two aliases
    of one anchor changed in different ways)."""
    try:
        return [d for _, d in documents.load_positioned(edited, name=name)]
    except documents.InputError:
        return None


def _checked(document: Any, name: str) -> Any:
    if document is not None and not isinstance(document, Mapping):
        raise documents.InputError(f"{name}: {documents.not_an_object(document)}")
    return document
