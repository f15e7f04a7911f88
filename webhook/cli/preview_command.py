"""`multinode-webhook preview`: what admission would do to the objects given, offline."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Mapping
from typing import Any

from webhook.cli.common import (
    EXIT_FINDINGS,
    decision_flags,
    fail,
    label,
    options,
    read,
    shown,
)
from webhook.core.kinds import PRESET_KIND
from webhook.core.model import Context
from webhook.core.names import INJECT_LABEL, Inject, Mode
from webhook.offline import documents
from webhook.offline.preview import presets_in, preview_text, runtimes_in
from webhook.offline.render import NEWEST, RELEASES
from webhook.offline.report import FAIL_ON, FORMATS, failures, formatted, hints


def add(commands: Any) -> None:
    preview = commands.add_parser(
        "preview",
        help="show what admission would do to pods, workloads or AdmissionReviews (no cluster)",
        description=(
            "Read a Pod, a workload with a pod template (a LeaderWorkerSet's two included), a "
            "List, a multi-document YAML stream or an AdmissionReview, and print for each object "
            "the decision, the reason, the selection trace, the JSON patch, the resulting "
            "object and a diff. An InferenceService is rendered into the head and worker pods "
            "KServe builds from it and its runtime (--runtime, or in the same input), and each "
            "gets its launch command's argv before and after admission: which of your args "
            "arrive, split, or not at all. An LLMInferenceService is rendered the same way into "
            "the pods KServe builds from it and its presets (--preset, or in the same input), "
            "and so is an LLMInferenceService's pod given as it is. Exit 0 when "
            "the input was understood, 1 when a --fail-on condition holds, 2 when it could not "
            "be read."
        ),
    )
    preview.add_argument(
        "file", nargs="?", default="-", metavar="FILE", help="JSON or YAML; - for stdin (default)"
    )
    preview.add_argument(
        "-o",
        "--output",
        choices=FORMATS,
        help="table: a line per object, then per arg (before -> after), and its warnings "
        "(the default on a terminal); json (the default otherwise), yaml: full results; "
        "patch: a JSON patch per object a line; diff: unified diff, with each warning and "
        "each unchanged object's decision as # lines; manifest: only the resulting objects, a "
        "YAML stream for kubectl apply -f -",
    )
    preview.add_argument(
        "--fail-on",
        action="append",
        choices=FAIL_ON,
        help="exit 1 when a container was left unchanged with a warning (warning), or when a "
        "KServe pod would not be patched though its args do not arrive (unpatched); "
        "repeatable",
    )
    preview.add_argument(
        "--namespace", help="namespace to simulate (default: the object's, else 'default')"
    )
    preview.add_argument(
        "--namespace-label",
        action="append",
        type=label,
        metavar="KEY=VALUE",
        help=(
            "a label of the simulated namespace (repeatable); given at least once, the namespace "
            f"test of the install mode runs first, e.g. {INJECT_LABEL}={Inject.SHADOW}"
        ),
    )
    preview.add_argument(
        "--mode",
        choices=[mode.value for mode in Mode],
        default=Mode.OPT_IN,
        help="install mode for the namespace test (default: %(default)s)",
    )
    preview.add_argument(
        "--runtime",
        action="append",
        metavar="FILE",
        help="a ServingRuntime or ClusterServingRuntime (or a Template or List of them) for "
        "the InferenceServices of the input; chosen by spec.predictor.model.runtime "
        "(repeatable)",
    )
    preview.add_argument(
        "--preset",
        action="append",
        metavar="FILE",
        help="an LLMInferenceServiceConfig (or a List of them) for the LLMInferenceServices of "
        "the input; the well-known one for each service's shape is chosen, then its baseRefs "
        "(repeatable)",
    )
    preview.add_argument(
        "--kserve-version",
        default=NEWEST,
        metavar="VERSION",
        help="the KServe release whose rules build the pods of an InferenceService, from "
        f"{RELEASES[0].line} (default: %(default)s)",
    )
    decision_flags(preview)
    preview.set_defaults(run=run)


def _given(
    found_in: Callable[[list[Any]], list[Mapping[str, Any]]], path: str, kind: str
) -> list[Mapping[str, Any]]:
    """The objects of `kind` in the file given to --runtime or --preset: a file with none is
    an error, not a silent nothing (a wrong file named)."""
    found = found_in(documents.load(read(path), name=shown(path)))
    if not found:
        fail(f"{shown(path)}: holds no {kind}")
    return found


def run(args: argparse.Namespace) -> int:
    labels = dict(args.namespace_label) if args.namespace_label is not None else None
    context = Context(namespace=args.namespace, namespace_labels=labels, mode=Mode(args.mode))
    try:
        runtimes = [
            runtime
            for path in args.runtime or ()
            for runtime in _given(runtimes_in, path, "ServingRuntime or ClusterServingRuntime")
        ]
        presets = [
            preset for path in args.preset or () for preset in _given(presets_in, path, PRESET_KIND)
        ]
        results = preview_text(
            read(args.file),
            name=shown(args.file),
            context=context,
            options=options(args),
            runtimes=runtimes,
            presets=presets,
            kserve_version=args.kserve_version,
            apart=documents.Apart(runtime="--runtime FILE", preset="--preset FILE"),
        )
    except documents.InputError as error:
        fail(str(error))
    # A person at a terminal reads the table; a pipe or a file gets JSON, as before.
    try:
        text = formatted(results, args.output or ("table" if sys.stdout.isatty() else "json"))
    except documents.InputError as error:
        fail(f"{shown(args.file)}: {error}")
    for hint in hints(results):
        print(f"multinode-webhook: hint: {hint}", file=sys.stderr)
    sys.stdout.write(text)
    found = [
        f"multinode-webhook: --fail-on {condition}: {line}"
        for condition in args.fail_on or ()
        for line in failures(results, condition)
    ]
    for line in found:
        print(line, file=sys.stderr)
    return EXIT_FINDINGS if found else 0
