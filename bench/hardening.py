"""The server under abuse, in figures: printed, never asserted.

  python bench/hardening.py                    # all five parts, about two minutes
  python bench/hardening.py memory trickle     # some of them

memory      RSS of the server before and after 1,000 reviews with distinct 256 KiB scripts
            (and 1,000 of 100 KiB, under --max-script-bytes, which are rewritten and cached)
trickle     500 TLS connections trickling one header byte every 2 s: how many the read
            deadline closes, after how long, and a review answered meanwhile
preview     /mutate p50/p99 at 200 reviews/s, with and without 4 MB previews running all along
throughput  saturated /mutate throughput with wrk (Debian's `wrk`), as bench/wrk.py measures it
first-seen  /mutate latency of a review whose 4 KiB script the server has not seen (parsed in
            its sandbox process), against one whose script it has
costs       for scripts made costly to analyse, 64 KiB of each shape: tree-sitter's parse, the
            whole decision, their ratio and the decision's cost per KiB (in this process)
flood       first-seen pods of one namespace, one every 0.25 s, while 0, 2, 4 and 8 clients in
            namespaces of their own send distinct scripts made costly to analyse
            (`… $@ $@ …` just under --max-script-bytes): how many were patched, p50 and p99

The server is spawned on core 0 and this process runs on core 1 (see bench/load.py).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import select
import socket
import ssl
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.load import (
    Spawned,
    admission_review,
    connect,
    rate_mode,
    report,
    review_bytes,
    review_json,
    spawned_server,
)
from bench.wrk import LUA, wrk_run
from webhook.core.names import Rule

KiB = 1024


def _rss_mib(pid: int, field: str = "VmRSS") -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1]) / KiB
    raise SystemExit(f"no {field} for process {pid}")


def _pod(script_bytes: int, serial: int) -> dict[str, Any]:
    """A legacy head pod whose script is `script_bytes` long and unlike any other's."""
    launch = "python -m huggingfaceserver --model_dir=/mnt/models\n"
    line = f"# {serial:08d} " + "x" * 60 + "\n"
    script = line * ((script_bytes - len(launch)) // len(line)) + launch
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": f"p{serial}", "labels": {"serving.kserve.io/inferenceservice": "m"}},
        "spec": {
            "containers": [
                {"name": "kserve-container", "command": ["bash", "-c"], "args": [script]}
            ]
        },
    }


def memory() -> None:
    with (
        spawned_server() as server,
        httpx.Client(base_url=server.url, verify=_tls(server)) as client,
    ):
        for serial in range(30):
            client.post("/mutate", json=admission_review(_pod(40 * KiB, serial))).raise_for_status()
        for size, label in ((256 * KiB, "256 KiB (too large)"), (100 * KiB, "100 KiB (rewritten)")):
            before = _rss_mib(server.pid)
            reasons: dict[str, int] = {}
            for serial in range(1000):
                reply = client.post("/mutate", json=admission_review(_pod(size, size + serial)))
                reason = reply.json()["response"]["auditAnnotations"]["reason"]
                reasons[reason] = reasons.get(reason, 0) + 1
            after = _rss_mib(server.pid)
            print(
                f"memory: 1,000 distinct {label} scripts: RSS {before:.0f} -> {after:.0f} MiB"
                f" ({after - before:+.1f}), peak {_rss_mib(server.pid, 'VmHWM'):.0f} MiB; {reasons}"
            )


def trickle(count: int = 500, limit: float = 30.0) -> None:
    with spawned_server() as server:
        context = _tls(server)
        opened: dict[ssl.SSLSocket, float] = {}
        for _ in range(count):
            raw = socket.create_connection(("127.0.0.1", 28443))
            tls = context.wrap_socket(raw, server_hostname="localhost")
            tls.sendall(b"POST /mutate HTTP/1.1\r\nhost: localhost\r\n")
            tls.setblocking(False)
            opened[tls] = time.monotonic()
        closed_after: list[float] = []
        started, next_byte = time.monotonic(), 0.0
        with httpx.Client(base_url=server.url, verify=context) as client:
            sent = time.perf_counter()
            client.post("/mutate", content=review_json("patched"), headers=_JSON).raise_for_status()
            meanwhile = time.perf_counter() - sent
        while opened and time.monotonic() - started < limit:
            readable, _, _ = select.select(list(opened), [], [], 0.2)
            for tls in readable:
                try:
                    data = tls.recv(1024)
                except ssl.SSLWantReadError:
                    continue
                except OSError:
                    data = b""
                if not data:
                    closed_after.append(time.monotonic() - opened.pop(tls))
                    tls.close()
            if time.monotonic() >= next_byte:  # one more header byte on every open connection
                next_byte = time.monotonic() + 2.0
                for tls in opened:
                    with contextlib.suppress(ssl.SSLWantWriteError, OSError):
                        tls.send(b"x")
        for tls in opened:
            tls.close()
    if closed_after:
        print(
            f"trickle: {len(closed_after)} of {count} trickling connections closed within "
            f"{limit:.0f} s, after {min(closed_after):.1f}-{max(closed_after):.1f} s "
            f"(median {statistics.median(closed_after):.1f} s); a review sent meanwhile took "
            f"{meanwhile * 1e3:.1f} ms"
        )
    else:
        print(f"trickle: none of {count} trickling connections closed within {limit:.0f} s")


_JSON = {"content-type": "application/json"}


def _tls(server: Spawned) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=str(server.ca))


def _preview_body(limit: int = 4 * KiB * KiB) -> bytes:
    pods: list[dict[str, Any]] = []
    size = 0
    while size < limit - 64 * KiB:
        pods.append(_pod(16 * KiB, len(pods)))
        size += len(json.dumps(pods[-1])) + 2
    return json.dumps({"apiVersion": "v1", "kind": "List", "items": pods}).encode()


def preview(rate: float = 200.0, seconds: float = 12.0) -> None:
    body = _preview_body()
    with spawned_server() as server:
        context = _tls(server)
        request = review_bytes("patched", "localhost")

        async def measure(label: str) -> None:
            connections = await connect(server.url, context, 4)
            elapsed, latencies = await rate_mode(connections, request, rate, seconds)
            report(label, elapsed, latencies)
            for connection in connections:
                connection.writer.close()

        asyncio.run(measure("preview: /mutate alone"))
        stop, previews = threading.Event(), []

        def keep_previewing() -> None:
            with httpx.Client(base_url=server.preview_url, verify=context, timeout=120) as client:
                while not stop.is_set():
                    started = time.perf_counter()
                    client.post("/preview", content=body, headers=_JSON).raise_for_status()
                    previews.append(time.perf_counter() - started)

        worker = threading.Thread(target=keep_previewing)
        worker.start()
        time.sleep(1.0)  # the body is sent and the worker is busy
        asyncio.run(measure(f"preview: /mutate, {len(body) / 2**20:.1f} MB previews running"))
        stop.set()
        worker.join()
    print(
        f"preview: each {len(body) / 2**20:.1f} MB preview took {statistics.median(previews):.1f} s"
    )


def throughput(runs: int = 3) -> None:
    with tempfile.TemporaryDirectory() as scratch, spawned_server() as server:
        body, script = Path(scratch, "patched.json"), Path(scratch, "patched.lua")
        body.write_bytes(review_json("patched"))
        script.write_text(LUA.format(body=body))
        target = server.url.replace("localhost", "127.0.0.1") + "/mutate"
        wrk_run(target, script, connections=16, seconds=2)
        rates = [wrk_run(target, script, connections=16, seconds=10)[0] for _ in range(runs)]
    print(
        f"throughput: {statistics.median(rates):.0f} patched reviews/s median of {runs} wrk runs"
        f" ({', '.join(f'{r:.0f}' for r in rates)})"
    )


def first_seen(count: int = 400) -> None:
    with (
        spawned_server() as server,
        httpx.Client(base_url=server.url, verify=_tls(server)) as client,
    ):

        def latencies(serials: Iterable[int]) -> list[float]:
            taken = []
            for serial in serials:
                body = json.dumps(admission_review(_pod(4 * KiB, serial))).encode()
                started = time.perf_counter()
                client.post("/mutate", content=body, headers=_JSON).raise_for_status()
                taken.append(time.perf_counter() - started)
            return taken

        latencies(range(50))  # warm: the connection, the sandbox, the allocator
        runs = (("first seen", range(1000, 1000 + count)), ("cached", [0] * count))
        for label, serials in runs:
            taken = sorted(latencies(serials))
            print(
                f"first-seen: {label} 4 KiB script: p50 {taken[len(taken) // 2] * 1000:.2f} ms,"
                f" p99 {taken[int(len(taken) * 0.99)] * 1000:.2f} ms over {count} reviews"
            )


def _costly_shapes(size: int) -> dict[str, str]:
    """Scripts of `size` bytes that repeat what the analysis looks at, one shape each."""
    launch = "python -m huggingfaceserver\n"
    repeated = {
        "eval lines": 'eval "echo hi $x"\n',
        "if blocks": 'if [[ -n "$A" ]]; then echo a; fi\n',
        "functions": 'f() { echo "$1"; }\n',
        "MODEL blocks": "export MODEL=${MODEL_ID}\nif [[ ! -z ${MODEL_DIR} ]]\nthen\n"
        "  export MODEL=${MODEL_DIR}\nfi\n",
        "positional reads": "echo $1 $2 $@\n",
        "set lines": "set -euo pipefail\n",
        "comments": "# " + "x" * 70 + "\n",
    }
    shapes = {name: line * (size // len(line)) + launch for name, line in repeated.items()}
    shapes["$@ words"] = "python -m huggingfaceserver" + " $@" * (size // 3 - 10) + "\n"
    shapes["CMD= lines"] = 'CMD="x $0 $@"\n' * (size // 14) + "exec $CMD\n"
    shapes["eval $@ words"] = 'eval "vllm serve' + " $@" * (size // 3 - 10) + '"\n'
    return shapes


def costs(size: int = 64 * KiB, rounds: int = 5) -> None:
    # This part alone parses here.
    from webhook.core import bash, script  # noqa: PLC0415

    rules = frozenset(Rule)
    for name, text in _costly_shapes(size).items():
        source = text.encode()
        parses, decisions = [], []
        for _ in range(rounds):
            started = time.perf_counter()
            bash.parse(source)
            parses.append(time.perf_counter() - started)
            started = time.perf_counter()
            script.rewrite_script(text, rules)
            decisions.append(time.perf_counter() - started)
        parse, decide = statistics.median(parses), statistics.median(decisions)
        print(
            f"costs: {name:16s} parse {parse * 1000:6.1f} ms, decision {decide * 1000:6.1f} ms"
            f" ({decide / parse:.1f}x), {decide * 1000 / (len(source) / KiB):.2f} ms/KiB"
        )


def _in_namespace(pod: dict[str, Any], namespace: str) -> bytes:
    review = admission_review(pod)
    review["request"]["namespace"] = namespace
    return json.dumps(review).encode()


def _costly_pod(serial: int, size: int) -> dict[str, Any]:
    """A head pod whose post-fix script of `size` bytes names `$@` thousands of times."""
    pod = _pod(KiB, serial)
    head = f"# {serial}\npython -m huggingfaceserver"
    script = head + " $@" * ((size - len(head) - 1) // 3) + "\n"
    pod["spec"]["containers"][0]["command"] = ["bash", "-c", script]
    pod["spec"]["containers"][0]["args"] = ["--x"]
    return pod


def _keep_flooding(server: Spawned, stop: threading.Event, client_id: int, size: int) -> None:
    with httpx.Client(base_url=server.url, verify=_tls(server), timeout=30) as client:
        serial = 0
        while not stop.is_set():
            serial += 1
            pod = _costly_pod(client_id * 1_000_000 + serial, size)
            client.post("/mutate", content=_in_namespace(pod, f"flood-{client_id}"), headers=_JSON)


def flood(seconds: float = 8.0, size: int = 63 * KiB) -> None:
    for flooders in (0, 2, 4, 8):
        with spawned_server() as server:
            stop = threading.Event()
            threads = [
                threading.Thread(target=_keep_flooding, args=(server, stop, i, size))
                for i in range(flooders)
            ]
            for thread in threads:
                thread.start()
            taken: list[float] = []
            patched = 0
            with httpx.Client(base_url=server.url, verify=_tls(server), timeout=30) as client:
                deadline = time.monotonic() + seconds
                serial = 0
                while time.monotonic() < deadline:
                    serial += 1
                    body = _in_namespace(_pod(4 * KiB, 5_000_000 + serial), "models")
                    started = time.perf_counter()
                    answer = client.post("/mutate", content=body, headers=_JSON).json()
                    taken.append(time.perf_counter() - started)
                    patched += "patch" in answer["response"]
                    time.sleep(0.25)
            stop.set()
            for thread in threads:
                thread.join()
        taken.sort()
        p50, p99 = taken[len(taken) // 2] * 1000, taken[int(len(taken) * 0.99)] * 1000
        print(
            f"flood: {flooders} flooding clients: {patched}/{len(taken)} first-seen pods patched,"
            f" p50 {p50:.0f} ms, p99 {p99:.0f} ms"
        )


PARTS = {
    "memory": memory,
    "trickle": trickle,
    "preview": preview,
    "throughput": throughput,
    "first-seen": first_seen,
    "costs": costs,
    "flood": flood,
}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("parts", nargs="*", metavar="PART", help=f"any of {', '.join(PARTS)}")
    parts = parser.parse_args().parts or list(PARTS)
    if unknown := set(parts) - set(PARTS):
        parser.error(f"unknown part {', '.join(sorted(unknown))}: choose from {', '.join(PARTS)}")
    for part in parts:
        PARTS[part]()


if __name__ == "__main__":
    main()
