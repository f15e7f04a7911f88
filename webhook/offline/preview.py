"""Dry-run preview (DESIGN §6): walk any input down to its pods and say what admission would do.

A Pod, a workload's pod template, each item of a List or of a YAML stream, or the object of an
AdmissionReview goes through the very `mutate` that `/mutate` calls. Each gets a result with the
patch (its pointers relative to the object given), the resulting object and a unified diff.

It is long because each kind of object it previews (a pod, a workload, a LeaderWorkerSet, an
InferenceService or LLMInferenceService rendered into pods) takes its own path to the one
decision; the results' formats are in `webhook.offline.report`.
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping, Sequence
from typing import Any, Final

import jsonpatch

from webhook.core import names
from webhook.core.admission import ReviewError, parse_review
from webhook.core.argv import Launch, container_launch
from webhook.core.kinds import (
    ISVC_KIND,
    LLMISVC_KIND,
    LWS_KIND,
    LWS_TEMPLATES,
    PRESET_KIND,
    RUNTIME_KINDS,
    TEMPLATE_PATHS,
)
from webhook.core.model import (
    DEFAULT_CONTEXT,
    DEFAULT_OPTIONS,
    POD_KIND,
    Context,
    Decision,
    Kind,
    Options,
)
from webhook.core.mutate import mutate
from webhook.core.names import Reason
from webhook.core.patch import to_json
from webhook.core.raw import at, display_name, items, mapping, shown_name, string
from webhook.core.rewrite import split_shell
from webhook.core.view import pod_view
from webhook.offline import documents, isolation, llmrender
from webhook.offline import render as render_pods
from webhook.offline.documents import objects_in
from webhook.offline.migrate import additional_args
from webhook.offline.report import FORMATS, LaunchJson, Result, formatted

# What a server's preview endpoint needs besides `preview_text`, from here alone.
InputError = documents.InputError
__all__ = [
    "FORMATS",
    "NEWEST",
    "InputError",
    "formatted",
    "preview_inference_service",
    "preview_llm_service",
    "preview_object",
    "preview_text",
]


NEWEST = render_pods.NEWEST


def _group_version(api_version: object) -> tuple[str, str]:
    group, _, version = string(api_version).rpartition("/")
    return group, version


def _diff(before: Any, after: Any, *, label: str) -> str:
    lines = difflib.unified_diff(
        documents.dump(before).splitlines(keepends=True),
        documents.dump(after).splitlines(keepends=True),
        fromfile=f"a/{label}",
        tofile=f"b/{label}",
    )
    return "".join(lines)


def _result(obj: Any, kind: str, decision: Decision) -> Result:
    name = display_name(mapping(obj))
    ops = to_json(decision.patch)
    after = jsonpatch.apply_patch(obj, to_json(decision.patch)) if ops else obj
    return {
        "kind": kind,
        "name": name,
        "decision": str(decision.action),
        "reason": str(decision.reason),
        "trace": [
            {"step": str(step), "verdict": str(verdict), "detail": detail}
            for step, verdict, detail in decision.trace
        ],
        "patch": ops,
        "warnings": list(decision.warnings),
        "object": after,
        "diff": _diff(obj, after, label=f"{kind}/{name}") if decision.patch else "",
    }


def _simulated(context: Context, *, namespace: str, **request: Any) -> Context:
    """The request for one object: the simulated namespace, else the object's, else default."""
    return context._replace(namespace=context.namespace or namespace or "default", **request)


def preview_object(
    obj: Any, *, context: Context = DEFAULT_CONTEXT, options: Options = DEFAULT_OPTIONS
) -> list[Result]:
    """The results for one input document (several for a List).

    `context` says what to simulate: `namespace` (default: the object's own, else `default`),
    `namespace_labels` and `mode` for the namespace test.
    """
    if isinstance(obj, list):
        return [r for item in obj for r in preview_object(item, context=context, options=options)]
    if not isinstance(obj, Mapping):
        raise documents.InputError(documents.not_an_object(obj))
    kind = obj.get("kind")
    if not isinstance(kind, str) or not kind:
        raise documents.InputError("a document has no kind")
    if kind.endswith("List") and isinstance(obj.get("items"), list):
        return preview_object(obj["items"], context=context, options=options)
    if kind == "AdmissionReview":
        try:
            review = parse_review(obj)
        except ReviewError as error:
            raise documents.InputError(f"AdmissionReview: {error}") from None
        request = _simulated(
            context, namespace=review.namespace, kind=review.kind, operation=review.operation
        )
        pod = mapping(mapping(obj.get("request")).get("object"))
        what = f"Pod {shown_name(pod)}"
        result = _result(pod, "Pod", _decided(pod, what=what, context=request, options=options))
        _with_launch(result, pod, result["object"], what=what, options=options)
        return [result]

    group, version = _group_version(obj.get("apiVersion"))
    namespace = string(mapping(obj.get("metadata")).get("namespace"))
    if (group, kind) == LWS_KIND:
        return _preview_lws(obj, namespace=namespace, context=context, options=options)
    path = TEMPLATE_PATHS.get((group, kind))
    if path is None:
        request = _simulated(context, namespace=namespace, kind=Kind(group, version, kind))
        what = f"{kind} {shown_name(obj)}"
        result = _result(obj, kind, _decided(obj, what=what, context=request, options=options))
        if kind == "Pod":
            _with_launch(result, obj, result["object"], what=what, options=options)
        return [result]
    return [_template_result(obj, path, namespace=namespace, context=context, options=options)]


def _template_result(
    obj: Mapping[str, Any],
    path: Sequence[str],
    *,
    namespace: str,
    context: Context,
    options: Options,
    what: str = "",
) -> Result:
    """The result for the pod template at `path` of a workload, with the launch argv of its
    LLMInferenceService containers."""
    pod = {"apiVersion": "v1", "kind": "Pod", **mapping(at(obj, path))}
    request = _simulated(context, namespace=namespace, kind=POD_KIND, base="/" + "/".join(path))
    kind = string(obj.get("kind"))
    what = what or f"{kind} {shown_name(obj)}"
    result = _result(obj, kind, _decided(pod, what=what, context=request, options=options))
    after = {"spec": mapping(at(result["object"], path)).get("spec")}
    _with_launch(result, pod, after, what=what, options=options)
    return result


def _with_launch(
    result: Result, before: Mapping[str, Any], after: Any, *, what: str, options: Options
) -> None:
    """The launch argv of a pod's target containers added to its result: an
    LLMInferenceService pod's, whose args are all the user's, or any other pod's that has a
    launch command, whose args after its script are."""
    labels = mapping(mapping(before.get("metadata")).get("labels"))
    if labels.get(names.PART_OF_LABEL) == names.LLMISVC_PART_OF:
        result["launch"] = _launched(
            before, after, targets=options.llm_containers, what=what, options=options
        )
        _mark_replaced(result)
        return
    try:
        found = isolation.current().call(_script_launches, before, after, options.containers)
    except isolation.ParserFailed:
        raise isolation.ParserFailed(f"{what}: {isolation.PARSER_FAILED_MESSAGE}") from None
    if found:
        result["launch"] = found


def _script_args(container: Any) -> list[str]:
    """A container's args that follow its script, where an InferenceService's args land: all
    of them, but for the script itself when it is the first (`command: [bash, -c]`)."""
    command = [str(word) for word in items(mapping(container).get("command"))]
    args = [str(word) for word in items(mapping(container).get("args"))]
    split = split_shell(command)
    return args[1:] if split is not None and not split[1] else args


def _script_launches(before: Any, after: Any, targets: Sequence[str]) -> list[LaunchJson]:
    """`_launches` of a pod given as is, each target container with its own args after its
    script as the user's; a container whose launch command cannot be told, before or after,
    is left out (its args have no fate to show)."""
    reports: list[LaunchJson] = []
    for container in items(mapping(mapping(before).get("spec")).get("containers")):
        name = mapping(container).get("name")
        if name not in targets:
            continue
        # Admission moves the script out of args and leaves the args after it as they are, so
        # the same args are the user's before and after.
        [report] = _launches(before, after, _script_args(container), [str(name)])
        if report["command"] or report["after"]:
            reports.append(report)
    return reports


def _preview_lws(
    obj: Mapping[str, Any], *, namespace: str, context: Context, options: Options
) -> list[Result]:
    """A LeaderWorkerSet's leader and worker pod templates, the worker's result built on the
    leader's so that it holds both edits."""
    results: list[Result] = []
    current: Mapping[str, Any] = obj
    templates = [(role, path) for role, path in LWS_TEMPLATES if isinstance(at(obj, path), dict)]
    for role, path in templates:
        what = f"LeaderWorkerSet {shown_name(obj)} ({role})"
        result = _template_result(
            current, path, namespace=namespace, context=context, options=options, what=what
        )
        result["template"] = role
        results.append(result)
        current = result["object"]
    if not results:
        raise documents.InputError(f"LeaderWorkerSet {shown_name(obj)}: no pod template")
    return results


def _decided(pod: Mapping[str, Any], *, what: str, context: Context, options: Options) -> Decision:
    """`mutate`, its scripts parsed under the run's isolation; a script that crashes the
    parser is an error naming `what` and the container."""
    rewrites = isolation.current().rewrite
    decision = mutate(pod_view(pod), context=context, options=options, rewrites=rewrites)
    crashed = isolation.crashed_container(decision)
    if crashed is not None:
        raise isolation.ParserFailed(
            f"{what}: container {crashed}: {isolation.PARSER_FAILED_MESSAGE}"
        )
    return decision


def _first_is_zero(container: Any, count: int) -> bool:
    """Whether the first of a container's last `count` args is bash's $0: the word after the
    script `bash -c` runs. Told by place, not by text."""
    command = [str(word) for word in items(mapping(container).get("command"))]
    args = items(mapping(container).get("args"))
    split = split_shell(command)
    if not count or split is None:
        return False
    # bash -c takes the word after the script as $0, in command or in args alike.
    return len(split[1]) + len(args) - count == 1


UNFOLLOWED: Final = "unknown: the script reads its args in a way not followed here"


def _fate(arg: str, launch: Launch | None, *, zero: bool, from_end: int) -> str:
    """How one user arg, the `from_end`th parameter counted from the last, reaches the launch
    command: exact, split, taken as $0, dropped, or what eval did with it."""
    if launch is None:
        return "unknown: no launch command found"
    if launch.evaluated is not None and from_end <= len(launch.evaluated):
        return launch.evaluated[-from_end]
    # Before any word is looked for: a script that never reads $0 drops the arg it became,
    # even when one of its own words is the same text.
    read = launch.read  # None: the script reads its args in a way not followed here
    if zero and read is not None and not launch.reads_zero:
        return "dropped: bash took it as $0"
    if not zero and read is not None and from_end <= len(read) and not read[-from_end]:
        return "dropped"  # the launch command reads nothing of it, whatever its words say
    if arg in launch.argv:
        return "exact"
    pieces = arg.split()
    if len(pieces) > 1 and all(piece in launch.argv for piece in pieces):
        return f"split into {len(pieces)} words"
    if read is not None and not pieces:
        return "dropped"  # read unquoted, a blank arg splits into no word
    return UNFOLLOWED


def _launches(
    before: Any,
    after: Any,
    user_args: Sequence[str] | None,
    targets: Sequence[str],
) -> list[LaunchJson]:
    """The target containers' launch argv in the pod as built and as admitted. `user_args`
    None: each container's own args are the user's (an LLMInferenceService's pod)."""
    reports: list[LaunchJson] = []
    after_containers = items(mapping(mapping(after).get("spec")).get("containers"))
    for index, container in enumerate(
        items(mapping(mapping(before).get("spec")).get("containers"))
    ):
        if mapping(container).get("name") not in targets:
            continue
        old, new = container_launch(container), container_launch(after_containers[index])
        given = (
            [str(arg) for arg in items(mapping(container).get("args"))]
            if user_args is None
            else user_args
        )
        zero = old is not None and _first_is_zero(container, len(given))
        # What stands for each arg once admitted: itself, or the word eval made of it.
        own = [str(arg) for arg in items(mapping(after_containers[index]).get("args"))]
        delivered = own if user_args is None and len(own) == len(given) else given
        reports.append(
            {
                "container": string(mapping(container).get("name")),
                "command": old.kind if old else "",
                "before": list(old.argv) if old else [],
                "after": list(new.argv) if new else [],
                "args": [
                    {
                        "arg": arg,
                        "before": _fate(
                            arg, old, zero=zero and position == 0, from_end=len(given) - position
                        ),
                        "after": _fate(
                            delivered[position], new, zero=False, from_end=len(given) - position
                        ),
                    }
                    for position, arg in enumerate(given)
                ],
            }
        )
    return reports


def _rendered_result(
    pod: Mapping[str, Any],
    *,
    source: tuple[str, str, str],
    context: Context,
    options: Options,
    targets: Sequence[str],
    user_args: Sequence[str] | None,
) -> tuple[Result, Decision]:
    """The result for a pod rendered from `source` (its kind, name and the pod's role), with
    the launch argv of its `targets` before and after admission, and its decision."""
    kind, name, role = source
    what = f"{kind} {name} ({role})"
    namespace = string(mapping(pod.get("metadata")).get("namespace"))
    request = _simulated(context, namespace=namespace, kind=POD_KIND)
    decision = _decided(pod, what=what, context=request, options=options)
    result = _result(pod, "Pod", decision)
    result["rendered_from"] = f"{kind}/{name} ({role})"
    result["launch"] = _launched(
        pod, result["object"], targets=targets, user_args=user_args, what=what, options=options
    )
    return result, decision


def preview_inference_service(
    isvc: Mapping[str, Any],
    runtimes: Sequence[Mapping[str, Any]],
    *,
    context: Context = DEFAULT_CONTEXT,
    options: Options = DEFAULT_OPTIONS,
    kserve_version: str = render_pods.NEWEST,
    apart: str = "",
) -> list[Result]:
    """The results for the head and worker pods KServe builds from `isvc`, each with the
    launch argv before and after admission."""
    try:
        chosen = render_pods.choose_runtime(isvc, runtimes, apart=apart)
        rendered = render_pods.render(isvc, chosen, version=kserve_version)
    except render_pods.RenderError as error:
        name = display_name(mapping(isvc))
        raise documents.InputError(f"InferenceService {name}: {error}") from None
    results = []
    for pod in rendered:
        result, _ = _rendered_result(
            pod.pod,
            source=(ISVC_KIND, display_name(mapping(isvc)), pod.role),
            context=context,
            options=options,
            targets=options.containers,
            user_args=pod.user_args,
        )
        results.append(result)
    return results


# The fate of every arg of a pod whose args replaced its preset's script (DESIGN §2.1).
REPLACED: Final = "lost: it replaced the preset's script, and the server never starts"


def preview_llm_service(
    service: Mapping[str, Any],
    presets: Sequence[Mapping[str, Any]],
    *,
    context: Context = DEFAULT_CONTEXT,
    options: Options = DEFAULT_OPTIONS,
    apart: str = "",
) -> list[Result]:
    """The results for the pods KServe builds from an LLMInferenceService and its presets,
    each with what `vllm serve` receives before and after admission."""
    name = display_name(mapping(service))
    try:
        rendered = llmrender.render(service, presets, apart=apart)
    except llmrender.LLMRenderError as error:
        raise documents.InputError(f"LLMInferenceService {name}: {error}") from None
    results = []
    for pod in rendered:
        what = f"LLMInferenceService {name} ({pod.role})"
        # The pod's `main` args are the service's own when it gives some (the merge replaces
        # the preset's whole), and none of them are the user's when it gives none.
        result, decision = _rendered_result(
            pod.pod,
            source=(LLMISVC_KIND, name, pod.role),
            context=context,
            options=options,
            targets=options.llm_containers,
            user_args=None if pod.user_args else (),
        )
        if decision.reason is Reason.SCRIPT_REPLACED and pod.user_args:
            _mark_replaced(result)
            result["warnings"].append(
                f"{what}: bash runs {pod.user_args[0]!r} as the script, and the pod "
                f"crash-loops; `multinode-webhook migrate` writes the args as "
                f"{names.LLM_EXTRA_ARGS_ENV}={additional_args(pod.user_args)}"
            )
        results.append(result)
    return results


def _mark_replaced(result: Result) -> None:
    """Every arg of a container whose args replaced its preset's script is lost, before
    admission and after alike: there is no launch command to follow, and admission leaves the
    container as it is."""
    replaced = {
        step["step"].removeprefix("container/")
        for step in result["trace"]
        if step["verdict"] == Reason.SCRIPT_REPLACED
    }
    for launch in result.get("launch", []):
        if launch["container"] in replaced:
            for arg in launch["args"]:
                arg["before"] = arg["after"] = REPLACED


def _launched(
    before: Any,
    after: Any,
    *,
    what: str,
    options: Options,
    targets: Sequence[str],
    user_args: Sequence[str] | None = None,
) -> list[LaunchJson]:
    """`_launches`, parsed under the run's isolation."""
    try:
        return isolation.current().call(_launches, before, after, user_args, targets)
    except isolation.ParserFailed:
        raise isolation.ParserFailed(f"{what}: {isolation.PARSER_FAILED_MESSAGE}") from None


def _of_kinds(documents_: Sequence[Any], kinds: frozenset[str]) -> list[Mapping[str, Any]]:
    """Every object of `kinds` given, inside Lists and Templates too."""
    return [
        found
        for doc in documents_
        for _, _, found in objects_in(doc)
        if string(found.get("kind")) in kinds
    ]


def presets_in(documents_: Sequence[Any]) -> list[Mapping[str, Any]]:
    """Every LLMInferenceServiceConfig given, inside Lists and Templates too."""
    return _of_kinds(documents_, frozenset({PRESET_KIND}))


def runtimes_in(documents_: Sequence[Any]) -> list[Mapping[str, Any]]:
    """Every ServingRuntime and ClusterServingRuntime given, inside Lists and Templates too."""
    return _of_kinds(documents_, frozenset(RUNTIME_KINDS))


def preview_text(
    text: str,
    *,
    name: str = "<input>",
    context: Context = DEFAULT_CONTEXT,
    options: Options = DEFAULT_OPTIONS,
    allow_aliases: bool = True,
    runtimes: Sequence[Mapping[str, Any]] = (),
    presets: Sequence[Mapping[str, Any]] = (),
    kserve_version: str = render_pods.NEWEST,
    apart: documents.Apart = documents.ONLY_IN_THE_INPUT,
) -> list[Result]:
    """Results for every object in a JSON or YAML text; errors name the input, and `apart`
    for what it lacks.

    An InferenceService is rendered into the pods KServe builds, with its runtime from
    `runtimes` or from the same text, and an LLMInferenceService with its presets from
    `presets` or from the same text; runtimes and presets are then inputs, not objects to
    preview.
    """
    loaded = documents.load(text, name=name, allow_aliases=allow_aliases)
    kinds = {string(mapping(doc).get("kind")) for doc in loaded}
    # Runtimes and presets are the inputs of what is rendered, not objects to preview.
    given_runtimes = [*runtimes, *runtimes_in(loaded)] if ISVC_KIND in kinds else []
    given_presets = [*presets, *presets_in(loaded)] if LLMISVC_KIND in kinds else []
    results: list[Result] = []
    try:
        for doc in loaded:
            kind = mapping(doc).get("kind")
            if kind == ISVC_KIND:
                results += preview_inference_service(
                    doc,
                    given_runtimes,
                    context=context,
                    options=options,
                    kserve_version=kserve_version,
                    apart=apart.runtime,
                )
            elif kind == LLMISVC_KIND:
                results += preview_llm_service(
                    doc, given_presets, context=context, options=options, apart=apart.preset
                )
            elif not (given_runtimes and runtimes_in([doc])) and not (
                given_presets and presets_in([doc])
            ):
                results += preview_object(doc, context=context, options=options)
    except documents.InputError as error:
        raise documents.InputError(f"{name}: {error}") from None
    if not results:
        raise documents.InputError(f"{name}: the input holds no Kubernetes object")
    return results
