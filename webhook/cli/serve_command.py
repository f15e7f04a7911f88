"""`multinode-webhook serve`: the admission webhook, its settings one flag each."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from webhook.adapters.config import Settings
from webhook.cli import common
from webhook.cli.common import Switch, fail


def add(commands: Any) -> None:
    serve = commands.add_parser(
        "serve",
        help="run the admission webhook (HTTPS /mutate, /mutate/shadow, /preview; HTTP health)",
        description=(
            "Serve admission reviews over HTTPS (--https-port), /preview on an HTTPS port of its "
            "own (--preview-port), and /healthz, /readyz, /metrics over plain HTTP (--http-port). "
            "Without --cert-dir, a self-signed CA and serving certificate for localhost are made "
            "under ./certs (reused on the next start) and the caBundle is printed; a pair there "
            "that serve did not make (certs generate's, for a cluster) is never replaced: serve "
            "refuses to start, saying so."
        ),
    )
    settings_flags(serve)
    serve.set_defaults(run=run)


def settings_flags(command: argparse.ArgumentParser) -> None:
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
        if spec.annotation is bool:
            # No default here: an unset flag leaves the environment and the default in force.
            command.add_argument(flag, action=Switch, default=None, help=help_text)
        elif isinstance(default, tuple):
            command.add_argument(
                flag, action="append", metavar="VALUE", help=help_text + "; repeatable"
            )
        else:
            command.add_argument(
                flag, choices=choices, metavar=None if choices else name.upper(), help=help_text
            )


def run(args: argparse.Namespace) -> int:
    # Imported here so that preview and migrate start without uvicorn, FastAPI and cryptography.
    from webhook.adapters import certs  # noqa: PLC0415
    from webhook.transport import listeners, logs  # noqa: PLC0415

    given = {name: getattr(args, name) for name in Settings.model_fields}
    settings = common.settings(Settings, given)
    if settings.cert_dir is not None and not settings.cert_dir.is_dir():
        # Said before logging starts: one line, not a log record and then the error.
        source = common.setting_source("cert_dir", given)
        fail(f"{source}: {settings.cert_dir} is not a directory")
    logs.configure(level=settings.log_level, fmt=settings.log_format)
    if settings.cert_dir is None:
        directory = Path("certs").resolve()
        replacing = (directory / certs.CA_FILE).exists()
        try:
            made = certs.ensure_self_signed(directory, sans=(*certs.DEFAULT_SANS, *settings.san))
        except certs.ForeignPair as error:
            fail(str(error))
        except OSError as error:  # ./certs a file, or not writable
            fail(f"cannot keep a self-signed pair in {directory}: {error.strerror or error}")
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
        fail(str(error))
    return 0
