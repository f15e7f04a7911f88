"""`multinode-webhook check`: the read-only cluster report, and the audit of the pods that
slipped through."""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
from functools import partial
from typing import Any

from webhook.cli.common import (
    EXIT_FINDINGS,
    Switch,
    cluster,
    cluster_flags,
    decision_flags,
    fail,
    options,
)
from webhook.core.names import STATUS_ANNOTATION
from webhook.inspect.findings import counted


def add(commands: Any) -> None:
    """The `check` command: the cluster report, and the audit."""
    check = commands.add_parser(
        "check",
        help="read-only cluster report: coverage, TLS, and why a pod was (not) mutated",
        description="Report which namespaces the installed webhook mutates or shadows, whether "
        "caBundle verifies the Secret's and the Service's certificate, days to expiry, and for "
        "--pod whether that pod was mutated or why not. With --audit, list instead the running "
        "pods it covers that it left unrepaired (created while it was down, or before it was "
        "installed), by owner, with the command that recreates them through it. Exit 1 when a "
        "problem or an unrepaired pod is found, 2 on a usage or connection error.",
    )
    check.add_argument(
        "--namespace", help="report on (or audit) this namespace only (and the --pod's)"
    )
    check.add_argument(
        "--audit",
        action=Switch,
        default=False,
        help="list covered pods in a repairable shape that carry no "
        f"{STATUS_ANNOTATION} annotation, grouped by Deployment or LeaderWorkerSet and by "
        "InferenceService or LLMInferenceService",
    )
    check.add_argument(
        "-A",
        "--all-namespaces",
        action=Switch,
        default=False,
        help="audit every namespace (the default without --namespace)",
    )
    check.add_argument(
        "-o",
        "--output",
        choices=("text", "json"),
        default="text",
        help="the audit as text or as JSON with the count to alert on (default: %(default)s)",
    )
    check.add_argument(
        "--restart",
        action=Switch,
        default=False,
        help="with --audit: restart each Deployment found, as kubectl rollout restart does "
        "(needs --yes, and RBAC to patch Deployments)",
    )
    check.add_argument("--yes", action=Switch, default=False, help="confirm --restart")
    check.add_argument(
        "--pod", help="a pod to explain, in --namespace (default: the kubeconfig context's)"
    )
    check.add_argument(
        "--address",
        metavar="HOST:PORT",
        help="where to reach the webhook (default: its Service's DNS name)",
    )
    decision_flags(check)
    cluster_flags(check)
    check.set_defaults(run=run)


def audit(args: argparse.Namespace) -> int:
    from webhook.adapters.kube.client import KubeError  # noqa: PLC0415
    from webhook.inspect.audit import NotServing, audit, restart  # noqa: PLC0415
    from webhook.inspect.installation import decided  # noqa: PLC0415

    for flag, given in (("--pod", args.pod), ("--address", args.address)):
        if given:
            fail(f"{flag} does not go with --audit")
    if args.namespace and args.all_namespaces:
        fail("--namespace and --all-namespaces exclude each other")
    if args.restart and not args.yes:
        fail("--restart recreates pods: add --yes to go ahead")
    connected = cluster(args)
    done: list[str] = []
    try:
        found = audit(
            connected,
            webhook_config=args.webhook_config,
            namespace=args.namespace,
            decide=partial(decided, options=options(args)),
        )
        left = found.unrepaired
        if args.restart and found.owners:
            done, left = restart(
                connected,
                found.owners,
                webhook_config=args.webhook_config,
                now=dt.datetime.now(dt.UTC),
            )
    except NotServing as error:
        fail(
            f"--restart refused: the webhook is not serving ({error}); recreated pods would "
            "be admitted unrepaired again. `multinode-webhook check` says why"
        )
    except KubeError as error:
        fail(str(error))
    if args.output == "json":
        print(json.dumps(found.to_json(), indent=2))
    else:
        looked = args.namespace or "all namespaces"
        print(f"covered namespaces ({looked}): {', '.join(found.namespaces) or 'none'}")
        print(f"unrepaired pods: {found.unrepaired}")
        for owner in found.owners:
            isvc = (
                f" (InferenceService {owner.inference_service})" if owner.inference_service else ""
            ) + (
                f" (LLMInferenceService {owner.llm_inference_service})"
                if owner.llm_inference_service
                else ""
            )
            print(f"!! {owner.kind} {owner.namespace}/{owner.name}{isvc}: {', '.join(owner.pods)}")
            if not args.restart:
                print(f"   {owner.restart_command()}")
        for pod in found.replaced:
            service = f" (LLMInferenceService {pod.llm_inference_service})"
            print(f"!! Pod {pod.namespace}/{pod.pod}{service if pod.llm_inference_service else ''}")
            print(f"   {pod.problem}")
        for namespace, pod_name in found.uncovered:
            print(
                f"!! Pod {namespace}/{pod_name}: no installed policy or webhook covers its script "
                "(its runtime changed after the policy was compiled): compile it again, "
                "multinode-webhook policy --from-cluster | kubectl apply -f -"
            )
        for namespace, pod_name in found.skipped:
            print(
                f"!! Pod {namespace}/{pod_name}: the installed policy leaves it to the webhook "
                "(an arg holds a newline), so recreating it changes nothing: install the "
                "webhook, or fix its preset at the source (multinode-webhook migrate)"
            )
    for line in done:
        print(line, file=sys.stderr)
    # After --restart, what is left is what no Deployment recreates, and the pods that only a
    # fix at the source, a policy compiled again, or the webhook repairs.
    return EXIT_FINDINGS if left or found.replaced or found.uncovered or found.skipped else 0


def run(args: argparse.Namespace) -> int:
    from webhook.adapters.kube.client import KubeError, current_namespace  # noqa: PLC0415
    from webhook.inspect.installation import check, decided  # noqa: PLC0415

    if args.audit:
        return audit(args)
    for flag, given in (
        ("--all-namespaces", args.all_namespaces),
        ("--restart", args.restart),
        ("-o json", args.output == "json"),
    ):
        if given:
            fail(f"{flag} goes with --audit")

    address = None
    if args.address:
        host, _, port = args.address.rpartition(":")
        if not host or not port.isdigit():
            fail(f"--address must be HOST:PORT, got {args.address!r}")
        address = (host, int(port))
    namespace = args.namespace
    if args.pod and not namespace:
        try:
            namespace = current_namespace(kubeconfig=args.kubeconfig, context=args.context)
        except KubeError as error:
            fail(str(error))
        if not namespace:
            fail("--pod needs --namespace: the kubeconfig context names none")
    try:
        findings = check(
            cluster(args),
            webhook_config=args.webhook_config,
            secret=args.secret,
            namespace=namespace,
            pod=args.pod,
            address=address,
            decide=partial(decided, options=options(args)),
        )
    except KubeError as error:
        fail(str(error))
    for finding in findings:
        print(
            ("!! " if not finding.ok else "?? " if not finding.verified else "   ") + finding.text
        )
    problems = sum(not f.ok for f in findings)
    unverified = sum(f.ok and not f.verified for f in findings)
    print(f"{counted(problems, 'problem')} (!!), {unverified} not verified from here (??)")
    return 0 if not problems else EXIT_FINDINGS
