"""Saturated `/mutate` throughput measured with wrk, a compiled load generator.

  python bench/wrk.py                      # patched and skipped reviews, 3 runs of 10 s each
  python bench/wrk.py --pod patched --runs 5 --duration 15

The server is spawned on core 0 (as `load.py --spawn` does) and wrk runs on core 1 with one
thread and 16 keep-alive connections. A Python client runs out of CPU before the server does
and under-reports, so figures meant to compare two builds come from here. wrk is Debian's
package `wrk`; it is not a test dependency.
"""

from __future__ import annotations

import argparse
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.load import review_json, spawned_server

LUA = """wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
local file = io.open("{body}", "rb")
wrk.body = file:read("*a")
file:close()
"""
_RATE = re.compile(r"^Requests/sec:\s+([\d.]+)", re.MULTILINE)
_P99 = re.compile(r"^\s+99%\s+([\d.]+)(us|ms|s)", re.MULTILINE)
_UNIT_MS = {"us": 1e-3, "ms": 1.0, "s": 1e3}


def wrk_run(url: str, script: Path, *, connections: int, seconds: float) -> tuple[float, float]:
    """(requests per second, p99 in ms) of one wrk run."""
    command = ["wrk", "-t1", f"-c{connections}", f"-d{seconds:g}s", "--latency", "-s", str(script)]
    if shutil.which("taskset"):
        command = ["taskset", "-c", "1", *command]
    done = subprocess.run([*command, url], capture_output=True, text=True, check=True)
    if "Non-2xx" in done.stdout or "Socket errors" in done.stdout:
        raise SystemExit(f"wrk saw failures:\n{done.stdout}")
    rate, p99 = _RATE.search(done.stdout), _P99.search(done.stdout)
    if rate is None or p99 is None:
        raise SystemExit(f"unexpected wrk output:\n{done.stdout}")
    return float(rate.group(1)), float(p99.group(1)) * _UNIT_MS[p99.group(2)]


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--pod", choices=["patched", "skip", "both"], default="both")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--duration", type=float, default=10.0, help="seconds per run")
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("serve_flags", nargs="*", help="extra `serve` flags, after --")
    args = parser.parse_args()
    if not shutil.which("wrk"):
        raise SystemExit("wrk not found: apt-get install wrk")
    pods = ["patched", "skip"] if args.pod == "both" else [args.pod]
    with tempfile.TemporaryDirectory() as scratch, spawned_server(*args.serve_flags) as server:
        for pod in pods:
            body, script = Path(scratch, f"{pod}.json"), Path(scratch, f"{pod}.lua")
            body.write_bytes(review_json(pod))
            script.write_text(LUA.format(body=body))
            target = server.url.replace("localhost", "127.0.0.1") + "/mutate"
            wrk_run(target, script, connections=args.connections, seconds=2)  # warm up
            runs = [
                wrk_run(target, script, connections=args.connections, seconds=args.duration)
                for _ in range(args.runs)
            ]
            rates = [rate for rate, _ in runs]
            print(
                f"{pod:8} {statistics.median(rates):8.0f} reviews/s median"
                f" (runs: {', '.join(f'{r:.0f}' for r in rates)});"
                f" p99 {statistics.median(p for _, p in runs):.2f} ms, {args.connections} conns"
            )


if __name__ == "__main__":
    main()
