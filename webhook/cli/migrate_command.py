"""`multinode-webhook migrate`: the rewrite applied to runtimes and presets at their source."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from webhook.cli.common import (
    EXIT_FINDINGS,
    Switch,
    decision_flags,
    fail,
    options,
    read,
    shown,
    write,
)
from webhook.inspect.findings import counted
from webhook.offline import documents
from webhook.offline.migrate import Change, migrate_text


def add(commands: Any) -> None:
    migrate = commands.add_parser(
        "migrate",
        help="repair ServingRuntimes, Templates and LLMInferenceService presets at the source",
        description=(
            "Apply the admission rewrite to ServingRuntime, ClusterServingRuntime and OpenShift "
            "Template objects and to LLMInferenceServiceConfig presets (also inside a List), "
            "move a multi-node LLMInferenceService's args into VLLM_ADDITIONAL_ARGS, and print "
            "the stream with them fixed. Only "
            "the changed command and args lines differ; comments, quoting and every other "
            "document stay as written. Changes are listed on stderr, and so are those left to "
            "make by hand. Exit 0 when done, 1 when --check finds changes to make (by migrate or "
            "by hand), 2 when the input cannot be read."
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
        action=Switch,
        default=False,
        help="change nothing; print a table of what would change (file, object, container and "
        "its role, rules) and exit 1 when anything would or is left to change by hand, 0 when "
        "nothing is (for GitOps CI)",
    )
    migrate.add_argument(
        "-i",
        "--in-place",
        action=Switch,
        default=False,
        help="write each changed file back instead of printing the stream",
    )
    decision_flags(migrate)
    migrate.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    files: list[str] = args.files or ["-"]
    if args.in_place and args.check:
        # Else one of them is ignored: either files change that a check was to leave alone, or
        # a check passes for files meant to be fixed.
        fail("-i/--in-place and --check do not go together: --check changes nothing")
    if len(files) > 1 and not (args.in_place or args.check):
        fail("several files need -i/--in-place or --check")
    if args.in_place and "-" in files:
        fail("-i/--in-place needs files, not stdin")
    found: list[tuple[str, Change]] = []
    undone = False
    for name in files:
        try:
            named = shown(name)
            text, made = migrate_text(read(name), name=named, options=options(args))
        except documents.InputError as error:
            fail(str(error))
        changes = [change for change in made if not change.left]
        found.extend((named, change) for change in changes)
        for change in made:
            if change.left:
                undone = True
                print(f"not migrated {named}: {change}", file=sys.stderr)
        if args.check:
            continue
        if args.in_place:
            if changes:
                write(name, text)
        else:
            sys.stdout.write(text)
        for change in changes:
            print(f"migrated {named}: {change}", file=sys.stderr)
        if any(change.rewritten for change in changes):
            # Said once a file: the values are right, but a reviewer of the diff should know.
            print(
                f"{named}: a document could not be edited in place and was written out again "
                "whole: its comments and quoting are not kept",
                file=sys.stderr,
            )
    objects = {(name, c.namespace, c.runtime) for name, c in found}
    # A runtime is what most files hold; a preset or a service is named for what it is.
    noun = "runtime" if all("Runtime/" in label for _, _, label in objects) else "object"
    total = f"{counted(len(found), 'container')} in {counted(len(objects), noun)}"
    if args.check:
        if found:
            rows = [
                (name, c.namespace or "-", c.runtime, c.where, ", ".join(c.rules))
                for name, c in found
            ]
            table([("FILE", "NAMESPACE", "OBJECT", "CONTAINER", "RULES"), *rows])
        print(f"{total} would change" if found else "no runtime would change")
        return EXIT_FINDINGS if found or undone else 0
    print(f"migrated {total}" if found else "no runtime changed", file=sys.stderr)
    return 0


def table(rows: list[tuple[str, ...]]) -> None:
    widths = [max(len(row[column]) for row in rows) for column in range(len(rows[0]))]
    for row in rows:
        print(
            "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        )
