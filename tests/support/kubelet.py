"""Run a container's `command + args` under the real /bin/bash (or /bin/sh for an `sh`
command), as the kubelet would.

Kubernetes expands `$(VAR)` in command, args and env values (`$$` escapes a dollar), then
execs argv. Stub `ray`, `python`, `python3` and `vllm` executables first on PATH record the
argv they receive; `ray status` prints one node line per pipeline stage so the head scripts'
wait loops finish at once.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from tests.support.pace import patience

STUBS = ("ray", "python", "python3", "vllm")
POD_IP = "10.244.1.7"

# A shell script, not Python: a stub is called several times a run, and /bin/sh starts in a
# millisecond where an interpreter takes tens. Each call is logged as its word count, then its
# words (the program's name first), each ending in NUL: no byte of an argv word can be NUL.
# One printf, so one write for a record of up to several KiB: stubs on both sides of a pipe
# log at the same time.
_STUB = r"""#!/bin/sh
printf '%s\0' "$#" "${0##*/}" "$@" >> "$STUB_LOG"
if [ "${1-}" = status ]; then
    stage=0
    while [ "$stage" -lt "${PIPELINE_PARALLEL_SIZE:-1}" ]; do
        echo " 1 node_$stage"
        stage=$((stage + 1))
    done
fi
"""


def expand(text: str, env: Mapping[str, str]) -> str:
    """Kubernetes' `$(VAR)` expansion: defined names are replaced, others left as written."""
    out: list[str] = []
    i = 0
    while i < len(text):
        if text.startswith("$$", i):
            out.append("$")
            i += 2
            continue
        if text.startswith("$(", i) and (end := text.find(")", i + 2)) != -1:
            name = text[i + 2 : end]
            out.append(env[name] if name in env else text[i : end + 1])
            i = end + 1
            continue
        out.append(text[i])
        i += 1
    return "".join(out)


def container_env(pod: Mapping[str, Any], container: Mapping[str, Any]) -> dict[str, str]:
    """The container's env as the kubelet resolves it (fieldRefs from the pod)."""
    fields = {
        "metadata.name": pod["metadata"].get("name", ""),
        "metadata.namespace": pod["metadata"].get("namespace", ""),
        "status.podIP": POD_IP,
    }
    env: dict[str, str] = {}
    for item in container.get("env") or []:
        if "value" in item:
            env[item["name"]] = expand(str(item["value"]), env)
        else:
            ref = (item.get("valueFrom") or {}).get("fieldRef") or {}
            env[item["name"]] = fields.get(ref.get("fieldPath", ""), "")
    return env


def install_stubs(directory: Path) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    for name in STUBS:
        stub = directory / name
        stub.write_text(_STUB)
        stub.chmod(0o755)


def _process_env(env: Mapping[str, str], workdir: Path, log: Path) -> dict[str, str]:
    """The env a container's process starts with, its stubs first on PATH, and a working
    directory whose files make an unquoted `*` visible: it would glob to them."""
    stubs = workdir / "stubs"
    install_stubs(stubs)
    log.write_text("")
    for decoy in ("decoy-a.txt", "decoy-b.txt"):
        (workdir / decoy).write_text("")
    return {
        **env,
        "PATH": f"{stubs}{os.pathsep}/usr/bin{os.pathsep}/bin",
        "HOME": str(workdir),
        "LC_ALL": "C.UTF-8",
        "STUB_LOG": str(log),
    }


def _shell(program: str) -> str | None:
    """A shell runs as the real /bin/bash or /bin/sh; anything else is found on the stubs'
    PATH."""
    return {"sh": "/bin/sh", "bash": "/bin/bash"}.get(program.rsplit("/", 1)[-1])


def run(
    pod: Mapping[str, Any],
    name: str,
    workdir: Path,
    *,
    unset: tuple[str, ...] = (),
    added: Mapping[str, str] | None = None,
    check: bool = True,
) -> list[list[str]]:
    """Execute container `name` of `pod` and return every stub call, in order.

    `unset` removes variables from the container's env, to exercise unset-vs-empty cases;
    `added` sets more, as another webhook (a LeaderWorkerSet's) would; `check` False accepts a
    script that fails (as one does whose command line an arg broke).
    """
    container = next(c for c in pod["spec"]["containers"] if c["name"] == name)
    env = {k: v for k, v in container_env(pod, container).items() if k not in unset}
    env.update(added or {})
    argv = [
        expand(word, env) for word in [*container.get("command", []), *container.get("args", [])]
    ]
    log = workdir / "calls.jsonl"
    completed = subprocess.run(
        argv,
        executable=_shell(argv[0]),
        env=_process_env(env, workdir, log),
        cwd=workdir,
        capture_output=True,
        text=True,
        timeout=patience(60),
        check=False,
    )
    assert completed.returncode == 0 or not check, completed.stderr
    return _calls(log.read_bytes())


# Runs each case's argv in turn, from NUL-terminated records (a word count, then the words),
# and logs a mark before each, as a stub logs a call: one bash for a batch, where a process
# per case from Python would cost several times as much.
_EACH = r"""
while IFS= read -r -d '' count; do
    argv=()
    while [ "${#argv[@]}" -lt "$count" ]; do IFS= read -r -d '' word; argv+=("$word"); done
    printf '%s\0' 0 "$MARK" >> "$STUB_LOG"
    "${argv[@]}" < /dev/null > /dev/null 2>&1
done < "$CASES"
exit 0
"""
_MARK = "--next-case--"


def run_each(
    pod: Mapping[str, Any], name: str, workdir: Path, cases: Sequence[Sequence[str]]
) -> list[list[list[str]]]:
    """The stub calls of container `name` of `pod` run once with each of `cases` as its
    args, as `run` with `check` False gives them, one list per case."""
    container = next(c for c in pod["spec"]["containers"] if c["name"] == name)
    env = container_env(pod, container)
    command = [expand(word, env) for word in container.get("command", [])]
    assert _shell(command[0]), "run_each runs a shell's command, whose path it keeps"
    records = bytearray()
    for args in cases:
        argv = [*command, *(expand(word, env) for word in args)]
        for word in (str(len(argv)), *argv):
            records += word.encode("utf-8", "surrogateescape") + b"\0"
    (workdir / "cases").write_bytes(bytes(records))
    log = workdir / "calls.jsonl"
    process_env = {
        **_process_env(env, workdir, log),
        "CASES": str(workdir / "cases"),
        "MARK": _MARK,
    }
    subprocess.run(
        ["/bin/bash", "-c", _EACH],
        env=process_env,
        cwd=workdir,
        capture_output=True,
        timeout=patience(60 + len(cases) / 10),
        check=True,
    )
    found: list[list[list[str]]] = []
    for call in _calls(log.read_bytes()):
        if call == [_MARK]:
            found.append([])
        else:
            found[-1].append(call)
    assert len(found) == len(cases), (len(found), len(cases))
    return found


def _calls(log: bytes) -> list[list[str]]:
    """The stub calls a log holds, each as its argv (words decoded as Python decodes argv)."""
    words = [w.decode("utf-8", "surrogateescape") for w in log.split(b"\0")[:-1]]
    calls = []
    while words:
        count = int(words[0])
        calls.append(words[1 : count + 2])
        del words[: count + 2]
    return calls
