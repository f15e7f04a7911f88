"""The `multinode-webhook` command line: argument parsing, file I/O and exit codes only, one
module per command (`serve_command`, `preview_command`, `migrate_command`, `policy_command`,
`certs_command`, `check_command`) and the option groups they share in `common`.

Every command hands its input to the core and prints what comes back. Unreadable input ends
with exit 2 and one line on stderr, never a traceback.
"""

from __future__ import annotations

import argparse
import io
import logging
import os
import sys
import warnings
from collections.abc import Sequence

from webhook import __version__
from webhook.cli import (
    certs_command,
    check_command,
    migrate_command,
    policy_command,
    preview_command,
    serve_command,
)
from webhook.cli.common import fail, switch_values
from webhook.offline.isolation import isolated
from webhook.runtime.sandbox import Isolated

__all__ = ["main", "parser"]


def parser() -> argparse.ArgumentParser:
    root = argparse.ArgumentParser(
        prog="multinode-webhook",
        description=(
            "Repairs the pods of KServe multi-node predictors (InferenceService on Ray, "
            "LLMInferenceService on a LeaderWorkerSet) so that every arg written on the "
            "service reaches the model server exactly."
        ),
    )
    root.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = root.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for command in (
        preview_command,
        migrate_command,
        policy_command,
        serve_command,
        certs_command,
        check_command,
    ):
        command.add(commands)
    return root


EXIT_INTERRUPTED = 130  # 128 + SIGINT, as a shell reports a command Ctrl-C ended


def main(argv: Sequence[str] | None = None) -> int:
    root = logging.getLogger()
    if not root.handlers:
        # A library's log records (the Kubernetes client's, urllib3's retries) print nothing:
        # logging.error on a root without handlers would configure it to print them all.
        # `serve` routes logging itself.
        root.addHandler(logging.NullHandler())
    try:
        with warnings.catch_warnings():
            # A library's warning (urllib3's on an insecure-skip-tls-verify kubeconfig) is
            # for its developers: the commands say what matters themselves. -W still shows them.
            if not sys.warnoptions:
                warnings.simplefilter("ignore")
            return _run(argv)
    except KeyboardInterrupt:
        # Ctrl-C: stop quietly, as other command-line tools do; the workers ignore it.
        return EXIT_INTERRUPTED


def _run(argv: Sequence[str] | None) -> int:
    root = parser()
    args = root.parse_args(switch_values(root, sys.argv[1:] if argv is None else argv))
    # Lone surrogates can come from JSON escapes; print them escaped rather than crash.
    if isinstance(sys.stdout, io.TextIOWrapper):
        sys.stdout.reconfigure(errors="backslashreplace")
    # Scripts are parsed in a sandbox process of this run's: a parser crash is an answer, not a
    # signal that ends the command.
    isolation = Isolated()
    try:
        with isolated(isolation):
            code: int = args.run(args)
    except BrokenPipeError:
        # The reader went away (`| head`): stop quietly, as other command-line tools do.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141
    except RecursionError:
        # Past what each reader bounds itself, as the server does.
        fail("input is nested too deeply")
    except MemoryError:
        fail("input too large to hold in memory")
    except Exception as error:
        # The last word: a line, never a traceback.
        problem = " ".join(str(error).split())
        fail(f"unexpected {type(error).__name__}: {problem} (a bug: please report its input)")
    finally:
        isolation.close(wait=True)  # the process exits next
    return code
