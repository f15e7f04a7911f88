"""The shapes the policy compiler knows: each target-named container of the inputs (runtimes,
pods, workloads, presets), decided by the core as a pod of its family at each of the first
`POSITIONS` positions, its repair kept (`Compiled`); what the policy leaves to the webhook,
one line each."""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

from webhook.core import names
from webhook.core.evaluated import (
    policy_leaves,
)
from webhook.core.kinds import (
    LWS_KIND,
    LWS_TEMPLATES,
    PRESET_KIND,
    PRESET_TEMPLATES,
    RUNTIME_KINDS,
    TEMPLATE_PATHS,
)
from webhook.core.model import DEFAULT_OPTIONS, Decision, Options
from webhook.core.mutate import mutate
from webhook.core.names import Action, Reason
from webhook.core.pattern import ScriptPattern
from webhook.core.raw import at, items, mapping, string
from webhook.core.rewrite import shape_digest, split_shell
from webhook.core.view import pod_view
from webhook.offline import isolation, preset_patterns
from webhook.offline.documents import objects_in

# Container positions the policy covers: a status annotation is kept for each.
POSITIONS: Final = 8


@dataclass(frozen=True, slots=True)
class Shape:
    """One known container and what the core makes of it."""

    llm: bool
    name: str
    command: tuple[str, ...]
    script: str | None  # the legacy shape's args[0]; None when the script is in `command`
    needs_args: bool  # a Ray worker is a target only with args of its own
    evaluated: bool  # eval re-parsed its args, so the core unwraps the literal ones
    new_command: tuple[str, ...]
    # By position; then, for the legacy shape with no user args, for eval's with args unwrapped.
    statuses: tuple[str, ...]
    source: str
    # A preset's: its script word (at `word` of `command`, there "") as a pattern.
    pattern: ScriptPattern | None = None
    word: int = -1
    # A preset's: the longest text each hole of its pattern holds.
    holes: tuple[int, ...] = ()

    @property
    def digest(self) -> str:
        if self.pattern is not None:
            return pattern_digest(self)
        return shape_digest(name=self.name, command=self.command, script=self.script)


@dataclass(slots=True)
class Compiled:
    """The shapes the policy covers, and what it leaves to the webhook, one line each."""

    shapes: list[Shape] = field(default_factory=list)
    uncovered: list[str] = field(default_factory=list)
    # By digest, the other inputs a shape stands for: presets and workloads of one script.
    also: dict[str, list[str]] = field(default_factory=dict)
    # What the shapes were compiled for: the policy targets the same containers and namespace.
    options: Options = DEFAULT_OPTIONS

    def sources(self, shape: Shape) -> list[str]:
        """Every input the shape was compiled from, with its container's name."""
        return [f"{shape.source} {shape.name}", *self.also.get(shape.digest, [])]


def containers_in(
    document: Any, source: str, *, options: Options = DEFAULT_OPTIONS
) -> Iterator[tuple[bool | None, Any, str]]:
    """(LLM family, or None when the pod's labels say, container, where) for every container
    of the objects a document holds; a pod's containers in the family admission reads them in
    with `options`' target names."""
    for _, label, found in objects_in(document):
        yield from _object_containers(found, f"{source}: {label}", options)


def _object_containers(
    document: Mapping[str, Any], label: str, options: Options
) -> Iterator[tuple[bool | None, Any, str]]:
    """The containers of one object: a runtime's, a preset (a marker), a pod's or a
    workload's pod templates' (crowded ones a marker, and one before the containers of a
    template with several targets)."""
    kind = string(document.get("kind"))
    spec = mapping(document.get("spec"))
    if kind in RUNTIME_KINDS:
        for container in items(spec.get("containers")):
            yield False, container, label
        for container in items(mapping(spec.get("workerSpec")).get("containers")):
            yield False, container, label
        return
    if kind == PRESET_KIND:
        for path in PRESET_TEMPLATES:
            for container in items(mapping(at(spec, path)).get("containers")):
                if isinstance(container, Mapping):
                    yield True, {"preset": container}, f"{label} {'.'.join(path)}"
        return
    group = string(document.get("apiVersion")).rpartition("/")[0]
    if kind == "Pod":
        pod_templates: list[Any] = [document]
    elif (group, kind) == LWS_KIND:
        pod_templates = [at(document, path) for _, path in LWS_TEMPLATES]
    elif (group, kind) in TEMPLATE_PATHS:
        pod_templates = [at(document, TEMPLATE_PATHS[group, kind])]
    else:
        return
    for pod_template in pod_templates:
        labels = mapping(mapping(mapping(pod_template).get("metadata")).get("labels"))
        containers = items(mapping(mapping(pod_template).get("spec")).get("containers"))
        isvc = names.ISVC_LABEL in labels
        if not isvc and labels.get(names.PART_OF_LABEL) != names.LLMISVC_PART_OF:
            continue
        families = [
            (_family(labels, mapping(container).get("name"), options), container)
            for container in containers
        ]
        if len(containers) > POSITIONS:
            yield not isvc, {"crowded": len(containers)}, label
            continue
        targets = [string(mapping(c).get("name")) for llm, c in families if llm is not None]
        if len(targets) > 1:
            yield not isvc, {"targets": targets}, label
        for llm, container in families:
            yield (not isvc if llm is None else llm), container, label


def _family(labels: Mapping[str, Any], name: Any, options: Options) -> bool | None:
    """Whether admission reads a pod's container of this name as an LLMInferenceService's
    target (False: an InferenceService's; None: no target), as `webhook.core.read` does: an
    InferenceService's target names first, so a pod with both labels has both kinds."""
    isvc = names.ISVC_LABEL in labels
    llm = labels.get(names.PART_OF_LABEL) == names.LLMISVC_PART_OF
    if (isvc or not llm) and name in options.containers:
        return False
    if llm and name in options.llm_containers:
        return True
    return None


def _pod(
    container: Mapping[str, Any], *, llm: bool, position: int, args: Sequence[str] | None
) -> dict[str, Any]:
    """A pod of the family with `container` at `position` and `args` of its own."""
    labels = {names.PART_OF_LABEL: names.LLMISVC_PART_OF} if llm else {names.ISVC_LABEL: "p"}
    target = {key: container[key] for key in ("name", "command") if key in container}
    if args is not None:
        target["args"] = list(args)
    pads = [{"name": f"pad-{index}", "image": "i"} for index in range(position)]
    return {
        "metadata": {"name": "p", "labels": labels, "annotations": {"p": "p"}},
        "spec": {"containers": [*pads, target]},
    }


def _decided(pod: Mapping[str, Any], options: Options) -> Decision:
    """`mutate`, its scripts parsed under the run's isolation (a crash is `parser-failed`, as
    admission answers it)."""
    return mutate(pod_view(pod), options=options, rewrites=isolation.current().rewrite)


def _shape(llm: bool, container: Mapping[str, Any], source: str, options: Options) -> Shape | str:
    """The container's shape, or why the policy leaves it to the webhook (empty: the webhook
    leaves it alone too)."""
    name = string(container.get("name"))
    command = container.get("command")
    args = items(container.get("args"))
    if not isinstance(command, list) or not all(isinstance(w, str) for w in command):
        return ""
    split = split_shell(command)
    if split is None:
        return ""
    legacy = not split[1]
    if legacy and llm:
        return _script_replaced(container, source, options)
    if legacy and (not args or not isinstance(args[0], str)):
        return ""
    if any("{{" in word for word in (*command, *(args[:1] if legacy else []))):
        return f"{source} {name}: its script holds template placeholders the pod will not"
    script: str | None = args[0] if legacy else None
    launch = script if script is not None else split[1][0]
    given = [launch, "--x"] if legacy else ["--x"]
    bare = [launch] if legacy else None

    def decided(position: int, user_args: list[str] | None) -> Decision:
        pod = _pod(container, llm=llm, position=position, args=user_args)
        return _decided(pod, options)

    def status(decision: Decision) -> str:
        # The last op records the status annotation: the pods built here all have annotations.
        return str(decision.patch[-1].value)

    first = decided(0, given)
    if first.action is not Action.PATCHED:
        return ""
    bare_first = decided(0, bare)
    patched_bare = bare_first.action is Action.PATCHED
    statuses = [status(first), *(status(decided(p, given)) for p in range(1, POSITIONS))]
    if legacy and patched_bare:
        statuses += [status(bare_first), *(status(decided(p, bare)) for p in range(1, POSITIONS))]
    # Whether the core unwraps an arg that is only quoting around literal text: only when eval
    # re-parsed the args before the repair (not when it was handed `"$@"` already, whatever
    # became of the first arg), as the core decides it.
    quoted = decided(0, ["'--x'"])
    evaluated = any(op.path.endswith("/args") and op.op == "replace" for op in quoted.patch)
    if evaluated:
        # The patch then replaces the args too.
        statuses += [status(quoted), *(status(decided(p, ["'--x'"])) for p in range(1, POSITIONS))]
    return Shape(
        llm=llm,
        name=name,
        command=tuple(command),
        script=script,
        needs_args=not patched_bare,
        evaluated=evaluated,
        new_command=tuple(first.patch[0].value),
        statuses=tuple(statuses),
        source=source,
    )


def _script_replaced(container: Mapping[str, Any], source: str, options: Options) -> str:
    """Why the policy leaves the pods of an LLMInferenceService container whose script is in
    `args` (KServe v0.16, RHOAI 2.25 to 3.3; DESIGN §2.1): a service's args replace the script,
    and the webhook's one change to such a pod, an annotation naming the problem, is a report
    the policy does not make. Empty when the webhook leaves such a pod alone too."""
    name = string(container.get("name"))
    replaced = _decided(_pod(container, llm=True, position=0, args=["--x"]), options)
    if replaced.reason is not Reason.SCRIPT_REPLACED or not replaced.patch:
        return ""
    return (
        f"{source} {name}: an LLMInferenceService's args replace its script in args, so the "
        f"webhook marks such pods {replaced.reason} with {names.PROBLEM_ANNOTATION}, which the "
        "policy does not write"
    )


def compile_shapes(
    documents: Sequence[tuple[str, Any]], *, options: Options | None = None
) -> Compiled:
    """The shapes of every target-named container in the documents, each known once."""
    options = options or Options()
    compiled = Compiled(options=options)
    seen: set[tuple[bool, str]] = set()
    for source, document in documents:
        for llm, container, label in containers_in(document, source, options=options):
            if llm is None or not isinstance(container, Mapping):
                continue
            if container.get("targets"):
                compiled.uncovered.append(
                    f"{label}: {len(container['targets'])} target containers "
                    f"({', '.join(container['targets'])}), and the policy repairs a pod with one"
                )
                continue
            if container.get("crowded"):
                compiled.uncovered.append(
                    f"{label}: {container['crowded']} containers, past the {POSITIONS} the "
                    "policy covers"
                )
                continue
            if "preset" in container:
                preset = container["preset"]
                if any("{{" in str(word) for word in items(preset.get("command"))):
                    if preset.get("name") in options.llm_containers:
                        _add(compiled, seen, _pattern_shape(preset, label, options))
                    continue
                container = preset  # noqa: PLW2901 - a preset's exact script is as a pod's
            name = container.get("name")
            if name not in (options.llm_containers if llm else options.containers):
                continue
            shape = _shape(llm, container, label, options)
            if isinstance(shape, str):
                if shape:
                    compiled.uncovered.append(shape)
                continue
            args = items(container.get("args"))
            if shape.evaluated and policy_leaves([str(arg) for arg in args]):
                compiled.uncovered.append(
                    f"{label} {name}: an arg holds a newline, and the policy leaves such eval "
                    "pods to the webhook"
                )
                continue
            _add(compiled, seen, shape)
    _fold_renderings(compiled)
    return compiled


def _add(compiled: Compiled, seen: set[tuple[bool, str]], shape: Shape | str) -> None:
    """A shape the compiled ones lack, or why the policy leaves a container to the webhook."""
    if isinstance(shape, str):
        if shape:
            compiled.uncovered.append(shape)
        return
    if (shape.llm, shape.digest) not in seen:
        seen.add((shape.llm, shape.digest))
        compiled.shapes.append(shape)
    elif shape.pattern is not None:
        compiled.also.setdefault(shape.digest, []).append(f"{shape.source} {shape.name}")


def _fold_renderings(compiled: Compiled) -> None:
    """Drop each exact LLM shape (a rendered workload's) that a compiled preset repairs
    alike, so that a policy compiled from presets and their workloads holds each script once."""
    found = [shape for shape in compiled.shapes if shape.pattern is not None]
    kept = []
    for shape in compiled.shapes:
        by = next((t for t in found if shape.llm and _renders(t, shape)), None)
        if by is None:
            kept.append(shape)
        else:
            compiled.also.setdefault(by.digest, []).append(f"{shape.source} {shape.name}")
    compiled.shapes = kept


def _renders(preset: Shape, shape: Shape) -> bool:
    """Whether the exact `shape` is a rendering of `preset` that it repairs alike."""
    assert preset.pattern is not None
    facts = (preset.name, preset.needs_args, preset.evaluated, preset.statuses)
    if shape.script is not None or facts != (
        shape.name,
        shape.needs_args,
        shape.evaluated,
        shape.statuses,
    ):
        return False
    word = preset.word
    command, new = list(shape.command), list(shape.new_command)
    if not len(command) == len(new) == len(preset.command):
        return False
    script, command[word] = command[word], ""
    repaired, new[word] = new[word], ""
    return tuple(command) == tuple(new) == preset.command and (
        preset.pattern.repaired(script) == repaired
    )


def pattern_digest(shape: Shape) -> str:
    """What names a preset's compiled script: its container's name, command and pattern."""
    assert shape.pattern is not None
    pattern = shape.pattern
    text = json.dumps([shape.name, shape.command, pattern.runs, pattern.gaps])
    return shape_digest(name=shape.name, command=(), script=text)


def _pattern_shape(container: Mapping[str, Any], label: str, options: Options) -> Shape | str:
    """A preset's container whose script is a template: its shape for every service, or why
    the policy leaves it to the webhook (empty: the webhook leaves it alone too)."""
    name = string(container.get("name"))
    command = container.get("command")
    if not isinstance(command, list) or not all(isinstance(w, str) for w in command):
        return ""
    words = [index for index, word in enumerate(command) if "{{" in word]
    if len(words) != 1 or any("{{" in str(arg) for arg in items(container.get("args"))):
        return f"{label} {name}: template actions outside one script word"
    word = words[0]

    def repair(script: str) -> tuple[Any, str] | None:
        rendered = [*command[:word], script, *command[word + 1 :]]
        shape = _shape(True, {"name": name, "command": rendered}, label, options)
        if isinstance(shape, str) or len(shape.new_command) != len(rendered):
            return None
        others = (*shape.new_command[:word], *shape.new_command[word + 1 :])
        return (shape.needs_args, shape.evaluated, shape.statuses, others), shape.new_command[word]

    found = preset_patterns.compiled(command[word], repair, max_bytes=options.max_script_bytes)
    if isinstance(found, str):
        return f"{label} {name}: {found}" if found else ""
    pattern, holes, (needs_args, evaluated, statuses, _) = found
    blank = (*command[:word], "", *command[word + 1 :])
    return Shape(
        llm=True,
        name=name,
        command=blank,
        script=None,
        needs_args=needs_args,
        evaluated=evaluated,
        new_command=blank,
        statuses=statuses,
        source=label,
        pattern=pattern,
        word=word,
        holes=holes,
    )
