"""The `multinode-webhook` command line: argument parsing, file I/O and exit codes only.

Every subcommand hands its input to the core and prints what comes back. Unreadable input
ends with exit 2 and one line on stderr, never a traceback.
"""

from __future__ import annotations

import argparse
import datetime as dt
import io
import json
import os
import re
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, NoReturn

from pydantic import ValidationError
from pydantic_settings import SettingsError

from webhook import __version__
from webhook.adapters.config import Settings
from webhook.core.model import Context, Decision, Options
from webhook.core.mutate import mutate
from webhook.core.names import INJECT_LABEL, STATUS_ANNOTATION, Inject, Mode, Rule
from webhook.core.raw import display_name, label_pair
from webhook.core.view import pod_view
from webhook.offline import documents
from webhook.offline.migrate import Change, migrate_text
from webhook.offline.preview import (
    FAIL_ON,
    FORMATS,
    failures,
    hints,
    preview_text,
    render,
    runtimes_in,
)
from webhook.offline.render import NEWEST, RELEASES
from webhook.offline.sandbox import resolved

EXIT_FINDINGS = 1
EXIT_INPUT = 2


def _fail(message: str) -> NoReturn:
    print(f"multinode-webhook: error: {message}", file=sys.stderr)
    raise SystemExit(EXIT_INPUT)


def _read(path: str) -> str:
    try:
        if path == "-":
            return sys.stdin.read()
        with open(path, encoding="utf-8") as handle:
            return handle.read()
    except (OSError, UnicodeDecodeError) as error:
        _fail(f"cannot read {path}: {error}")


def _shown(path: str) -> str:
    """How an input is named in messages."""
    return "<stdin>" if path == "-" else path


def _label(text: str) -> tuple[str, str]:
    try:
        return label_pair(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def _options(args: argparse.Namespace) -> Options:
    """The rewrite options of `preview` and `migrate`: what was given, else the defaults."""
    chosen = args.rules or [rule.value for rule in Rule]
    defaults = Options()
    return Options(
        containers=tuple(getattr(args, "containers", None) or defaults.containers),
        llm_containers=tuple(getattr(args, "llm_containers", None) or defaults.llm_containers),
        own_namespace=getattr(args, "own_namespace", None) or defaults.own_namespace,
        rules=frozenset(Rule(rule) for rule in chosen),
        # The command line parses scripts in a sandbox: a parser crash is an error, not a signal.
        parse_scripts=False,
    )


def _rules_flag(command: argparse.ArgumentParser) -> None:
    command.add_argument(
        "--rules",
        action="append",
        choices=[rule.value for rule in Rule],
        metavar="RULE",
        help="a rewrite rule to apply (repeatable; default: all of "
        f"{', '.join(Rule)}); the rules not named make none of their edits, as with "
        "serve --rules",
    )


def _preview(args: argparse.Namespace) -> int:
    labels = dict(args.namespace_label) if args.namespace_label is not None else None
    context = Context(namespace=args.namespace, namespace_labels=labels, mode=Mode(args.mode))
    try:
        runtimes = [
            runtime
            for path in args.runtime or ()
            for runtime in runtimes_in(documents.load(_read(path), name=path))
        ]
        results = preview_text(
            _read(args.file),
            name=_shown(args.file),
            context=context,
            options=_options(args),
            runtimes=runtimes,
            kserve_version=args.kserve_version,
        )
    except documents.InputError as error:
        _fail(str(error))
    for hint in hints(results):
        print(f"multinode-webhook: hint: {hint}", file=sys.stderr)
    sys.stdout.write(render(results, args.output))
    found = [
        f"multinode-webhook: --fail-on {condition}: {line}"
        for condition in args.fail_on or ()
        for line in failures(results, condition)
    ]
    for line in found:
        print(line, file=sys.stderr)
    return EXIT_FINDINGS if found else 0


def _migrate(args: argparse.Namespace) -> int:
    files: list[str] = args.files or ["-"]
    if len(files) > 1 and not (args.in_place or args.check):
        _fail("several files need -i/--in-place or --check")
    if args.in_place and "-" in files:
        _fail("-i/--in-place needs files, not stdin")
    found: list[tuple[str, Change]] = []
    for name in files:
        try:
            shown = _shown(name)
            text, changes = migrate_text(_read(name), name=shown, options=_options(args))
        except documents.InputError as error:
            _fail(str(error))
        found.extend((shown, change) for change in changes)
        if args.check:
            continue
        if args.in_place:
            if changes:
                _write(name, text)
        else:
            sys.stdout.write(text)
        for change in changes:
            print(f"migrated {shown}: {change}", file=sys.stderr)
    runtimes = len({(name, c.namespace, c.runtime) for name, c in found})
    total = f"{len(found)} containers in {runtimes} runtimes"
    if args.check:
        if found:
            rows = [
                (name, c.namespace or "-", c.runtime, c.container, ", ".join(c.rules))
                for name, c in found
            ]
            _table([("FILE", "NAMESPACE", "OBJECT", "CONTAINER", "RULES"), *rows])
        print(f"{total} would change" if found else "no runtime would change")
        return EXIT_FINDINGS if found else 0
    print(f"migrated {total}" if found else "no runtime changed", file=sys.stderr)
    return 0


def _write(path: str, text: str) -> None:
    try:
        Path(path).write_text(text, encoding="utf-8")
    except OSError as error:
        _fail(f"cannot write {path}: {error}")


def _table(rows: list[tuple[str, ...]]) -> None:
    widths = [max(len(row[column]) for row in rows) for column in range(len(rows[0]))]
    for row in rows:
        print(
            "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        )


def decide_in_sandbox(pod: Mapping[str, Any], context: Context) -> Decision:
    """What admission decides for a cluster's pod, its scripts parsed in the sandbox, and a
    script that crashes the parser answered `parser-failed` as admission answers it."""
    options = Options(parse_scripts=False)
    view = pod_view(pod)
    return resolved(
        lambda: mutate(view, context=context, options=options),
        what=f"Pod {display_name(pod)}",
        answer_crashes=True,
    )


def _setting_source(field: str, given: dict[str, Any]) -> str:
    if given.get(field) is not None:
        return "--" + field.replace("_", "-")
    return f"MULTINODE_WEBHOOK_{field.upper()}"


def _serve(args: argparse.Namespace) -> int:
    # Imported here so that preview and migrate start without uvicorn, FastAPI and cryptography.
    from webhook.adapters import certs  # noqa: PLC0415
    from webhook.transport import listeners, logs  # noqa: PLC0415

    given = {name: getattr(args, name) for name in Settings.model_fields}
    try:
        settings = Settings(**{k: v for k, v in given.items() if v is not None})
    except SettingsError as error:
        # An environment variable that does not parse: name it and the form it takes.
        field = re.search(r'field "(\w+)"', str(error))
        name = field.group(1) if field else "?"
        _fail(f'MULTINODE_WEBHOOK_{name.upper()}: expected a JSON list, e.g. ["a", "b"]')
    except ValidationError as error:
        # Blame what set the value: the flag when it was given, else its environment variable.
        problems = "; ".join(
            f"{_setting_source(str(e['loc'][0]), given)}: {e['msg']}" for e in error.errors()
        )
        _fail(problems)
    logs.configure(level=settings.log_level, fmt=settings.log_format)
    if settings.cert_dir is None:
        directory = Path("certs").resolve()
        replacing = (directory / certs.CA_FILE).exists()
        made = certs.ensure_self_signed(directory, sans=(*certs.DEFAULT_SANS, *settings.san))
        if made is None:
            print(f"reusing a self-signed certificate in {directory}")
        else:
            print(f"made a self-signed CA and certificate in {directory}: {made}")
            if replacing:
                print("the CA is new: update every caBundle and --cacert made from the old one")
        print(f"CA certificate: {directory / certs.CA_FILE}")
        print(f"caBundle: {certs.ca_bundle((directory / certs.CA_FILE).read_bytes())}", flush=True)
        settings = settings.model_copy(update={"cert_dir": directory})
    try:
        listeners.serve(settings)
    except (OSError, ValueError) as error:
        _fail(str(error))
    return 0


_DURATION_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def _duration(text: str) -> dt.timedelta:
    number, unit = text[:-1], text[-1:]
    if unit not in _DURATION_UNITS or not number.isdigit():
        raise argparse.ArgumentTypeError(f"expected a duration like 720h or 30d, got {text!r}")
    return dt.timedelta(seconds=int(number) * _DURATION_UNITS[unit])


def _certs_generate(args: argparse.Namespace) -> int:
    from webhook.adapters import certs  # noqa: PLC0415 - preview and migrate start without it

    _positive_days(args.days)
    bundle = certs.generate(sans=certs.service_sans(args.service, args.namespace), days=args.days)
    try:
        certs.write(bundle, args.out)
    except OSError as error:
        _fail(f"cannot write {args.out}: {error}")
    written = ", ".join(
        str(args.out / name) for name in (certs.CERT_FILE, certs.KEY_FILE, certs.CA_FILE)
    )
    print(f"wrote {written}", file=sys.stderr)
    print(bundle.ca_bundle())
    return 0


def _cluster(args: argparse.Namespace) -> Any:
    # Imported here: only the cluster commands need the Kubernetes client.
    from webhook.adapters.kube.client import Cluster, KubeError, connect  # noqa: PLC0415

    try:
        return Cluster(connect(kubeconfig=args.kubeconfig, context=args.context))
    except KubeError as error:
        _fail(str(error))


def _positive_days(days: int) -> None:
    if days < 1:
        _fail(f"--days must be at least 1, got {days}")


def _certs_bootstrap(args: argparse.Namespace) -> int:
    from webhook.adapters.kube.bootstrap import bootstrap  # noqa: PLC0415
    from webhook.adapters.kube.client import KubeError, current_namespace  # noqa: PLC0415

    _positive_days(args.days)
    namespace = args.namespace or current_namespace(
        kubeconfig=args.kubeconfig, context=args.context
    )
    if not namespace:
        _fail("--namespace is required: neither a pod's nor the kubeconfig context's is known")
    try:
        actions = bootstrap(
            _cluster(args),
            namespace=namespace,
            service=args.service,
            secret=args.secret,
            webhook_config=args.webhook_config,
            days=args.days,
            renew_before=args.renew_before,
        )
    except KubeError as error:
        _fail(str(error))
    for action in actions:
        print(action)
    return 0


def _audit(args: argparse.Namespace) -> int:
    from webhook.adapters.kube.audit import NotServing, audit, restart  # noqa: PLC0415
    from webhook.adapters.kube.client import KubeError  # noqa: PLC0415

    for flag, given in (("--pod", args.pod), ("--address", args.address)):
        if given:
            _fail(f"{flag} does not go with --audit")
    if args.namespace and args.all_namespaces:
        _fail("--namespace and --all-namespaces exclude each other")
    if args.restart and not args.yes:
        _fail("--restart recreates pods: add --yes to go ahead")
    cluster = _cluster(args)
    done: list[str] = []
    try:
        found = audit(
            cluster,
            webhook_config=args.webhook_config,
            namespace=args.namespace,
            decide=decide_in_sandbox,
        )
        left = found.unrepaired
        if args.restart and found.owners:
            done, left = restart(
                cluster,
                found.owners,
                webhook_config=args.webhook_config,
                now=dt.datetime.now(dt.UTC),
            )
    except NotServing as error:
        _fail(
            f"--restart refused: the webhook is not serving ({error}); recreated pods would "
            "be admitted unrepaired again. `multinode-webhook check` says why"
        )
    except KubeError as error:
        _fail(str(error))
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
    for line in done:
        print(line, file=sys.stderr)
    # After --restart, what is left is what no Deployment recreates.
    return EXIT_FINDINGS if left else 0


def _check(args: argparse.Namespace) -> int:
    from webhook.adapters.kube.check import check  # noqa: PLC0415
    from webhook.adapters.kube.client import KubeError, current_namespace  # noqa: PLC0415

    if args.audit:
        return _audit(args)
    for flag, given in (
        ("--all-namespaces", args.all_namespaces),
        ("--restart", args.restart),
        ("-o json", args.output == "json"),
    ):
        if given:
            _fail(f"{flag} goes with --audit")

    address = None
    if args.address:
        host, _, port = args.address.rpartition(":")
        if not host or not port.isdigit():
            _fail(f"--address must be HOST:PORT, got {args.address!r}")
        address = (host, int(port))
    namespace = args.namespace
    if args.pod and not namespace:
        namespace = current_namespace(kubeconfig=args.kubeconfig, context=args.context)
        if not namespace:
            _fail("--pod needs --namespace: the kubeconfig context names none")
    try:
        findings = check(
            _cluster(args),
            webhook_config=args.webhook_config,
            secret=args.secret,
            namespace=namespace,
            pod=args.pod,
            address=address,
            decide=decide_in_sandbox,
        )
    except KubeError as error:
        _fail(str(error))
    for finding in findings:
        print(
            ("!! " if not finding.ok else "?? " if not finding.verified else "   ") + finding.text
        )
    problems = sum(not f.ok for f in findings)
    unverified = sum(f.ok and not f.verified for f in findings)
    print(f"{problems} problems (!!), {unverified} not verified from here (??)")
    return 0 if not problems else EXIT_FINDINGS


def _cluster_flags(command: argparse.ArgumentParser) -> None:
    command.add_argument(
        "--kubeconfig", help="kubeconfig file (default: in-cluster, $KUBECONFIG, ~/.kube/config)"
    )
    command.add_argument("--context", help="kubeconfig context (default: the current one)")
    command.add_argument(
        "--webhook-config",
        default="multinode-webhook",
        help="MutatingWebhookConfiguration name (default: %(default)s)",
    )
    command.add_argument(
        "--secret",
        default="multinode-webhook-tls",
        help="the serving certificate's Secret (default: %(default)s)",
    )


def _settings_flags(command: argparse.ArgumentParser) -> None:
    """One flag per Settings field; unset flags leave the environment and defaults in force."""
    for name, spec in Settings.model_fields.items():
        flag = "--" + name.replace("_", "-")
        env = f"MULTINODE_WEBHOOK_{name.upper()}"
        default = spec.default
        shown = ",".join(default) if isinstance(default, tuple) else default
        if shown in ("", None):
            shown = "none"
        help_text = f"{spec.description} (env {env}; default: {shown})"
        choices = (
            getattr(spec.annotation, "__args__", None)
            if "Literal" in str(spec.annotation)
            else None
        )
        if isinstance(default, tuple):
            command.add_argument(
                flag, action="append", metavar="VALUE", help=help_text + "; repeatable"
            )
        else:
            command.add_argument(
                flag, choices=choices, metavar=None if choices else name.upper(), help=help_text
            )


def _add_check(commands: Any) -> None:
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
        action="store_true",
        help="list covered pods in a repairable shape that carry no "
        f"{STATUS_ANNOTATION} annotation, grouped by Deployment or LeaderWorkerSet and by "
        "InferenceService or LLMInferenceService",
    )
    check.add_argument(
        "-A",
        "--all-namespaces",
        action="store_true",
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
        action="store_true",
        help="with --audit: restart each Deployment found, as kubectl rollout restart does "
        "(needs --yes, and RBAC to patch Deployments)",
    )
    check.add_argument("--yes", action="store_true", help="confirm --restart")
    check.add_argument(
        "--pod", help="a pod to explain, in --namespace (default: the kubeconfig context's)"
    )
    check.add_argument(
        "--address",
        metavar="HOST:PORT",
        help="where to reach the webhook (default: its Service's DNS name)",
    )
    _cluster_flags(check)
    check.set_defaults(run=_check)


def parser() -> argparse.ArgumentParser:
    root = argparse.ArgumentParser(
        prog="multinode-webhook",
        description=(
            "Repairs KServe multi-node (Ray) predictor pods whose launch script sits in args, "
            "so that InferenceService args reach the model server."
        ),
    )
    root.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = root.add_subparsers(dest="command", required=True, metavar="COMMAND")

    preview = commands.add_parser(
        "preview",
        help="show what admission would do to pods, workloads or AdmissionReviews (no cluster)",
        description=(
            "Read a Pod, a workload with a pod template, a List, a multi-document YAML stream "
            "or an AdmissionReview, and print for each object the decision, the reason, the "
            "selection trace, the JSON patch, the resulting object and a diff. An "
            "InferenceService is rendered into the head and worker pods KServe builds from it "
            "and its runtime (--runtime, or in the same input), and each gets its launch "
            "command's argv before and after admission: which of your args arrive, split, or "
            "not at all. Exit 0 when the input was understood, 1 when a --fail-on condition "
            "holds, 2 when it could not be read."
        ),
    )
    preview.add_argument(
        "file", nargs="?", default="-", metavar="FILE", help="JSON or YAML; - for stdin (default)"
    )
    preview.add_argument(
        "-o",
        "--output",
        choices=FORMATS,
        default="json",
        help="json, yaml: full results; patch: a JSON patch per object a line; diff: unified "
        "diff; manifest: only the resulting objects, a YAML stream for kubectl apply -f -",
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
        "--containers",
        action="append",
        metavar="NAME",
        help="a container name that may be rewritten, as serve --containers (repeatable; "
        "default: kserve-container, worker-container)",
    )
    preview.add_argument(
        "--llm-containers",
        action="append",
        metavar="NAME",
        help="a container name of LLMInferenceService pods that may be rewritten, as serve "
        "--llm-containers (repeatable; default: main)",
    )
    preview.add_argument(
        "--own-namespace",
        metavar="NAMESPACE",
        help="the webhook's own namespace, never mutated, as serve --own-namespace "
        "(default: multinode-webhook)",
    )
    preview.add_argument(
        "--namespace", help="namespace to simulate (default: the object's, else 'default')"
    )
    preview.add_argument(
        "--namespace-label",
        action="append",
        type=_label,
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
        "--kserve-version",
        default=NEWEST,
        metavar="VERSION",
        help="the KServe release whose rules build the pods of an InferenceService, from "
        f"{RELEASES[0].line} (default: %(default)s)",
    )
    _rules_flag(preview)
    preview.set_defaults(run=_preview)

    migrate = commands.add_parser(
        "migrate",
        help="rewrite legacy ServingRuntimes, ClusterServingRuntimes and Templates at the source",
        description=(
            "Apply the admission rewrite to ServingRuntime, ClusterServingRuntime and OpenShift "
            "Template objects (also inside a List) and print the stream with them fixed. Only "
            "the changed command and args lines differ; comments, quoting and every other "
            "document stay as written. Changes are listed on stderr. Exit 0 when done, 1 when "
            "--check finds changes to make, 2 when the input cannot be read."
        ),
    )
    migrate.add_argument(
        "files",
        nargs="*",
        metavar="FILE",
        help="YAML or JSON; - for stdin (the default); several need -i or --check",
    )
    migrate.add_argument(
        "--check",
        action="store_true",
        help="change nothing; print a table of what would change (file, object, container, "
        "rules) and exit 1 when anything would, 0 when nothing would (for GitOps CI)",
    )
    migrate.add_argument(
        "-i",
        "--in-place",
        action="store_true",
        help="write each changed file back instead of printing the stream",
    )
    _rules_flag(migrate)
    migrate.set_defaults(run=_migrate)

    serve = commands.add_parser(
        "serve",
        help="run the admission webhook (HTTPS /mutate, /mutate/shadow, /preview; HTTP health)",
        description=(
            "Serve admission reviews over HTTPS (--https-port), /preview on an HTTPS port of its "
            "own (--preview-port), and /healthz, /readyz, /metrics over plain HTTP (--http-port). "
            "Without --cert-dir, a self-signed CA and serving certificate for localhost are made "
            "under ./certs (reused on the next start) and the caBundle is printed."
        ),
    )
    _settings_flags(serve)
    serve.set_defaults(run=_serve)

    certs_command = commands.add_parser("certs", help="make or install the serving certificate")
    certs_commands = certs_command.add_subparsers(
        dest="certs_command", required=True, metavar="COMMAND"
    )
    generate = certs_commands.add_parser(
        "generate",
        help="write a CA and a serving certificate for a Service into a folder",
        description="Write ca.crt, tls.crt and tls.key for NAME, NAME.NS, NAME.NS.svc and "
        "NAME.NS.svc.cluster.local, and print the base64 caBundle for the webhook configuration.",
    )
    generate.add_argument("--service", required=True, help="the webhook's Service name")
    generate.add_argument("--namespace", required=True, help="the Service's namespace")
    generate.add_argument(
        "--out", type=Path, default=Path("certs"), help="folder (default: %(default)s)"
    )
    generate.add_argument(
        "--days", type=int, default=365, help="validity in days (default: %(default)s)"
    )
    generate.set_defaults(run=_certs_generate)

    bootstrap = certs_commands.add_parser(
        "bootstrap",
        help="in the cluster: create or renew the TLS Secret and patch caBundle (idempotent)",
        description="Create the serving Secret when it is missing, renew it when it expires within "
        "--renew-before or no longer names the Service, and write its CA into every entry's "
        "caBundle. On renewal the old CA stays in caBundle next to the new one, so no handshake "
        "fails while the pods reload. Safe to run again and again.",
    )
    bootstrap.add_argument(
        "--namespace",
        help="namespace of the Secret and Service (default: $POD_NAMESPACE, else the pod's own)",
    )
    bootstrap.add_argument(
        "--service", default="multinode-webhook", help="Service name (default: %(default)s)"
    )
    bootstrap.add_argument(
        "--days", type=int, default=365, help="validity of a new pair (default: %(default)s)"
    )
    bootstrap.add_argument(
        "--renew-before",
        type=_duration,
        default=dt.timedelta(days=30),
        help="renew when the certificate expires within this (default: 720h)",
    )
    _cluster_flags(bootstrap)
    bootstrap.set_defaults(run=_certs_bootstrap)

    _add_check(commands)
    return root


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    # Lone surrogates can come from JSON escapes; print them escaped rather than crash.
    if isinstance(sys.stdout, io.TextIOWrapper):
        sys.stdout.reconfigure(errors="backslashreplace")
    try:
        code: int = args.run(args)
    except BrokenPipeError:
        # The reader went away (`| head`): stop quietly, as other command-line tools do.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141
    return code
