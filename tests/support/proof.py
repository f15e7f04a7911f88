"""The semantic proof: what the launch command receives before and after the rewrite."""

from __future__ import annotations

import ast
import copy
import pwd
import re
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


def bash_agrees(verdict: str, arg: str, calls: list[list[str]], *, at: int | None = None) -> bool:
    """Whether what bash handed the stubs (`kubelet.run`'s calls) bears out the verdict a
    launch report gives an arg of an eval launch (webhook.core.argv). `at` is the arg's place
    among the user's args, each before it one word, in a launch whose user args follow the
    preset's `--data-parallel-start-rank N`: a tilde, glob or expansion verdict is then checked
    on the word standing there (without it, on any word)."""
    servers = [call for call in calls if call[:2] == ["vllm", "serve"]]
    if verdict in (argv.LOST, REPLACED):
        return not servers
    if verdict.startswith("cut:"):  # a syntax error after the cut may stop the server too
        return not servers or all(arg not in server[1:] for server in servers)
    if verdict in (argv.UNTOLD, argv.UNCHECKED):  # the report claims nothing of it
        return True
    if len(servers) != 1:  # any other verdict has the server run once
        return False
    [server] = servers
    received = server[1:]
    if verdict == "exact":
        return arg in (_own_words(received, at)[:1] if at is not None else received)
    if verdict.startswith("split into"):
        pieces = arg.split()
        return arg not in received and any(
            received[i : i + len(pieces)] == pieces for i in range(len(received))
        )
    for changed in ("changed: eval makes it ", argv.KUBELET_CHANGED):
        if verdict.startswith(changed):
            made = ast.literal_eval(verdict.removeprefix(changed))
            own = _own_words(received, at)
            return arg not in own[:1] and made in own[:1] if at is not None else made in received
    if verdict == argv.RUNS:  # a substitution of the stub `python3 -c ran` ran before the server
        ran = "python3 -c ran" not in arg or ["python3", "-c", "ran"] in calls
        return ran and arg not in received
    own = _own_words(received, at)
    if verdict == argv.EXPANDED:  # a value the pod's variables give, never the `$…` itself
        return arg not in own
    if verdict == argv.GLOB:  # the files it matched, or the pattern, its glob kept
        return any(word != arg or set(word) & set("*?[") for word in own)
    if verdict == argv.TILDE:  # a home directory, or the word itself when there is none
        return any(_tilde_expanded(word) for word in own)
    # Dropped, expanded, brace-expanded, joined, cut: the arg as written never arrives.
    return arg not in received


def _own_words(received: list[str], at: int | None) -> list[str]:
    """The words from the arg's place `at` among the user's args (after the preset's
    `--data-parallel-start-rank N`) to the preset's closing `--trust-remote-code`: the arg's
    own when it is the last user arg (an arg eval splits stands in several), or every word
    when that place is not known."""
    marker = "--data-parallel-start-rank"
    if at is None or marker not in received:
        return received
    place = received.index(marker) + 2 + at
    end = len(received) - (received[-1:] == ["--trust-remote-code"])
    return received[place:end]


def _tilde_expanded(word: str) -> bool:
    """Whether the word bears the mark of a tilde expansion: where bash expands one (the word's
    start and, in a word like an assignment, after its first `=` and after each `:`), a path
    from `/`, or a `~name` left as written because no such user is known."""
    starts = [word]
    assignment = re.match(r"[A-Za-z_][A-Za-z0-9_]*(\[[^\]]*\])?\+?=", word)
    if assignment is not None:
        starts.extend(word[assignment.end() :].split(":"))
    return any(part.startswith("/") or _unknown_user(part) for part in starts)


def _unknown_user(part: str) -> bool:
    """Whether `part` is a tilde-prefix bash leaves as written: `~-` with no $OLDPWD, or a
    `~name` naming no user."""
    prefix = part.split("/", 1)[0]
    if not prefix.startswith("~") or prefix in ("~", "~+"):
        return False
    if prefix == "~-":
        return True
    try:
        pwd.getpwnam(prefix[1:])
    except KeyError:
        return True
    return False
