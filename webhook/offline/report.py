"""The preview's results (`Result`, as JSON and YAML give them) and their output formats: the
table with a line per arg, JSON, YAML, patches, diffs and manifests (`formatted`); which
results fail a `--fail-on` condition, and hints for the input."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any, Final, NotRequired, TypedDict

from webhook.core.kinds import (
    RUNTIME_KINDS,
)
from webhook.core.names import WARNED_REASONS, Action, Reason
from webhook.core.patch import PatchJson
from webhook.core.raw import NO_NAME
from webhook.offline import documents

FORMATS: Final = ("table", "json", "yaml", "patch", "diff", "manifest")


# An arg wider than this does not widen the table's arg column: it runs past it.
_ARG_COLUMN: Final = 40


FAIL_ON: Final = ("warning", "unpatched")


# Objects that are not KServe pods, or whose args already arrive: never "unpatched".
_NOT_UNPATCHED: Final = frozenset(
    {
        Reason.NOT_POD_CREATE,
        Reason.NOT_KSERVE,
        Reason.SYSTEM_NAMESPACE,
        Reason.MIRROR_POD,
        Reason.ALREADY_MIGRATED,
        Reason.NOT_A_TARGET,
    }
)


# What `migrate` rewrites: a runtime, or a Template holding one.
_MIGRATE_KINDS: Final = RUNTIME_KINDS | {"Template"}


class TraceJson(TypedDict):
    """One line of the selection trace, as preview shows it."""

    step: str
    verdict: str
    detail: str


class ArgJson(TypedDict):
    """What became of one arg written on the InferenceService, before and after the rewrite."""

    arg: str
    before: str
    after: str


class LaunchJson(TypedDict):
    """A container's launch command and the argv it is handed, before and after."""

    container: str
    command: str
    before: list[str]
    after: list[str]
    args: list[ArgJson]


class Result(TypedDict):
    """What preview reports for one object."""

    kind: str
    name: str
    decision: str
    reason: str
    trace: list[TraceJson]
    patch: list[PatchJson]
    warnings: list[str]
    object: Any
    diff: str
    rendered_from: NotRequired[str]
    launch: NotRequired[list[LaunchJson]]
    # Which pod template of a LeaderWorkerSet; the worker's result holds both templates' edits.
    template: NotRequired[str]


def failures(results: list[Result], condition: str) -> list[str]:
    """Why `--fail-on condition` fails on these results: one line per finding, naming the
    object; none when it passes.

    `warning`: a container was left unchanged with a warning (its args may still not arrive).
    `unpatched`: a KServe pod (or pod template) would not be patched though its args do not
    arrive: left alone with a warning, opted out, in shadow, or its namespace not selected.
    """
    if condition == "warning":
        return [
            f"{result['kind']} {result['name'] or NO_NAME}: {step['step']} left unchanged, "
            f"{step['verdict']}: {step['detail']}"
            for result in results
            for step in result["trace"]
            if step["verdict"] in WARNED_REASONS
        ]
    return [
        f"{result['kind']} {result['name'] or NO_NAME}: {result['decision']} ({result['reason']})"
        for result in results
        if result["decision"] != Action.PATCHED and result["reason"] not in _NOT_UNPATCHED
    ]


def hints(results: list[Result]) -> list[str]:
    """One line for each kind of input that preview is not the tool for."""
    kinds = {result["kind"] for result in results}
    found = []
    if kinds & _MIGRATE_KINDS:
        found.append(
            "runtimes are not pods: `multinode-webhook migrate` rewrites ServingRuntimes, "
            "ClusterServingRuntimes and Templates"
        )
    return found


def _annotations(result: Result) -> list[str]:
    """The annotations the patch writes on an object whose containers it leaves alone (a
    `script-replaced` pod gets its problem annotation): what a patch with `unchanged` does."""
    if result["decision"] == Action.PATCHED:
        return []
    written: list[str] = []
    for op in result["patch"]:
        _, found, key = op["path"].rpartition("/metadata/annotations")
        value = op.get("value")
        if found and key:
            written.append(key[1:].replace("~1", "/").replace("~0", "~"))
        elif found and isinstance(value, Mapping):
            written += [str(name) for name in value]
    return written


def _headline(result: Result) -> str:
    where = f" ({result['template']})" if "template" in result else ""
    origin = f", from {result['rendered_from']}" if "rendered_from" in result else ""
    written = _annotations(result)
    annotated = f", annotated {', '.join(written)}" if written else ""
    return (
        f"{result['kind']} {result['name'] or NO_NAME}{where}: {result['decision']} "
        f"({result['reason']}){annotated}{origin}"
    )


def _shown_arg(arg: str) -> str:
    """The arg as written, or as a JSON string when it is empty or holds a blank, which would
    not be seen."""
    return arg if arg and not any(c.isspace() for c in arg) else json.dumps(arg, ensure_ascii=False)


def _table(results: list[Result]) -> str:
    """One row per object, then one per arg its launch commands are given (before → after),
    then its warnings: for a terminal."""
    lines: list[str] = []
    for result in results:
        lines.append(_headline(result))
        for launch in result.get("launch", []):
            shown = [_shown_arg(arg["arg"]) for arg in launch["args"]]
            width = min(max((len(text) for text in shown), default=0), _ARG_COLUMN)
            if not shown:
                lines.append(f"  {launch['container']}: no args of yours")
            for number, (text, arg) in enumerate(zip(shown, launch["args"], strict=True), 1):
                lines.append(
                    f"  {launch['container']} arg {number}  {text:<{width}}  "
                    f"{arg['before']} → {arg['after']}"
                )
        lines += [f"  warning: {warning}" for warning in result["warnings"]]
    return "".join(f"{line}\n" for line in lines)


def _diff_with_notes(result: Result) -> str:
    """The object's diff; before it, as `#` lines a patch tool skips, what admission decided
    when it rewrites no container (and which annotations its diff adds), and every warning."""
    notes = [] if result["diff"] and result["decision"] == Action.PATCHED else [_headline(result)]
    notes += [f"warning: {warning}" for warning in result["warnings"]]
    return "".join(f"# {note}\n" for note in notes) + result["diff"]


def formatted(results: list[Result], fmt: str) -> str:
    """The results as the CLI prints them and `/preview` returns them."""
    if fmt == "table":
        return _table(results)
    if fmt == "json":
        return _json({"results": results}, indent=2) + "\n"
    if fmt == "yaml":
        return documents.dump({"results": results})
    if fmt == "patch":
        return "".join(_json(result["patch"]) + "\n" for result in results)
    if fmt == "diff":
        return "".join(_diff_with_notes(result) for result in results)
    if fmt == "manifest":
        # A LeaderWorkerSet's leader result is followed by its worker's, which holds both edits.
        return "---\n".join(
            documents.dump(result["object"])
            for result in results
            if result.get("template") != "leader"
        )
    raise ValueError(f"unknown format {fmt!r}: choose one of {', '.join(FORMATS)}")


def _json(value: object, *, indent: int | None = None) -> str:
    """`value` as JSON text; an input JSON cannot hold (a date or a list as a mapping's key,
    which YAML allows) is an input error."""
    try:
        return json.dumps(value, indent=indent, ensure_ascii=False, default=documents.json_value)
    except TypeError as error:
        raise documents.InputError(f"the results cannot be written as JSON: {error}") from None
