"""Load generator for the admission server: keep-alive HTTPS, N connections, two modes.

  python bench/load.py --spawn                      # server on core 0, client on core 1, all runs
  python bench/load.py --url https://localhost:8443 --ca certs/ca.crt --pod skip --rate 200

Count mode (`--requests`) sends a fixed number of reviews as fast as the connections allow
and prints throughput. Rate mode (`--rate`, `--duration`) sends at a fixed rate; latency is
measured from when each request is due to leave, so a stalled server cannot hide its queue.
The review replayed is the legacy head pod of bench_mutate (~10 KB with managedFields) or, with
`--pod skip`, the same pod without the KServe label.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import copy
import json
import os
import shutil
import signal
import socket
import ssl
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Coroutine, Iterator
from pathlib import Path
from typing import Any, NamedTuple
from urllib.parse import urlsplit

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.bench_mutate import realistic_head_pod

ISVC_LABEL = "serving.kserve.io/inferenceservice"


def admission_review(pod: dict[str, Any]) -> dict[str, Any]:
    """An AdmissionReview asking to create `pod` in namespace `models`."""
    return {
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "request": {
            "uid": "bench",
            "kind": {"group": "", "version": "v1", "kind": "Pod"},
            "operation": "CREATE",
            "namespace": "models",
            "object": pod,
        },
    }


def review_json(kind: str) -> bytes:
    """The AdmissionReview body replayed: the realistic head pod, or (`skip`) it unlabelled."""
    pod = realistic_head_pod()
    if kind == "skip":
        pod = copy.deepcopy(pod)
        del pod["metadata"]["labels"][ISVC_LABEL]
    return json.dumps(admission_review(pod)).encode()


def review_bytes(kind: str, host: str) -> bytes:
    body = review_json(kind)
    head = (
        f"POST /mutate HTTP/1.1\r\nhost: {host}\r\ncontent-type: application/json\r\n"
        f"content-length: {len(body)}\r\n\r\n"
    ).encode()
    return head + body


class Connection:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    async def exchange(self, request: bytes) -> None:
        self.writer.write(request)
        head = await self.reader.readuntil(b"\r\n\r\n")
        if not head.startswith(b"HTTP/1.1 200"):
            raise RuntimeError(f"unexpected response: {head[:60]!r}")
        length = next(
            int(line.split(b":")[1])
            for line in head.split(b"\r\n")
            if line.lower().startswith(b"content-length")
        )
        await self.reader.readexactly(length)


async def connect(url: str, context: ssl.SSLContext, count: int) -> list[Connection]:
    parts = urlsplit(url)
    connections = []
    for _ in range(count):
        reader, writer = await asyncio.open_connection(parts.hostname, parts.port, ssl=context)
        writer.get_extra_info("socket").setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        connections.append(Connection(reader, writer))
    return connections


async def count_mode(
    connections: list[Connection], request: bytes, total: int
) -> tuple[float, list[float]]:
    latencies: list[float] = []
    remaining = total

    async def worker(connection: Connection) -> None:
        nonlocal remaining
        while remaining > 0:
            remaining -= 1
            start = time.perf_counter()
            await connection.exchange(request)
            latencies.append(time.perf_counter() - start)

    start = time.perf_counter()
    await asyncio.gather(*(worker(c) for c in connections))
    return time.perf_counter() - start, latencies


async def rate_mode(
    connections: list[Connection], request: bytes, rate: float, duration: float
) -> tuple[float, list[float]]:
    idle: asyncio.Queue[Connection] = asyncio.Queue()
    for connection in connections:
        idle.put_nowait(connection)
    latencies: list[float] = []
    tasks = []

    async def one() -> None:
        # Timed from when the request is due to leave (the loop's timers are coarse, ~1 ms):
        # waiting for a free connection, i.e. queueing behind a slow server, still counts.
        due = time.perf_counter()
        connection = await idle.get()
        await connection.exchange(request)
        latencies.append(time.perf_counter() - due)
        idle.put_nowait(connection)

    start = time.perf_counter()
    for index in range(int(rate * duration)):
        delay = start + index / rate - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(one()))
    await asyncio.gather(*tasks)
    return time.perf_counter() - start, latencies


def report(label: str, elapsed: float, latencies: list[float]) -> None:
    ordered = sorted(latencies)
    p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]
    rate, p50 = len(ordered) / elapsed, statistics.median(ordered)
    print(
        f"{label:44} {rate:9.0f} reviews/s   p50 {p50 * 1e3:6.2f} ms"
        f"   p99 {p99 * 1e3:6.2f} ms   max {ordered[-1] * 1e3:6.2f} ms"
    )


async def run(args: argparse.Namespace, url: str, ca: Path) -> None:
    context = ssl.create_default_context(cafile=str(ca))
    host = urlsplit(url).hostname or "localhost"
    pods = ["patched", "skip"] if args.pod == "both" else [args.pod]
    for pod in pods:
        request = review_bytes(pod, host)
        if args.rate:
            connections = await connect(url, context, args.connections)
            await count_mode(connections, request, 200)  # warm up
            elapsed, latencies = await rate_mode(connections, request, args.rate, args.duration)
            report(
                f"{pod}, {args.rate:.0f}/s for {args.duration:.0f}s, {args.connections} conns",
                elapsed,
                latencies,
            )
        else:
            connections = await connect(url, context, args.connections)
            await count_mode(connections, request, 500)
            elapsed, latencies = await count_mode(connections, request, args.requests)
            report(f"{pod}, {args.requests} reviews, {args.connections} conns", elapsed, latencies)
        for connection in connections:
            connection.writer.close()


def listening(port: int, *, seconds: float, what: str) -> None:
    """Until something accepts connections on 127.0.0.1:`port`, or exit naming `what`."""
    deadline = time.monotonic() + seconds
    while True:
        with (
            contextlib.suppress(OSError),
            socket.create_connection(("127.0.0.1", port), timeout=1),
        ):
            return
        if time.monotonic() > deadline:
            raise SystemExit(f"{what} did not start")
        time.sleep(0.1)


class Spawned(NamedTuple):
    url: str
    ca: Path
    pid: int
    preview_url: str


@contextlib.contextmanager
def spawned_server(*flags: str) -> Iterator[Spawned]:
    """The webhook on core 0 with a fresh self-signed certificate; this process on core 1.

    `flags` are extra `serve` flags. The preview worker, a child of the server, shares its
    core: the worst case of a container limited to one CPU.
    """
    workdir = Path(tempfile.mkdtemp(prefix="multinode-webhook-bench-"))
    port, preview_port = 28443, 28444
    executable = (
        shutil.which("multinode-webhook", path=str(Path(sys.executable).parent))
        or "multinode-webhook"
    )
    # Default log level: every review writes its log line, as in production.
    command = [
        executable,
        "serve",
        "--bind-address",
        "127.0.0.1",
        "--https-port",
        str(port),
        "--http-port",
        "28080",
        "--preview-port",
        str(preview_port),
        *flags,
    ]
    if shutil.which("taskset"):
        command = ["taskset", "-c", "0", *command]
        os.sched_setaffinity(0, {1})
    process = subprocess.Popen(
        command, cwd=workdir, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        listening(port, seconds=20, what="server")
        yield Spawned(
            f"https://localhost:{port}",
            workdir / "certs" / "ca.crt",
            process.pid,
            f"https://localhost:{preview_port}",
        )
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(30)
        shutil.rmtree(workdir, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--spawn",
        action="store_true",
        help="start the server pinned to core 0 and run the standard set",
    )
    parser.add_argument("--url", default="https://localhost:8443")
    parser.add_argument("--ca", type=Path, default=Path("certs/ca.crt"))
    parser.add_argument("--pod", choices=["patched", "skip", "both"], default="both")
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--requests", type=int, default=40_000)
    parser.add_argument("--rate", type=float, default=0.0, help="fixed rate per second (rate mode)")
    parser.add_argument("--duration", type=float, default=10.0)
    args = parser.parse_args()
    runner: Callable[[Coroutine[Any, Any, None]], None]
    try:
        import uvloop  # noqa: PLC0415

        runner = uvloop.run
    except ImportError:
        runner = asyncio.run
    if not args.spawn:
        runner(run(args, args.url, args.ca))
        return
    with spawned_server() as server:
        url, ca = server.url, server.ca
        for rate, connections in ((0.0, 16), (200.0, 4)):
            runner(
                run(
                    argparse.Namespace(**{**vars(args), "rate": rate, "connections": connections}),
                    url,
                    ca,
                )
            )


if __name__ == "__main__":
    main()
