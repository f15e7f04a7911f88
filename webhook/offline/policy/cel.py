"""The CEL of a MutatingAdmissionPolicy for compiled shapes (`policy_spec`): match conditions,
the variables that find a pod's shape (exact scripts compared, patterns read), and the
JSONPatch that applies its repair, written with `JSONPatch{…}` for the API server or with plain
maps, so that cel-python can evaluate it outside one."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Sequence
from typing import Any, Final

from webhook.core import names
from webhook.core.evaluated import (
    KUBELET_PATTERN,
    LITERAL_PATTERN,
    POLICY_LEAVES,
    SEGMENT_PATTERN,
)
from webhook.core.model import DEFAULT_OPTIONS, Options
from webhook.core.patch import pointer
from webhook.offline.policy.shapes import POSITIONS, Shape

_STATUS_PATH: Final = pointer("metadata", "annotations", names.STATUS_ANNOTATION)


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
    patterns, in the lists indexed by `variables.shape`), targeting the containers and
    skipping the namespace of `options`, as a server started with them does."""
    exact = [shape for shape in given if shape.pattern is None]
    patterned = [shape for shape in given if shape.pattern is not None]
    shapes = [*exact, *patterned]
    targets = _cel(list(options.containers))
    llm_targets = _cel(list(options.llm_containers))
    labels = "object.metadata.labels"
    chain = (
        f"variables.template >= 0 ? {len(exact)} + variables.template : -1" if patterned else "-1"
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
            *(_pattern_variables(patterned) if patterned else []),
            {"name": "shape", "expression": f"variables.index < 0 ? -1 : {chain}"},
            {"name": "commands", "expression": _cel([list(s.new_command) for s in exact])},
            {
                "name": "command",
                "expression": "variables.shape < 0 ? [] : "
                + (
                    f"variables.shape >= {len(exact)} ? variables.templateCommand : "
                    if patterned
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


def _pattern_condition(number: int, shape: Shape) -> str:
    """Whether the target container may be a rendering of pattern `number`: its name, its
    command but the script word, and the script's size, first run and last run."""
    assert shape.pattern is not None
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
        f"{script}.endsWith({runs}[{len(shape.pattern.runs) - 1}])",
    ]
    if shape.needs_args:
        parts.append(f"has({container}.args) && size({container}.args) >= 1")
    if shape.evaluated:
        leaves = f"a.contains({_cel(POLICY_LEAVES)})"
        parts.append(f"(!has({container}.args) || !{container}.args.exists(a, {leaves}))")
    return " && ".join(parts)


def _pattern_match(number: int, shape: Shape) -> list[dict[str, str]]:
    """The variables that read the target's script as pattern `number`, as
    `webhook.core.pattern` reads it: `t<n>` whether its cheap conditions hold, `t<n>s<k>`
    where run k starts (each found after the one before, the last one ending the script; -1
    when it is not there), and `t<n>ok` whether every hole between them matches its
    pattern. The API server evaluates a variable when it is first used, so a pattern whose
    cheap conditions fail costs only them."""
    pattern = shape.pattern
    assert pattern is not None
    name = f"variables.t{number}"
    script = f"object.spec.containers[variables.index].command[{shape.word}]"
    runs = f"{name}runs"
    last = len(pattern.runs) - 1
    found = [
        {"name": f"t{number}runs", "expression": _cel(list(pattern.runs))},
        {"name": f"t{number}gaps", "expression": _cel(list(pattern.gaps))},
        {"name": f"t{number}", "expression": _pattern_condition(number, shape)},
    ]
    starts = ["0"]
    for run in range(1, last + 1):
        before = f"{name}s{run - 1}" if run > 1 else f"({name} ? 0 : -1)"
        after = f"{before} + {len(pattern.runs[run - 1])}"
        if run == last:
            end = f"size({script}) - {len(pattern.runs[run])}"
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
        begins = f"{starts[hole - 1]} + {len(pattern.runs[hole - 1])}"
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


def _pattern_variables(shapes: Sequence[Shape]) -> list[dict[str, str]]:
    """The variables that match a script against the policy's patterns and build the
    repaired command: `template` is the first pattern the script is a rendering of (-1:
    none), `starts` where its runs start, `templateCommand` the command with its edits made.
    The variables keep the `template` names of the first releases: `check` reads them back
    from the policies installed (`webhook.inspect.installed_policies`)."""
    found = [shape.pattern for shape in shapes if shape.pattern is not None]
    edits = max(len(pattern.edits) for pattern in found)
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
            for variable in _pattern_match(number, shape)
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
