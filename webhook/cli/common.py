"""What the commands share: exit codes, reading input, one-line errors, and the option groups
declared once (the rewrite options, the cluster connection)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Final, NoReturn

from webhook.core.model import Options
from webhook.core.names import Rule
from webhook.core.raw import label_pair

EXIT_FINDINGS = 1
EXIT_INPUT = 2


def counted(number: int, noun: str) -> str:
    """`1 problem`, `2 problems`: a count with its noun."""
    return f"{number} {noun}{'' if number == 1 else 's'}"


def fail(message: str) -> NoReturn:
    print(f"multinode-webhook: error: {message}", file=sys.stderr)
    raise SystemExit(EXIT_INPUT)


def read(path: str) -> str:
    try:
        if path == "-":
            if sys.stdin.isatty():
                # Else a person sees a command that seems to hang.
                print(
                    "multinode-webhook: reading stdin (end it with Ctrl-D, or give a FILE)",
                    file=sys.stderr,
                )
            return sys.stdin.read()
        with open(path, encoding="utf-8") as handle:
            return handle.read()
    except (OSError, UnicodeDecodeError) as error:
        fail(f"cannot read {path}: {error}")


def shown(path: str) -> str:
    """How an input is named in messages."""
    return "<stdin>" if path == "-" else path


def write(path: str, text: str) -> None:
    try:
        Path(path).write_text(text, encoding="utf-8")
    except OSError as error:
        fail(f"cannot write {path}: {error}")


_TRUE: Final = frozenset({"true", "yes", "on", "1"})
_FALSE: Final = frozenset({"false", "no", "off", "0"})


class Switch(argparse.Action):
    """A boolean flag that takes `--x`, `--x=true|false` and `--no-x`, as a person tries them.

    It takes no separate value (`-i file.yaml` keeps its file): `switch_values` turns
    `--x=VALUE` into `--x` or `--no-x` before parsing.
    """

    def __init__(self, option_strings: Sequence[str], dest: str, **kwargs: Any) -> None:
        negated = [f"--no-{o[2:]}" for o in option_strings if o.startswith("--")]
        super().__init__([*option_strings, *negated], dest, nargs=0, **kwargs)

    def __call__(
        self,
        parser: argparse.ArgumentParser,
        namespace: argparse.Namespace,
        values: Any,
        option_string: str | None = None,
    ) -> None:
        setattr(namespace, self.dest, not (option_string or "").startswith("--no-"))

    def format_usage(self) -> str:
        return " | ".join(o for o in self.option_strings if not o.startswith("--no-"))


def _switches(parser: argparse.ArgumentParser) -> set[str]:
    """The long option strings of every Switch of `parser` and its subcommands."""
    found: set[str] = set()
    for action in parser._actions:  # argparse offers no public walk
        if isinstance(action, Switch):
            found.update(o for o in action.option_strings if not o.startswith("--no-"))
        elif isinstance(action, argparse._SubParsersAction):
            for sub in action.choices.values():
                found |= _switches(sub)
    return found


def switch_values(parser: argparse.ArgumentParser, argv: Sequence[str]) -> list[str]:
    """`argv` with each `--x=true|false` of a Switch written as `--x` or `--no-x`; a value
    that is neither is an error naming the flag."""
    switches = _switches(parser)
    out: list[str] = []
    for index, word in enumerate(argv):
        if word == "--":
            return [*out, *argv[index:]]
        flag, equals, value = word.partition("=")
        if not equals or flag not in switches:
            out.append(word)
        elif value.lower() in _TRUE:
            out.append(flag)
        elif value.lower() in _FALSE:
            out.append(f"--no-{flag[2:]}")
        else:
            parser.error(f"{flag}: expected true or false, got {value!r}")
    return out


def label(text: str) -> tuple[str, str]:
    try:
        return label_pair(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def options(args: argparse.Namespace) -> Options:
    """The rewrite options of `preview` and `migrate`: what was given, else the defaults."""
    chosen = args.rules or [rule.value for rule in Rule]
    defaults = Options()
    return Options(
        containers=tuple(getattr(args, "containers", None) or defaults.containers),
        llm_containers=tuple(getattr(args, "llm_containers", None) or defaults.llm_containers),
        own_namespace=getattr(args, "own_namespace", None) or defaults.own_namespace,
        rules=frozenset(Rule(rule) for rule in chosen),
    )


def rules_flag(command: argparse.ArgumentParser) -> None:
    command.add_argument(
        "--rules",
        action="append",
        choices=[rule.value for rule in Rule],
        metavar="RULE",
        help="a rewrite rule to apply (repeatable; default: all of "
        f"{', '.join(Rule)}); the rules not named make none of their edits, as with "
        "serve --rules",
    )


def cluster_flags(command: argparse.ArgumentParser) -> None:
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


def cluster(args: argparse.Namespace) -> Any:
    # Imported here: only the cluster commands need the Kubernetes client.
    from webhook.adapters.kube.client import Cluster, KubeError, connect  # noqa: PLC0415

    try:
        return Cluster(connect(kubeconfig=args.kubeconfig, context=args.context))
    except KubeError as error:
        fail(str(error))


def positive_days(days: int) -> None:
    if days < 1:
        fail(f"--days must be at least 1, got {days}")
