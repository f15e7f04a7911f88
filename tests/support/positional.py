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
    # The launcher's argv after the webhook (the pod as it stands when left alone), when it runs
    # the script.
    argv: list[str] | None


def _legacy(name: str, script: str, argv: list[str] | None, **kw: Any) -> Case:
    return Case(name, ["bash", "-c"], [script, *ARGS], argv=argv, **_outcome(kw))


def _postfix(name: str, script: str, argv: list[str] | None, **kw: Any) -> Case:
    return Case(name, ["bash", "-c", script], ["--model_name=m", *ARGS], argv=argv, **_outcome(kw))


def _moved(name: str, command: list[str], argv: list[str] | None, script: str = "") -> Case:
    """A script that moves its args before the launch: left alone. `script` goes first in args
    (the legacy shape)."""
    args = [script, *ARGS] if script else ARGS
    return Case(name, command, args, Action.UNCHANGED, Reason.READS_POSITIONAL_PARAMS, argv)


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
    # `set` that only switches options leaves the args where they were.
    _legacy("legacy: set -euo pipefail", f"set -euo pipefail\n{LAUNCH} $@\n", EXACT),
    _legacy("legacy: set -e, -x and +o", f"set -e\nset -x\nset +o posix\n{LAUNCH}\n", EXACT),
    _postfix("post-fix: set -eu", f"set -eu\n{LAUNCH} $0 $@\n", EXACT_POSTFIX),
    _postfix("post-fix: set -o pipefail", f"set -o pipefail\n{LAUNCH}\n", EXACT_POSTFIX),
    _legacy("legacy: shift after the launch", f"{LAUNCH} $@\nshift\n", EXACT),
    # A function's positional parameters are its own.
    _postfix(
        "post-fix: shift and set -- in a function",
        f"f() {{ shift; set -- x; }}\nf a b\n{LAUNCH} $@\n",
        EXACT_POSTFIX,
    ),
    # `shift` or `set` with operands before the launch: its `$@` is not the script's args, so
    # the script is left alone (argv: what the launcher gets of the pod as it stands).
    _moved(
        'shift before "$@", with a fixed $0',
        ["bash", "-c", f'shift\n{LAUNCH} "$@"\n', "--"],
        [*FLAGS, *ARGS[1:]],
    ),
    _moved("post-fix: shift before unquoted $@", ["bash", "-c", f"shift\n{LAUNCH} $@\n"], None),
    _moved("post-fix: shift 2, nothing forwarded", ["bash", "-c", f"shift 2\n{LAUNCH}\n"], FLAGS),
    _moved(
        "set -- with operands, with a fixed $0",
        ["bash", "-c", f"set -- --port 8000\n{LAUNCH} $@\n", "--"],
        [*FLAGS, "--port", "8000"],
    ),
    _moved(
        "legacy: set -- alone clears them",
        ["bash", "-c"],
        FLAGS,
        script=f'set --\n{LAUNCH} "$@"\n',
    ),
    _moved(
        "legacy: set -e -- with operands",
        ["bash", "-c"],
        [*FLAGS, *ARGS[1:], "--extra"],
        script=f'set -e -- "$@" --extra\n{LAUNCH} "$@"\n',
    ),
    _moved(
        "legacy: $1, then shift",
        ["bash", "-c"],
        [*FLAGS, *ARGS[2:], f"--first={ARGS[1]}"],
        script=f'FIRST=$1\nshift\n{LAUNCH} "$@" --first="$FIRST"\n',
    ),
    _moved(
        "legacy: eval shift",
        ["bash", "-c"],
        [*FLAGS, *ARGS[2:]],
        script=f'eval shift\n{LAUNCH} "$@"\n',
    ),
    _moved(
        "shift before an array launch, with a fixed $0",
        ["bash", "-c", f'args=({LAUNCH})\nshift\nexec "${{args[@]}}" "$@"\n', "--"],
        [*FLAGS, *ARGS[1:]],
    ),
    _moved(
        "shift after the launch, in its loop",
        ["bash", "-c", f'for i in 1 2; do\n  {LAUNCH} "$@"\n  shift\ndone\n', "--"],
        [*FLAGS, *ARGS[1:]],
    ),
]


def case_pod(case: Case) -> dict[str, Any]:
    container = {"name": names.HEAD_CONTAINER, "command": case.command, "args": case.args}
    return pod(containers=[container])
