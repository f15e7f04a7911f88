"""`multinode-webhook policy`: the repair of known scripts, compiled into a
MutatingAdmissionPolicy and its binding that the API server runs itself."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from webhook.cli.common import (
    EXIT_FINDINGS,
    Switch,
    cluster,
    decision_flags,
    fail,
    options,
    read,
    shown,
)
from webhook.core.kinds import ISVC_KIND, LLMISVC_KIND
from webhook.core.names import Mode
from webhook.offline import documents
from webhook.offline.policy import (
    COST_LIMIT,
    EXPRESSION_LIMIT,
    OBJECT_LIMIT,
    Compiled,
    PolicyTooLarge,
    compile_shapes,
    split,
    with_bindings,
)


def add(commands: Any) -> None:
    policy = commands.add_parser(
        "policy",
        help="compile the repair of known scripts into a MutatingAdmissionPolicy (no server)",
        description=(
            "Read runtimes (ServingRuntime, ClusterServingRuntime, Template, or pods and "
            "workloads holding them, LeaderWorkerSets and Deployments of LLMInferenceServices) "
            "and LLMInferenceServiceConfig presets, and print a MutatingAdmissionPolicy and its "
            "binding (several, when kube-apiserver's limits want the scripts split) that "
            "repair exactly their scripts, as the webhook does, inside the API server: no "
            "server, no certificates, no fail-open window. A preset covers the pods of every "
            "LLMInferenceService rendered from it, present or future. A pod whose script is "
            "not among them is left alone: run the webhook for any script, and for shadow mode "
            "(a policy has no warnings, so it cannot report without applying). `kubectl apply "
            "-f -` takes the output as it is. Exit 0, or 1 with --explain when an input is not "
            "covered, or 2 when nothing in the inputs can be compiled or a script fits in no "
            "policy."
        ),
    )
    policy.add_argument(
        "files", nargs="*", metavar="FILE", help="YAML or JSON; - for stdin (default: stdin)"
    )
    policy.add_argument(
        "--from-cluster",
        action=Switch,
        default=False,
        help="read the cluster's runtimes, LLMInferenceServiceConfig presets and "
        "LLMInferenceService workloads instead of files",
    )
    policy.add_argument(
        "--mode",
        choices=[mode.value for mode in Mode],
        default=Mode.OPT_IN,
        help="the namespaces the binding selects, as the webhook's overlays do "
        "(default: %(default)s)",
    )
    policy.add_argument(
        "--explain",
        action=Switch,
        default=False,
        help="print to stderr each script covered, each input left to the webhook and why, "
        "and each policy's figures against kube-apiserver's limits (scripts that do not fit one "
        "policy are split across several)",
    )
    policy.add_argument("--kubeconfig", help="kubeconfig file, with --from-cluster")
    policy.add_argument("--context", help="kubeconfig context, with --from-cluster")
    decision_flags(policy)
    policy.set_defaults(run=run)


def _say_left(compiled: Compiled) -> None:
    for line in compiled.uncovered:
        print(f"left to the webhook: {line}", file=sys.stderr)


def run(args: argparse.Namespace) -> int:
    if args.from_cluster and args.files:
        fail("--from-cluster reads no files")
    try:
        if args.from_cluster:
            from webhook.adapters.kube.client import KubeError  # noqa: PLC0415
            from webhook.adapters.kube.sources import cluster_sources  # noqa: PLC0415

            try:
                sources = cluster_sources(cluster(args))
            except KubeError as error:
                fail(str(error))
        else:
            sources = [
                (shown(name), document)
                for name in args.files or ["-"]
                for document in documents.load(read(name), name=shown(name))
            ]
        compiled = compile_shapes(sources, options=options(args))
    except documents.InputError as error:
        fail(str(error))
    if not compiled.shapes:
        _say_left(compiled)
        fail(
            "nothing to compile: the cluster holds no runtime or LLMInferenceService workload "
            "whose script the webhook would repair (are KServe's CRDs installed?)"
            if args.from_cluster
            else "nothing to compile: the inputs hold no runtime, pod or workload whose script "
            "the webhook would repair (an InferenceService names its runtime: give the "
            "ServingRuntime)"
        )
    try:
        policies = split(compiled)
    except PolicyTooLarge as error:
        fail(f"kube-apiserver would refuse the policy: {error}")
    objects = with_bindings(policies, mode=Mode(args.mode))
    sys.stdout.write("---\n".join(documents.dump(item) for item in objects))
    if not args.explain:
        return 0
    for shape in compiled.shapes:
        kind = LLMISVC_KIND if shape.llm else ISVC_KIND
        what = f"{kind} pods"
        if shape.pattern is not None:
            what = "the pods of every LLMInferenceService rendered from it"
        print(f"covered: {shape.source} {shape.name} ({what})", file=sys.stderr)
        for other in compiled.also.get(shape.digest, []):
            print(f"covered: {other} (the same script as {shape.source})", file=sys.stderr)
    _say_left(compiled)
    for _, found in policies:
        print(
            f"policy {found.name}: {found.scripts} script{'' if found.scripts == 1 else 's'}; "
            "largest CEL expression "
            f"{found.expression} of {EXPRESSION_LIMIT} code points; {found.size} of "
            f"{OBJECT_LIMIT} bytes; estimated CEL cost per pod {found.cost} of {COST_LIMIT}",
            file=sys.stderr,
        )
    return EXIT_FINDINGS if compiled.uncovered else 0
