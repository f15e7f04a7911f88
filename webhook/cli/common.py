"""What the commands share: exit codes, reading input, one-line errors, and the option groups
declared once (the rewrite options, the cluster connection)."""

from __future__ import annotations

import argparse
import datetime as dt
import re
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Final, NoReturn, TypeVar

from pydantic import ValidationError
from pydantic_settings import SettingsError

from webhook.adapters.config import DecisionSettings
from webhook.core.model import Options
from webhook.core.names import Rule
from webhook.core.raw import label_pair

Chosen = TypeVar("Chosen", bound=DecisionSettings)

EXIT_FINDINGS = 1
EXIT_INPUT = 2


def fail(message: str) -> NoReturn:
    print(f"multinode-webhook: error: {message}", file=sys.stderr)
    raise SystemExit(EXIT_INPUT)


# The most a command reads of one input: a whole cluster's manifests are some megabytes, and
# an endless input (`/dev/zero`, a stream) must end in a line, not in the memory running out.
INPUT_LIMIT: Final = 256 << 20


def read(path: str) -> str:
    """An input file's text (`-`: stdin), as UTF-8."""
    try:
        if path == "-":
            if sys.stdin.isatty():
                # Else a person sees a command that seems to hang.
                print(
                    "multinode-webhook: reading stdin (end it with Ctrl-D, or give a FILE)",
                    file=sys.stderr,
                )
            # The bytes, decoded as a file is: Python's stdin would let invalid UTF-8 through
            # as surrogates, to fail later in words that do not say why.
            data = sys.stdin.buffer.read(INPUT_LIMIT + 1)
        else:
            with open(path, "rb") as handle:
                data = handle.read(INPUT_LIMIT + 1)
        if len(data) > INPUT_LIMIT:
            fail(f"{shown(path)}: larger than {INPUT_LIMIT >> 20} MiB, more than a command reads")
        return data.decode("utf-8")
    except (OSError, UnicodeDecodeError) as error:
        fail(f"cannot read {shown(path)}: {error}")


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


def _switch(parser: argparse.ArgumentParser, flag: str) -> tuple[Switch, bool] | None:
    """The Switch of `parser` that `flag` names, as argparse reads it (an option string, or an
    unambiguous prefix of a long one), and whether it names the negation (`--no-x`)."""
    actions = parser._option_string_actions  # argparse offers no public lookup
    named: str | None = flag if flag in actions else None
    if named is None and flag.startswith("--") and parser.allow_abbrev:
        matches = [o for o in actions if o.startswith(flag)]
        named = matches[0] if len(matches) == 1 else None  # several: argparse says ambiguous
    action = actions.get(named) if named is not None else None
    if not isinstance(action, Switch) or named is None:
        return None
    return action, named.startswith("--no-")


def _subcommand(parser: argparse.ArgumentParser, word: str) -> argparse.ArgumentParser | None:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction) and word in action.choices:
            return action.choices[word]  # type: ignore[no-any-return]
    return None


def switch_values(parser: argparse.ArgumentParser, argv: Sequence[str]) -> list[str]:
    """`argv` with each `--x=true|false` of a Switch written as `--x` or `--no-x`: its short
    option (`-i=false`) and an abbreviation argparse takes (`--chec=true`) too, in the
    (sub)command the word belongs to; a value that is neither is an error naming the flag."""
    current = parser
    out: list[str] = []
    for index, word in enumerate(argv):
        if word == "--":
            return [*out, *argv[index:]]
        if not word.startswith("-"):
            current = _subcommand(current, word) or current
        flag, equals, value = word.partition("=")
        found = _switch(current, flag) if equals and flag.startswith("-") else None
        if found is None:
            out.append(word)
            continue
        switch, negated = found
        if value.lower() in _TRUE | _FALSE:
            positive = next(o for o in switch.option_strings if o.startswith("--"))
            on = (value.lower() in _TRUE) != negated
            out.append(positive if on else f"--no-{positive[2:]}")
        else:
            parser.error(f"{flag}: expected true or false, got {value!r}")
    return out


def label(text: str) -> tuple[str, str]:
    try:
        return label_pair(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def options(args: argparse.Namespace) -> Options:
    """The decision options of an offline command: its flags, else the server's environment
    variables, else the server's defaults (one set of settings, `DecisionSettings`)."""
    given = {name: getattr(args, name, None) for name in DecisionSettings.model_fields}
    return settings(DecisionSettings, given).options()


def settings(kind: type[Chosen], given: dict[str, Any]) -> Chosen:
    """`kind` from the flags given (None: not given), the environment and the defaults; a bad
    value is a one-line error naming the flag or variable that set it."""
    try:
        return kind(**{k: v for k, v in given.items() if v is not None})
    except SettingsError as error:
        # An environment variable that does not parse: name it and the form it takes.
        field = re.search(r'field "(\w+)"', str(error))
        name = field.group(1) if field else "?"
        fail(f'MULTINODE_WEBHOOK_{name.upper()}: expected a JSON list, e.g. ["a", "b"]')
    except ValidationError as error:
        # Blame what set the value: the flag when it was given, else its environment variable.
        # A check across settings (a model validator) has no field: its message names them.
        fail(
            "; ".join(
                f"{setting_source(str(e['loc'][0]), given)}: {e['msg']}"
                if e["loc"]
                else e["msg"].removeprefix("Value error, ")
                for e in error.errors()
            )
        )


def setting_source(field: str, given: dict[str, Any]) -> str:
    if given.get(field) is not None:
        return "--" + field.replace("_", "-")
    return f"MULTINODE_WEBHOOK_{field.upper()}"


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


def decision_flags(command: argparse.ArgumentParser) -> None:
    """The flags of the settings admission decides by, as `serve` has them (and their
    environment variables and defaults, read by `options`)."""
    command.add_argument(
        "--containers",
        action="append",
        metavar="NAME",
        help="a container name that may be rewritten, as serve --containers (repeatable; "
        f"default: {', '.join(DecisionSettings.model_fields['containers'].default)})",
    )
    command.add_argument(
        "--llm-containers",
        action="append",
        metavar="NAME",
        help="a container name of LLMInferenceService pods that may be rewritten, as serve "
        "--llm-containers (repeatable; default: "
        f"{', '.join(DecisionSettings.model_fields['llm_containers'].default)})",
    )
    command.add_argument(
        "--own-namespace",
        metavar="NAMESPACE",
        help="the webhook's own namespace, never mutated, as serve --own-namespace "
        f"(default: {DecisionSettings.model_fields['own_namespace'].default})",
    )
    command.add_argument(
        "--max-script-bytes",
        metavar="BYTES",
        help="largest script rewritten, as serve --max-script-bytes; a larger one leaves its "
        "container unchanged (default: "
        f"{DecisionSettings.model_fields['max_script_bytes'].default})",
    )
    rules_flag(command)


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
    """--days of a new certificate: at least one, and ending by 9999, the last year X.509
    writes."""
    if days < 1:
        fail(f"--days must be at least 1, got {days}")
    last = (dt.datetime(9999, 12, 30, tzinfo=dt.UTC) - dt.datetime.now(dt.UTC)).days
    if days > last:
        fail(f"--days must be at most {last} (a certificate ends by the year 9999), got {days}")
