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
from collections.abc import Mapping
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
    stubs = workdir / "stubs"
    install_stubs(stubs)
    log = workdir / "calls.jsonl"
    log.write_text("")
    # Files in the working directory make an unquoted `*` visible: it would glob to them.
    for decoy in ("decoy-a.txt", "decoy-b.txt"):
        (workdir / decoy).write_text("")
    process_env = {
        **env,
        "PATH": f"{stubs}{os.pathsep}/usr/bin{os.pathsep}/bin",
        "HOME": str(workdir),
        "LC_ALL": "C.UTF-8",
        "STUB_LOG": str(log),
    }
    program = argv[0].rsplit("/", 1)[-1]
    # A shell runs as the real /bin/bash or /bin/sh; anything else is found on the stubs' PATH.
    shell = {"sh": "/bin/sh", "bash": "/bin/bash"}.get(program)
    completed = subprocess.run(
        argv,
        executable=shell,
        env=process_env,
        cwd=workdir,
        capture_output=True,
        text=True,
        timeout=patience(60),
        check=False,
    )
    assert completed.returncode == 0 or not check, completed.stderr
    return _calls(log.read_bytes())


def _calls(log: bytes) -> list[list[str]]:
    """The stub calls a log holds, each as its argv (words decoded as Python decodes argv)."""
    words = [w.decode("utf-8", "surrogateescape") for w in log.split(b"\0")[:-1]]
    calls = []
    while words:
        count = int(words[0])
        calls.append(words[1 : count + 2])
        del words[: count + 2]
    return calls
