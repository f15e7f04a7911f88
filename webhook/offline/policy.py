"""The policy compiler: the repair of known scripts as a MutatingAdmissionPolicy that the API
server runs itself (DESIGN §7, policy mode): no server, no certificates, no fail-open window.

Each container the inputs hold (runtimes, pods, workloads) is a *shape*: its family
(InferenceService or LLMInferenceService pod), name, `command` and, for the legacy shape, the
script in `args[0]`. The core decides a pod of that shape; the policy matches the shape exactly
and applies the core's result, precomputed: the new `command`, the script's removal from `args`,
and the status annotation (whose digest depends on the container's position, so one is kept for
each of the first `POSITIONS`).

A preset (LLMInferenceServiceConfig) is compiled once for every LLMInferenceService: its script
is a template (`webhook.offline.templates`) that the policy reads each pod's script against, in
CEL, as `webhook.core.template` reads it, and the repair is a list of edits inside the
template's literal text. A rendered workload the preset already repairs adds nothing.

A pod the policy does not recognise is left alone, so it may cover fewer pods than the webhook,
never differently. It leaves to the webhook:

- a pod with more than one container of a target name, or more than `POSITIONS` containers;
- an eval-shape pod with a newline in an arg (an arg that is only quoting around literal text
  is replaced by the word eval makes of it, as the webhook does, with the core's patterns);
- every script not given, and a preset whose template this compiler does not know (the reason
  is given).

The policies must fit kube-apiserver's limits (`Figures`): `split` spreads the shapes across as
many as they need. The same expressions are written with `JSONPatch{…}` for the API server or
with plain maps, so that they can be evaluated outside it (the tests do, with cel-python).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

from webhook import __version__
from webhook.core import names
from webhook.core.evaluated import (
    KUBELET_PATTERN,
    LITERAL_PATTERN,
    POLICY_LEAVES,
    SEGMENT_PATTERN,
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
from webhook.core.names import Action, Mode
from webhook.core.patch import pointer
from webhook.core.raw import at, mapping, string
from webhook.core.rewrite import shape_digest, split_shell
from webhook.core.template import Template
from webhook.core.view import pod_view
from webhook.offline import isolation, templates
from webhook.offline.documents import objects_in

POLICY_NAME: Final = "multinode-webhook"
# What kube-apiserver accepts: code points in one CEL expression, the CEL cost of one
# evaluation of an expression, and the bytes of one stored object (etcd's default request
# limit, 1.5 MiB).
EXPRESSION_LIMIT: Final = 100_000
COST_LIMIT: Final = 1_000_000
OBJECT_LIMIT: Final = 1_572_864
SHAPES_ANNOTATION: Final = names.POLICY_SHAPES_ANNOTATION
PRESETS_ANNOTATION: Final = names.POLICY_PRESETS_ANNOTATION
API_VERSION: Final = "admissionregistration.k8s.io/v1"
# Container positions the policy covers: a status annotation is kept for each.
POSITIONS: Final = 8
_STATUS_PATH: Final = pointer("metadata", "annotations", names.STATUS_ANNOTATION)


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
    # A preset's: its script word (at `word` of `command`, there "") as a template.
    template: Template | None = None
    word: int = -1
    # A preset's: the longest text each hole of its template holds.
    holes: tuple[int, ...] = ()

    @property
    def digest(self) -> str:
        if self.template is not None:
            return template_digest(self)
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
    kind = document.get("kind")
    spec = mapping(document.get("spec"))
    if kind in RUNTIME_KINDS:
        for container in spec.get("containers") or []:
            yield False, container, label
        for container in mapping(spec.get("workerSpec")).get("containers") or []:
            yield False, container, label
        return
    if kind == PRESET_KIND:
        for path in PRESET_TEMPLATES:
            for container in mapping(at(spec, path)).get("containers") or []:
                if isinstance(container, Mapping):
                    yield True, {"preset": container}, f"{label} {'.'.join(path)}"
        return
    group = string(document.get("apiVersion")).rpartition("/")[0]
    if kind == "Pod":
        templates: list[Any] = [document]
    elif (group, kind) == LWS_KIND:
        templates = [at(document, path) for _, path in LWS_TEMPLATES]
    elif (group, kind) in TEMPLATE_PATHS:
        templates = [at(document, TEMPLATE_PATHS[group, string(kind)])]
    else:
        return
    for template in templates:
        labels = mapping(mapping(mapping(template).get("metadata")).get("labels"))
        containers = mapping(mapping(template).get("spec")).get("containers") or []
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
    args = container.get("args") or []
    if not isinstance(command, list) or not all(isinstance(w, str) for w in command):
        return ""
    split = split_shell(command)
    if split is None:
        return ""
    legacy = not split[1]
    if legacy and (llm or not args or not isinstance(args[0], str)):
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
                if any("{{" in str(word) for word in preset.get("command") or []):
                    if preset.get("name") in options.llm_containers:
                        _add(compiled, seen, _template_shape(preset, label, options))
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
            args = container.get("args") or []
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
    elif shape.template is not None:
        compiled.also.setdefault(shape.digest, []).append(f"{shape.source} {shape.name}")


def _fold_renderings(compiled: Compiled) -> None:
    """Drop each exact LLM shape (a rendered workload's) that a compiled preset repairs
    alike, so that a policy compiled from presets and their workloads holds each script once."""
    found = [shape for shape in compiled.shapes if shape.template is not None]
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
    assert preset.template is not None
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
        preset.template.repaired(script) == repaired
    )


def template_digest(shape: Shape) -> str:
    """What names a preset's compiled script: its container's name, command and template."""
    assert shape.template is not None
    template = shape.template
    text = json.dumps([shape.name, shape.command, template.runs, template.gaps])
    return shape_digest(name=shape.name, command=(), script=text)


def _template_shape(container: Mapping[str, Any], label: str, options: Options) -> Shape | str:
    """A preset's container whose script is a template: its shape for every service, or why
    the policy leaves it to the webhook (empty: the webhook leaves it alone too)."""
    name = string(container.get("name"))
    command = container.get("command")
    if not isinstance(command, list) or not all(isinstance(w, str) for w in command):
        return ""
    words = [index for index, word in enumerate(command) if "{{" in word]
    if len(words) != 1 or any("{{" in str(arg) for arg in container.get("args") or []):
        return f"{label} {name}: template actions outside one script word"
    word = words[0]

    def repair(script: str) -> tuple[Any, str] | None:
        rendered = [*command[:word], script, *command[word + 1 :]]
        shape = _shape(True, {"name": name, "command": rendered}, label, options)
        if isinstance(shape, str) or len(shape.new_command) != len(rendered):
            return None
        others = (*shape.new_command[:word], *shape.new_command[word + 1 :])
        return (shape.needs_args, shape.evaluated, shape.statuses, others), shape.new_command[word]

    found = templates.compiled(command[word], repair, max_bytes=options.max_script_bytes)
    if isinstance(found, str):
        return f"{label} {name}: {found}" if found else ""
    template, holes, (needs_args, evaluated, statuses, _) = found
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
        template=template,
        word=word,
        holes=holes,
    )


def _cel(value: Any) -> str:
    """A CEL literal of a string, a list or a bool."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    return "[" + ", ".join(_cel(item) for item in value) + "]"


Patch = Callable[..., str]


def jsonpatch_message(op: str, path: str, value: str | None = None) -> str:
    """A `JSONPatch{…}` for the API server."""
    fields = [f"op: {op}", f"path: {path}", *([f"value: {value}"] if value else [])]
    return "JSONPatch{" + ", ".join(fields) + "}"


def jsonpatch_map(op: str, path: str, value: str | None = None) -> str:
    """The same patch as a plain map, for an evaluator without Kubernetes' CEL types."""
    fields = [f'"op": {op}', f'"path": {path}', *([f'"value": {value}'] if value else [])]
    return "{" + ", ".join(fields) + "}"


def _condition(shape: Shape) -> str:
    container = "object.spec.containers[variables.index]"
    family = "!variables.isvc" if shape.llm else "variables.isvc"
    parts = [family, f"{container}.name == {_cel(shape.name)}"]
    parts.append(f"{container}.command == {_cel(list(shape.command))}")
    least = (1 if shape.script is not None else 0) + (1 if shape.needs_args else 0)
    if least:
        parts.append(f"has({container}.args) && size({container}.args) >= {least}")
    if shape.script is not None:
        parts.append(f"{container}.args[0] == {_cel(shape.script)}")
    if shape.evaluated:
        leaves = f"a.contains({_cel(POLICY_LEAVES)})"
        parts.append(f"(!has({container}.args) || !{container}.args.exists(a, {leaves}))")
    return "(" + " && ".join(parts) + ")"


def policy_spec(
    given: Sequence[Shape],
    *,
    options: Options = DEFAULT_OPTIONS,
    patch: Patch = jsonpatch_message,
) -> dict[str, Any]:
    """The MutatingAdmissionPolicy's spec for these shapes (the exact ones first, then the
    templates, in the lists indexed by `variables.shape`), targeting the containers and
    skipping the namespace of `options`, as a server started with them does."""
    exact = [shape for shape in given if shape.template is None]
    templated = [shape for shape in given if shape.template is not None]
    shapes = [*exact, *templated]
    targets = _cel(list(options.containers))
    llm_targets = _cel(list(options.llm_containers))
    labels = "object.metadata.labels"
    chain = (
        f"variables.template >= 0 ? {len(exact)} + variables.template : -1" if templated else "-1"
    )
    for number in reversed(range(len(exact))):
        chain = f"{_condition(exact[number])} ? {number} : {chain}"
    index = "string(variables.index)"
    container = f'"/spec/containers/" + {index}'
    first = "object.spec.containers[variables.index]"
    with_args = f"(has({first}.args) && size({first}.args) > 1)"
    status = (
        "variables.statuses[variables.shape][variables.index + "
        f"(variables.legacy[variables.shape] && !{with_args} || variables.unwrapping"
        f" ? {POSITIONS} : 0)]"
    )
    annotation_map = "{" + f"{_cel(names.STATUS_ANNOTATION)}: {status}" + "}"
    command = patch(_cel("replace"), f'{container} + "/command"', "variables.command")
    drop_script = patch(_cel("remove"), f'{container} + "/args/0"')
    drop_args = patch(_cel("remove"), f'{container} + "/args"')
    new_args = patch(_cel("replace"), f'{container} + "/args"', "variables.unwrapped")
    add_key = patch(_cel("add"), _cel(_STATUS_PATH), status)
    add_map = patch(_cel("add"), _cel("/metadata/annotations"), annotation_map)
    mutation = (
        f"variables.shape < 0 ? [] : [{command}]"
        f" + (variables.unwrapping ? [{new_args}] : [])"
        " + (!variables.legacy[variables.shape] ? [] : "
        f"{with_args} ? [{drop_script}] : [{drop_args}])"
        f" + [has(object.metadata.annotations) ? {add_key} : {add_map}]"
    )
    return {
        "failurePolicy": "Ignore",
        "reinvocationPolicy": "IfNeeded",
        "matchConstraints": {
            "resourceRules": [
                {
                    "apiGroups": [""],
                    "apiVersions": ["v1"],
                    "operations": [names.CREATE],
                    "resources": ["pods"],
                }
            ]
        },
        "matchConditions": [
            {
                "name": "kserve-pod",
                "expression": f"has({labels}) && ({_cel(names.ISVC_LABEL)} in {labels} || "
                f"({_cel(names.PART_OF_LABEL)} in {labels} && "
                f"{labels}[{_cel(names.PART_OF_LABEL)}] == {_cel(names.LLMISVC_PART_OF)}))",
            },
            {
                "name": "not-yet-rewritten",
                "expression": "!has(object.metadata.annotations) || "
                f"!({_cel(names.STATUS_ANNOTATION)} in object.metadata.annotations)",
            },
            {
                "name": "not-a-mirror-pod",
                "expression": "!has(object.metadata.annotations) || "
                f"!({_cel(names.MIRROR_ANNOTATION)} in object.metadata.annotations)",
            },
            {
                "name": "not-a-system-namespace",
                "expression": "!(request.namespace in "
                f"{_cel(sorted({*names.SYSTEM_NAMESPACES, options.own_namespace}))})",
            },
        ],
        "variables": [
            {
                "name": "isvcPod",
                "expression": f"has({labels}) && {_cel(names.ISVC_LABEL)} in {labels}",
            },
            {
                "name": "llmPod",
                "expression": f"has({labels}) && {_cel(names.PART_OF_LABEL)} in {labels} && "
                f"{labels}[{_cel(names.PART_OF_LABEL)}] == {_cel(names.LLMISVC_PART_OF)}",
            },
            # Admission's target names: a pod with both labels has both kinds.
            {
                "name": "names",
                "expression": f"(variables.isvcPod ? {targets} : []) + "
                f"(variables.llmPod ? {llm_targets} : [])",
            },
            {
                "name": "index",
                "expression": f"size(object.spec.containers) > {POSITIONS} ? -1 : "
                + _single_target(),
            },
            # Whether the target is an InferenceService's (else an LLMInferenceService's).
            {
                "name": "isvc",
                "expression": "variables.index >= 0 && variables.isvcPod && "
                f"object.spec.containers[variables.index].name in {targets}",
            },
            *(_template_variables(templated) if templated else []),
            {"name": "shape", "expression": f"variables.index < 0 ? -1 : {chain}"},
            {"name": "commands", "expression": _cel([list(s.new_command) for s in exact])},
            {
                "name": "command",
                "expression": "variables.shape < 0 ? [] : "
                + (
                    f"variables.shape >= {len(exact)} ? variables.templateCommand : "
                    if templated
                    else ""
                )
                + "variables.commands[variables.shape]",
            },
            {"name": "legacy", "expression": _cel([s.script is not None for s in shapes])},
            {"name": "statuses", "expression": _cel([list(s.statuses) for s in shapes])},
            {"name": "evaluated", "expression": _cel([s.evaluated for s in shapes])},
            {
                "name": "unwrapped",
                "expression": f"variables.shape < 0 || !variables.evaluated[variables.shape] || "
                f"!has({first}.args) ? [] : {first}.args.map(a, {_eval_word('a')})",
            },
            {
                "name": "unwrapping",
                "expression": f"variables.shape >= 0 && variables.evaluated[variables.shape] && "
                f"has({first}.args) && variables.unwrapped != {first}.args",
            },
        ],
        "mutations": [{"patchType": "JSONPatch", "jsonPatch": {"expression": mutation}}],
    }


def _ints(values: Iterable[int]) -> str:
    return "[" + ", ".join(str(value) for value in values) + "]"


def _indices(count: int) -> str:
    return _ints(range(count))


def _template_condition(number: int, shape: Shape) -> str:
    """Whether the target container may be a rendering of template `number`: its name, its
    command but the script word, and the script's size, first run and last run."""
    assert shape.template is not None
    container = "object.spec.containers[variables.index]"
    script = f"{container}.command[{shape.word}]"
    runs = f"variables.t{number}runs"
    parts = [
        "variables.index >= 0 && !variables.isvc",
        f"{container}.name == variables.templateNames[{number}]",
        f"has({container}.command) && size({container}.command) == {len(shape.command)}",
        *(
            f"{container}.command[{index}] == {_cel(word)}"
            for index, word in enumerate(shape.command)
            if index != shape.word
        ),
        f"size({script}) <= variables.templateLongest[{number}]",
        f"{script}.startsWith({runs}[0])",
        f"{script}.endsWith({runs}[{len(shape.template.runs) - 1}])",
    ]
    if shape.needs_args:
        parts.append(f"has({container}.args) && size({container}.args) >= 1")
    if shape.evaluated:
        leaves = f"a.contains({_cel(POLICY_LEAVES)})"
        parts.append(f"(!has({container}.args) || !{container}.args.exists(a, {leaves}))")
    return " && ".join(parts)


def _template_match(number: int, shape: Shape) -> list[dict[str, str]]:
    """The variables that read the target's script as template `number`, as
    `webhook.core.template` reads it: `t<n>` whether its cheap conditions hold, `t<n>s<k>`
    where run k starts (each found after the one before, the last one ending the script; -1
    when it is not there), and `t<n>ok` whether every hole between them matches its
    pattern. The API server evaluates a variable when it is first used, so a template whose
    cheap conditions fail costs only them."""
    template = shape.template
    assert template is not None
    name = f"variables.t{number}"
    script = f"object.spec.containers[variables.index].command[{shape.word}]"
    runs = f"{name}runs"
    last = len(template.runs) - 1
    found = [
        {"name": f"t{number}runs", "expression": _cel(list(template.runs))},
        {"name": f"t{number}gaps", "expression": _cel(list(template.gaps))},
        {"name": f"t{number}", "expression": _template_condition(number, shape)},
    ]
    starts = ["0"]
    for run in range(1, last + 1):
        before = f"{name}s{run - 1}" if run > 1 else f"({name} ? 0 : -1)"
        after = f"{before} + {len(template.runs[run - 1])}"
        if run == last:
            end = f"size({script}) - {len(template.runs[run])}"
            where = f"{end} >= {after} ? {end} : -1"
        else:
            where = f"{script}.indexOf({runs}[{run}], {after})"
        found.append(
            {
                "name": f"t{number}s{run}",
                "expression": f"{before} < 0 ? -1 : {where}"
                if run > 1
                else f"!{name} ? -1 : {where}",
            }
        )
        starts.append(f"{name}s{run}")
    holes = []
    for hole in range(1, last + 1):
        begins = f"{starts[hole - 1]} + {len(template.runs[hole - 1])}"
        # The size test bounds what the match may cost (the pattern holds no more anyway);
        # no pattern matches a newline, and RE2's `$` is the text's end, so the match alone
        # is the core's test.
        holes.append(
            f"{starts[hole]} - ({begins}) <= {shape.holes[hole - 1]} && "
            f"{script}.substring({begins}, {starts[hole]}).matches({name}gaps[{hole - 1}])"
        )
    found.append(
        {"name": f"t{number}ok", "expression": f"{starts[last]} >= 0 && " + " && ".join(holes)}
    )
    found.append({"name": f"t{number}starts", "expression": "[" + ", ".join(starts) + "]"})
    return found


def _template_variables(shapes: Sequence[Shape]) -> list[dict[str, str]]:
    """The variables that match a script against the policy's templates and build the
    repaired command: `template` is the first template the script is a rendering of (-1:
    none), `starts` where its runs start, `templateCommand` the command with its edits made."""
    found = [shape.template for shape in shapes if shape.template is not None]
    edits = max(len(template.edits) for template in found)
    chain, starts_chain = "-1", "[]"
    for number in reversed(range(len(shapes))):
        chain = f"variables.t{number}ok ? {number} : {chain}"
        starts_chain = (
            f"variables.template == {number} ? variables.t{number}starts : {starts_chain}"
        )
    script = "variables.script"
    variables = [
        {"name": "templateNames", "expression": _cel([s.name for s in shapes])},
        {"name": "templateWords", "expression": _cel([list(s.command) for s in shapes])},
        {"name": "templateWord", "expression": _ints([s.word for s in shapes])},
        {"name": "templateLongest", "expression": _ints([t.longest for t in found])},
        {
            "name": "templateEdits",
            "expression": "["
            + ", ".join(
                "[" + ", ".join(f"[{e.run}, {e.offset}, {e.length}]" for e in t.edits) + "]"
                for t in found
            )
            + "]",
        },
        {"name": "templateTexts", "expression": _cel([[e.text for e in t.edits] for t in found])},
        *(
            variable
            for number, shape in enumerate(shapes)
            for variable in _template_match(number, shape)
        ),
        {"name": "template", "expression": f"variables.index < 0 || variables.isvc ? -1 : {chain}"},
        {"name": "starts", "expression": f"variables.template < 0 ? [] : {starts_chain}"},
        {
            "name": "script",
            "expression": 'variables.template < 0 ? "" : object.spec.containers[variables.index]'
            ".command[variables.templateWord[variables.template]]",
        },
    ]
    starts = "variables.starts"
    at = "variables.templateEdits[variables.template]"
    texts = "variables.templateTexts[variables.template]"

    def place(edit: str) -> str:
        return f"({starts}[{at}[{edit}][0]] + {at}[{edit}][1])"

    previous = f"(e == 0 ? 0 : {place('e - 1')} + {at}[e - 1][2])"
    final = f"size({at}) - 1"
    variables += [
        {
            "name": "templateScript",
            "expression": 'variables.template < 0 ? "" : '
            f"{_indices(edits)}.filter(e, e < size({at}))"
            f".map(e, {script}.substring({previous}, {place('e')}) + {texts}[e]).join() + "
            f"{script}.substring({place(final)} + {at}[{final}][2], size({script}))",
        },
        {
            "name": "templateCommand",
            "expression": "variables.template < 0 ? [] : "
            f"{_indices(max(len(s.command) for s in shapes))}.filter(i, i < "
            "size(variables.templateWords[variables.template])).map(i, i == "
            "variables.templateWord[variables.template] ? variables.templateScript : "
            "variables.templateWords[variables.template][i])",
        },
    ]
    return variables


def _eval_word(arg: str) -> str:
    """CEL for `evaluated.eval_word`: the word eval makes of an arg that is only literal text
    and quoting (each quoted segment without its quotes), else the arg as it is."""
    stripped = (
        f'{arg}.findAll({_cel(SEGMENT_PATTERN)}).map(s, s.startsWith("\'") || '
        's.startsWith("\\"") ? s.substring(1, size(s) - 1) : s).join()'
    )
    kubelet = _cel(KUBELET_PATTERN)
    literal = _cel(f"^(?:{LITERAL_PATTERN})$")
    return (
        f"{arg}.matches({literal}) && {stripped}.findAll({kubelet}) == {arg}.findAll({kubelet})"
        f" ? {stripped} : {arg}"
    )


def _single_target() -> str:
    """The position of the pod's one target-named container, or -1 when it has none or more."""
    found = (
        f"{_indices(POSITIONS)}.filter(i, "
        "i < size(object.spec.containers) && object.spec.containers[i].name in variables.names)"
    )
    return f"size({found}) == 1 ? {found}[0] : -1"


def binding(mode: Mode, *, name: str = POLICY_NAME) -> dict[str, Any]:
    """The binding of the policy `name`: the namespaces of the install mode, and the pod
    opt-out label."""
    if mode is Mode.OPT_IN:
        namespaces: dict[str, Any] = {
            "matchLabels": {names.INJECT_LABEL: str(names.Inject.ENABLED)}
        }
    else:
        namespaces = {
            "matchExpressions": [
                {
                    "key": "kubernetes.io/metadata.name",
                    "operator": "NotIn",
                    "values": sorted(names.SYSTEM_NAMESPACES),
                },
                {
                    "key": names.INJECT_LABEL,
                    "operator": "NotIn",
                    "values": [str(names.Inject.DISABLED), str(names.Inject.SHADOW)],
                },
            ]
        }
    return {
        "apiVersion": API_VERSION,
        "kind": "MutatingAdmissionPolicyBinding",
        "metadata": {"name": name},
        "spec": {
            "policyName": name,
            "matchResources": {
                "namespaceSelector": namespaces,
                "objectSelector": {
                    "matchExpressions": [
                        {
                            "key": names.INJECT_LABEL,
                            "operator": "NotIn",
                            "values": [names.POD_OPT_OUT],
                        }
                    ]
                },
            },
        },
    }


class PolicyTooLarge(ValueError):
    """A script that no policy kube-apiserver accepts can hold; the message names the limit."""


@dataclass(frozen=True, slots=True)
class Figures:
    """What kube-apiserver checks of one policy: its largest expression in code points, its
    size as stored, and the estimated CEL cost of one pod's admission."""

    name: str
    scripts: int
    expression: int
    size: int
    cost: int

    def over(self) -> str | None:
        """The first limit the policy is over, in words, or None when it fits."""
        if self.expression > EXPRESSION_LIMIT:
            return (
                f"a CEL expression of {self.expression} code points, over kube-apiserver's "
                f"limit of {EXPRESSION_LIMIT}"
            )
        if self.cost > COST_LIMIT:
            return f"an estimated CEL cost of {self.cost}, over the limit of {COST_LIMIT}"
        if self.size > OBJECT_LIMIT:
            return f"{self.size} bytes, over the {OBJECT_LIMIT} an object may hold"
        return None


def _policy(shapes: Sequence[Shape], name: str, compiled: Compiled) -> dict[str, Any]:
    annotations = {
        f"{names.PREFIX}/version": __version__,
        SHAPES_ANNOTATION: _json(sorted({shape.digest for shape in shapes})),
    }
    presets = sorted(
        {
            source
            for shape in shapes
            if shape.template is not None
            for source in compiled.sources(shape)
        }
    )
    if presets:
        annotations[PRESETS_ANNOTATION] = _json(presets)
    return {
        "apiVersion": API_VERSION,
        "kind": "MutatingAdmissionPolicy",
        "metadata": {"name": name, "annotations": annotations},
        "spec": policy_spec(shapes, options=compiled.options),
    }


def _json(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def _expressions(spec: Mapping[str, Any]) -> Iterator[str]:
    for entry in (*spec["matchConditions"], *spec["variables"]):
        yield entry["expression"]
    for mutation in spec["mutations"]:
        yield mutation["jsonPatch"]["expression"]


def figures(policy: Mapping[str, Any], shapes: Sequence[Shape]) -> Figures:
    """The figures kube-apiserver checks of a policy compiled from `shapes`."""
    return Figures(
        name=policy["metadata"]["name"],
        scripts=len(shapes),
        expression=max(len(text) for text in _expressions(policy["spec"])),
        size=len(json.dumps(policy, ensure_ascii=False, separators=(",", ":")).encode()),
        cost=estimated_cost(shapes),
    )


def _name(number: int) -> str:
    return POLICY_NAME if number == 0 else f"{POLICY_NAME}-{number + 1}"


def split(compiled: Compiled) -> list[tuple[dict[str, Any], Figures]]:
    """The policies that hold the compiled shapes, each within kube-apiserver's limits:
    shapes are added to a policy in order while it fits, then to the next. Raises
    `PolicyTooLarge` for a shape that fits in no policy."""

    def built(shapes: Sequence[Shape], number: int) -> tuple[dict[str, Any], Figures]:
        policy = _policy(shapes, _name(number), compiled)
        return policy, figures(policy, shapes)

    groups: list[list[Shape]] = []
    for shape in compiled.shapes:
        if groups and built([*groups[-1], shape], len(groups) - 1)[1].over() is None:
            groups[-1].append(shape)
            continue
        over = built([shape], len(groups))[1].over()
        if over is not None:
            raise PolicyTooLarge(
                f"{shape.source} {shape.name}: its script alone makes a policy of {over}; "
                "leave it to the webhook"
            )
        groups.append([shape])
    return [built(group, number) for number, group in enumerate(groups)]


def policy_objects(compiled: Compiled, *, mode: Mode) -> list[dict[str, Any]]:
    """The MutatingAdmissionPolicies and their bindings, for `kubectl apply -f -`: one pair
    unless kube-apiserver's limits want the scripts split across several."""
    return with_bindings(split(compiled), mode=mode)


def with_bindings(
    policies: Sequence[tuple[dict[str, Any], Figures]], *, mode: Mode
) -> list[dict[str, Any]]:
    """Each policy of `split`, followed by its binding."""
    return [
        item
        for policy, _ in policies
        for item in (policy, binding(mode, name=policy["metadata"]["name"]))
    ]


def estimated_cost(shapes: Sequence[Shape]) -> int:
    """An upper bound of the CEL cost of one admission, by the cost model of Kubernetes' CEL
    libraries (a string compared, searched or cut costs 1 + a tenth of its length; a regex
    match, a tenth of the text's length times a quarter of the pattern's): every exact
    shape's command and script compared, and every template read, as if each one's cheap
    conditions held, then one template's edits made."""
    exact = sum(
        sum(1 + len(word) // 10 for word in (*shape.command, shape.script or ""))
        for shape in shapes
        if shape.template is None
    )
    templates = [shape for shape in shapes if shape.template is not None]
    read = sum(_template_cost(shape) for shape in templates)
    edits = max((_edits_cost(shape) for shape in templates), default=0)
    return exact + read + edits + 64 * POSITIONS


def _template_cost(shape: Shape) -> int:
    """What reading a script as one template costs at most: its command compared, its first
    and last runs, a search for each run and a cut for each hole (each over the whole
    script, which its size bounds), and each hole's pattern match (over its text, which its
    size test bounds)."""
    template = shape.template
    assert template is not None
    script = 1 + template.longest // 10
    words = sum(1 + len(word) // 10 for word in shape.command)
    ends = 2 + (len(template.runs[0]) + len(template.runs[-1])) // 10
    runs = len(template.runs)
    holes = sum(
        (1 + widest // 10) * (2 + len(gap) // 4)
        for widest, gap in zip(shape.holes, template.gaps, strict=True)
    )
    return words + ends + 2 * runs * script + holes


def _edits_cost(shape: Shape) -> int:
    """What making one template's edits costs at most: a cut of the script for each, and the
    join of the new script."""
    template = shape.template
    assert template is not None
    return (len(template.edits) + 1) * (1 + template.longest // 10) + 1 + template.longest // 5
