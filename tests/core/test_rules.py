"""Each rule can be switched off, and then exactly its edits are gone: nothing else changes."""

from __future__ import annotations

from typing import Any

import jsonpatch
import pytest

from tests.support.builders import admit, pod
from webhook.core import names
from webhook.core.model import Options
from webhook.core.names import Action, Reason, Rule
from webhook.core.patch import to_json
from webhook.core.script import MODEL_LINE

MODEL_BLOCK = (
    "export MODEL=${MODEL_ID}\nif [[ ! -z ${MODEL_DIR} ]]\nthen\n  MODEL=${MODEL_DIR}\nfi\n"
)
LAUNCH = "python -m huggingfaceserver --model_dir=${MODEL}"


def head(command: list[str], args: list[str]) -> dict[str, Any]:
    return pod(containers=[{"name": names.HEAD_CONTAINER, "command": command, "args": args}])


LEGACY = head(["bash", "-c"], [f"{MODEL_BLOCK}{LAUNCH}\n", "--x=a b"])
LEGACY_UNQUOTED = head(["bash", "-c"], [f"{LAUNCH} $@\n", "--x=a b"])
POSTFIX = head(["bash", "-c", f"{MODEL_BLOCK}{LAUNCH} $0 $@\n"], ["--model_name=m", "--x=a b"])


def outcome(source: dict[str, Any], rules: frozenset[Rule]) -> tuple[Action, list[str], Any]:
    """(action, rules recorded, the container after the patch)."""
    decision = admit(source, options=Options(rules=rules))
    result = jsonpatch.apply_patch(source, to_json(decision.patch))
    recorded = [str(rule) for rule in decision.rules.get(names.HEAD_CONTAINER, ())]
    return decision.action, recorded, result["spec"]["containers"][0]


ALL = frozenset(Rule)


def test_with_every_rule_on() -> None:
    action, rules, container = outcome(LEGACY, ALL)
    assert (action, rules) == (
        Action.PATCHED,
        ["script-to-command", "forward-args", "model-default"],
    )
    assert container["command"] == [
        "bash",
        "-c",
        f'{MODEL_LINE}\n{LAUNCH} "$@"\n',
        "kserve-container",
    ]


@pytest.mark.parametrize(
    ("source", "off", "rules", "command", "args"),
    [
        (
            LEGACY,
            Rule.MODEL_DEFAULT,
            ["script-to-command", "forward-args"],
            ["bash", "-c", f'{MODEL_BLOCK}{LAUNCH} "$@"\n', "kserve-container"],
            ["--x=a b"],
        ),
        (
            LEGACY,
            Rule.FORWARD_ARGS,
            ["script-to-command", "model-default"],
            ["bash", "-c", f"{MODEL_LINE}\n{LAUNCH}\n", "kserve-container"],
            ["--x=a b"],
        ),
        (
            LEGACY_UNQUOTED,
            Rule.EXACT_ARGS,
            ["script-to-command"],
            ["bash", "-c", f"{LAUNCH} $@\n", "kserve-container"],
            ["--x=a b"],
        ),
        (
            POSTFIX,
            Rule.SCRIPT_TO_COMMAND,
            ["exact-args", "model-default"],
            ["bash", "-c", f'{MODEL_LINE}\n{LAUNCH} "$@"\n', "kserve-container"],
            ["--model_name=m", "--x=a b"],
        ),
        (
            POSTFIX,
            Rule.MODEL_DEFAULT,
            ["exact-args"],
            ["bash", "-c", f'{MODEL_BLOCK}{LAUNCH} "$@"\n', "kserve-container"],
            ["--model_name=m", "--x=a b"],
        ),
    ],
    ids=["legacy-model", "legacy-forward", "legacy-exact", "postfix-move", "postfix-model"],
)
def test_a_rule_switched_off_removes_only_its_edits(
    source: dict[str, Any], off: Rule, rules: list[str], command: list[str], args: list[str]
) -> None:
    action, recorded, container = outcome(source, ALL - {off})
    assert (action, recorded) == (Action.PATCHED, rules)
    assert (container["command"], container.get("args")) == (command, args)


@pytest.mark.parametrize(
    ("source", "off", "reason"),
    [
        # Nothing can reach the script without moving it: the legacy shape stays as it is.
        (LEGACY, Rule.SCRIPT_TO_COMMAND, Reason.NOT_A_TARGET),
        # The post-fix shapes are repaired by exact-args alone.
        (POSTFIX, Rule.EXACT_ARGS, Reason.ALREADY_MIGRATED),
    ],
    ids=["legacy-without-move", "postfix-without-exact"],
)
def test_a_shape_whose_rule_is_off_is_left_alone(
    source: dict[str, Any], off: Rule, reason: Reason
) -> None:
    decision = admit(source, options=Options(rules=ALL - {off}))
    assert (decision.action, decision.reason, decision.patch) == (Action.UNCHANGED, reason, ())
