"""Scripts that touch the positional parameters, in the legacy and the post-fix shape, with the
argv their launcher must receive once the webhook has done its work."""

from __future__ import annotations

from typing import Any, Final, NamedTuple

from tests.support.builders import pod
from webhook.core import names
from webhook.core.names import Action, Reason

LAUNCH: Final = "python -m huggingfaceserver --a"
FLAGS: Final = ["python", "-m", "huggingfaceserver", "--a"]
ARGS: Final = ["--x=a b", "*", "", '{"k": 1}', "--y"]


class Case(NamedTuple):
    name: str
    command: list[str]
    args: list[str]
    action: Action
    reason: Reason
    # The launcher's argv after the webhook, when it runs the script.
    argv: list[str] | None


def _legacy(name: str, script: str, argv: list[str] | None, **kw: Any) -> Case:
    return Case(name, ["bash", "-c"], [script, *ARGS], argv=argv, **_outcome(kw))


def _postfix(name: str, script: str, argv: list[str] | None, **kw: Any) -> Case:
    return Case(name, ["bash", "-c", script], ["--model_name=m", *ARGS], argv=argv, **_outcome(kw))


def _outcome(kw: dict[str, Any]) -> dict[str, Any]:
    return {
        "action": kw.get("action", Action.PATCHED),
        "reason": kw.get("reason", Reason.LOSSY_ARGS),
    }


EXACT = [*FLAGS, *ARGS]
EXACT_POSTFIX = [*FLAGS, "--model_name=m", *ARGS]

CASES: Final = [
    _legacy("legacy: nothing forwarded", f"{LAUNCH}\n", EXACT),
    _legacy('legacy: $0 "$@"', f'{LAUNCH} $0 "$@"\n', EXACT),
    _legacy('legacy: "$0" "$@"', f'{LAUNCH} "$0" "$@"\n', EXACT),
    _legacy("legacy: unquoted $@", f"{LAUNCH} $@\n", EXACT),
    _legacy("legacy: unquoted $*", f"{LAUNCH} $*\n", EXACT),
    _legacy("legacy: ${@}", f"{LAUNCH} ${{@}}\n", EXACT),
    _legacy('legacy: "$*"', f'{LAUNCH} "$*"\n', EXACT),
    _legacy('legacy: "$@" twice', f'{LAUNCH} "$@" "$@"\n', EXACT),
    _legacy("legacy: array", f'X=("$@")\n{LAUNCH} "${{X[@]}}"\n', EXACT),
    _legacy('legacy: "${@:1}"', f'{LAUNCH} "${{@:1}}"\n', EXACT),
    _legacy(
        'legacy: shift and "$@"',
        f'FIRST=$1\nshift\n{LAUNCH} "$@" --first="$FIRST"\n',
        [*FLAGS, *ARGS[1:], f"--first={ARGS[0]}"],
    ),
    _postfix("post-fix: $0 $@", f"{LAUNCH} $0 $@\n", EXACT_POSTFIX),
    _postfix("post-fix: $0 $@ and blanks", f"{LAUNCH} $0 $@        \n", EXACT_POSTFIX),
    _postfix('post-fix: "$@" alone', f'{LAUNCH} "$@"\n', EXACT_POSTFIX),
    _postfix(
        "post-fix: CMD string",
        f'CMD="{LAUNCH} $0 $@"\nexec $CMD\n',
        EXACT_POSTFIX,
    ),
    _postfix(
        'post-fix: ${CMD} with "$@" already',
        f'CMD="{LAUNCH} $0"\nexec ${{CMD}} "$@"\n',
        EXACT_POSTFIX,
    ),
    _legacy(
        "launch inside a function",
        f'serve() {{\n  {LAUNCH} "$@"\n}}\nserve "$@"\n',
        None,
        action=Action.UNCHANGED,
        reason=Reason.LAUNCH_IN_FUNCTION,
    ),
    _legacy(
        "parameter inside a launch word",
        f"{LAUNCH} --max=$1\n",
        None,
        action=Action.UNCHANGED,
        reason=Reason.READS_POSITIONAL_PARAMS,
    ),
    _postfix(
        "slice inside the CMD string",
        f'CMD="{LAUNCH} ${{@:2}}"\nexec $CMD\n',
        None,
        action=Action.UNCHANGED,
        reason=Reason.READS_POSITIONAL_PARAMS,
    ),
    Case(
        "exact, with a fixed $0",
        ["bash", "-c", f'{LAUNCH} "$@"\n', "--"],
        ARGS,
        Action.UNCHANGED,
        Reason.ALREADY_MIGRATED,
        None,
    ),
]


def case_pod(case: Case) -> dict[str, Any]:
    container = {"name": names.HEAD_CONTAINER, "command": case.command, "args": case.args}
    return pod(containers=[container])
