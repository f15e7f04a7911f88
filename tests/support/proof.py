"""The semantic proof: what the launch command receives before and after the rewrite."""

from __future__ import annotations

import ast
import copy
from pathlib import Path
from typing import Any

import jsonpatch

from tests.support import kubelet
from tests.support.builders import admit
from webhook.core import argv
from webhook.core.patch import to_json
from webhook.offline.preview import REPLACED

# Arguments a user might write, and every way a shell could mangle them: whitespace, JSON
# with spaces, glob characters, expansions, quotes, a newline, unicode, an empty string.
HOSTILE_ARGS = [
    "--max-model-len=4096",
    "--served-model-name=my model",
    'say "hi"',
    "it's",
    "*",
    "$(date)",
    "`id`",
    "$HOME",
    "a;b",
    "line\nbreak",
    "ünïcødé ✓",
    "",
    "--dtype",
    "half",
    "back\\slash",
    '--override-generation-config={"temperature": 0.5}',
    "a?c",
    "$(id)",
]


def with_user_args(pod: dict[str, Any], name: str, user_args: list[str]) -> dict[str, Any]:
    """The pod as KServe would build it had the InferenceService carried `user_args`."""
    changed = copy.deepcopy(pod)
    container = next(c for c in changed["spec"]["containers"] if c["name"] == name)
    script = container["args"][:1]
    container["args"] = [*script, *user_args]
    return changed


def launch(
    pod: dict[str, Any], name: str, workdir: Path, *, added: dict[str, str] | None = None
) -> list[str]:
    """The argv the last stub call (the launch command) received."""
    workdir.mkdir(parents=True, exist_ok=True)
    calls = kubelet.run(pod, name, workdir, added=added)
    assert calls, "the script called none of the stubs"
    return calls[-1]


def assert_args_forwarded(pod: dict[str, Any], name: str, tmp_path: Path) -> None:
    """Original: user args lost. Rewritten: runtime flags, then the user's args, nothing else."""
    bare = with_user_args(pod, name, [])
    loaded = with_user_args(pod, name, HOSTILE_ARGS)
    flags = launch(bare, name, tmp_path / "original-bare")
    assert launch(loaded, name, tmp_path / "original") == flags, "legacy pod should drop user args"

    decision = admit(loaded)
    assert decision.action == "patched", decision
    rewritten = jsonpatch.apply_patch(loaded, to_json(decision.patch))
    assert launch(rewritten, name, tmp_path / "rewritten") == [*flags, *HOSTILE_ARGS]


def bash_agrees(verdict: str, arg: str, calls: list[list[str]]) -> bool:
    """Whether what bash handed the stubs (`kubelet.run`'s calls) bears out the verdict a
    launch report gives an arg of an eval launch (webhook.core.argv)."""
    servers = [call for call in calls if call[:2] == ["vllm", "serve"]]
    if verdict in (argv.LOST, REPLACED):
        return not servers
    if verdict.startswith("cut:"):  # a syntax error after the cut may stop the server too
        return not servers or all(arg not in server[1:] for server in servers)
    if verdict == argv.UNTOLD:  # the report claims nothing of it
        return True
    if len(servers) != 1:  # any other verdict has the server run once
        return False
    [server] = servers
    received = server[1:]
    if verdict == "exact":
        return arg in received
    if verdict.startswith("split into"):
        pieces = arg.split()
        return arg not in received and any(
            received[i : i + len(pieces)] == pieces for i in range(len(received))
        )
    if verdict.startswith("changed: eval makes it "):
        made = ast.literal_eval(verdict.removeprefix("changed: eval makes it "))
        return arg not in received and made in received
    if verdict == argv.RUNS:  # a substitution of the stub `python3 -c ran` ran before the server
        ran = "python3 -c ran" not in arg or ["python3", "-c", "ran"] in calls
        return ran and arg not in received
    if verdict in (argv.GLOB, argv.EXPANDED):  # values the pod's files and variables give
        return True
    if verdict == argv.TILDE:  # a home directory, or the word itself when there is none
        return any(word.startswith(("/", "~")) or "=/" in word for word in received)
    # Dropped, expanded, brace-expanded, joined, cut: the arg as written never arrives.
    return arg not in received
