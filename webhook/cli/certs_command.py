"""`multinode-webhook certs`: make the serving certificate, or install it in a cluster."""

from __future__ import annotations

import argparse
import datetime as dt
import signal
import sys
import threading
from pathlib import Path
from typing import Any

from webhook.cli.common import Switch, cluster, cluster_flags, fail, positive_days


def add(commands: Any) -> None:
    certs_command = commands.add_parser("certs", help="make or install the serving certificate")
    certs_commands = certs_command.add_subparsers(
        dest="certs_command", required=True, metavar="COMMAND"
    )
    generate = certs_commands.add_parser(
        "generate",
        help="write a CA and a serving certificate for a Service into a folder",
        description="Write ca.crt, tls.crt and tls.key for NAME, NAME.NS, NAME.NS.svc and "
        "NAME.NS.svc.cluster.local, and print the base64 caBundle for the webhook configuration. "
        "A folder that holds a pair already (a running server's ./certs, which it would reload) "
        "is refused unless --force.",
    )
    generate.add_argument("--service", required=True, help="the webhook's Service name")
    generate.add_argument("--namespace", required=True, help="the Service's namespace")
    generate.add_argument(
        "--out", type=Path, default=Path("certs"), help="folder (default: %(default)s)"
    )
    generate.add_argument(
        "--days", type=int, default=365, help="validity in days (default: %(default)s)"
    )
    generate.add_argument(
        "--force",
        action=Switch,
        default=False,
        help="replace a pair already in --out (a server using it reloads the new one)",
    )
    generate.set_defaults(run=generate_run)

    bootstrap = certs_commands.add_parser(
        "bootstrap",
        help="in the cluster: create or renew the TLS Secret and patch caBundle (idempotent)",
        description="Create the serving Secret when it is missing, renew it when it expires within "
        "--renew-before or no longer names the Service, and write its CA into every entry's "
        "caBundle. On renewal the old CA stays in caBundle next to the new one, so no handshake "
        "fails while the pods reload. Safe to run again and again. With --every it keeps "
        "running (the install's Deployment): it checks again at that interval and retries a "
        "failed check sooner, until SIGTERM.",
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
        type=duration,
        default=dt.timedelta(days=30),
        help="renew when the certificate expires within this (default: 720h)",
    )
    bootstrap.add_argument(
        "--every",
        type=duration,
        help="keep running and check again at this interval, e.g. 10m (default: check once)",
    )
    cluster_flags(bootstrap)
    bootstrap.set_defaults(run=bootstrap_run)


_DURATION_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def duration(text: str) -> dt.timedelta:
    number, unit = text[:-1], text[-1:]
    if unit not in _DURATION_UNITS or not number.isdigit():
        raise argparse.ArgumentTypeError(f"expected a duration like 720h or 30d, got {text!r}")
    return dt.timedelta(seconds=int(number) * _DURATION_UNITS[unit])


def generate_run(args: argparse.Namespace) -> int:
    from webhook.adapters import certs  # noqa: PLC0415 - preview and migrate start without it

    positive_days(args.days)
    problem = certs.name_problem(args.service, args.namespace)
    if problem is not None:
        fail(problem)
    existing = certs.pair_in(args.out)
    if existing and not args.force:
        # A local server hot-reloads ./certs: a pair for a cluster Service would replace its
        # localhost one under it.
        fail(
            f"{args.out} holds {', '.join(existing)} already (a server using them would load "
            "the new pair): choose another --out, or give --force to replace them"
        )
    bundle = certs.generate(sans=certs.service_sans(args.service, args.namespace), days=args.days)
    try:
        certs.write(bundle, args.out)
    except OSError as error:
        fail(f"cannot write {args.out}: {error}")
    written = ", ".join(
        str(args.out / name) for name in (certs.CERT_FILE, certs.KEY_FILE, certs.CA_FILE)
    )
    print(f"wrote {written}", file=sys.stderr)
    print(bundle.ca_bundle())
    return 0


def bootstrap_run(args: argparse.Namespace) -> int:
    from webhook.adapters import certs  # noqa: PLC0415
    from webhook.adapters.kube.bootstrap import Outcome, bootstrap, keep  # noqa: PLC0415
    from webhook.adapters.kube.client import KubeError, current_namespace  # noqa: PLC0415

    positive_days(args.days)
    if dt.timedelta(days=args.days) <= args.renew_before:
        # Each pass would find the new pair inside its renewal window and make another CA.
        fail(
            f"--days ({args.days}) must be longer than --renew-before "
            f"({args.renew_before}), or every pass renews the pair"
        )
    if args.every is not None and args.every <= dt.timedelta(0):
        fail("--every must be longer than 0s")
    try:
        namespace = args.namespace or current_namespace(
            kubeconfig=args.kubeconfig, context=args.context
        )
    except KubeError as error:
        fail(str(error))
    if not namespace:
        fail("--namespace is required: neither a pod's nor the kubeconfig context's is known")
    problem = certs.name_problem(args.service, namespace)
    if problem is not None:
        fail(problem)
    target = cluster(args)

    def once() -> Outcome:
        return bootstrap(
            target,
            namespace=namespace,
            service=args.service,
            secret=args.secret,
            webhook_config=args.webhook_config,
            days=args.days,
            renew_before=args.renew_before,
        )

    if args.every is not None:
        # SIGTERM, the Deployment's stop, lets a pass under way finish. Ctrl-C stops at once,
        # mid-pass too, as it stops the one-off form (exit 130): a pass may end anywhere, as the
        # CA goes into caBundle before the Secret changes and the next pass finishes the job,
        # and a pass waiting on an API server that never answers would never end.
        stop = threading.Event()
        signal.signal(signal.SIGTERM, lambda *_: stop.set())
        keep(once, every=args.every, stop=stop, say=lambda line: print(line, flush=True))
        return 0
    try:
        outcome = once()
    except KubeError as error:
        fail(str(error))
    for line in outcome.lines:
        print(line)
    return 0
