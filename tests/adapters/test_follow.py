"""`Cluster.follow` (warm start's list and watch) against a stub API server that breaks every
watch: an error in the stream, a watch that ends at once, a 410 (in the stream or as the
answer), a watch that never speaks. Whatever the fault, the replica's requests stay a few a
second, an expired watch is listed again, and a silent one is given up."""

from __future__ import annotations

import contextlib
import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from tests.support.poll import wait
from webhook.adapters.kube import client
from webhook.adapters.kube.client import Cluster, connect

PATH = "/apis/serving.kserve.io/v1alpha1/servingruntimes"


class _Stub:
    def __init__(self, fault: str) -> None:
        self.fault = fault
        self.lists = 0
        self.watches = 0
        self.lock = threading.Lock()


def _handler(stub: _Stub) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *_: Any) -> None:
            pass

        def _send(self, code: int, body: bytes) -> None:
            self.send_response(code)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self) -> None:
            watching = "watch=true" in self.path
            with stub.lock:
                if watching:
                    stub.watches += 1
                else:
                    stub.lists += 1
            if not self.path.startswith(PATH):
                return self._send(404, b'{"kind":"Status","code":404}')
            if not watching:
                listed = {"kind": "List", "metadata": {"resourceVersion": "7"}, "items": []}
                return self._send(200, json.dumps(listed).encode())
            if stub.fault == "gone":
                return self._send(410, b'{"kind":"Status","code":410,"reason":"Expired"}')
            if stub.fault == "silent":
                self.send_response(200)
                self.send_header("content-type", "application/json")
                self.end_headers()
                time.sleep(3)  # longer than the test's read timeout, then the stream ends
                return None
            events = {
                "error": [{"type": "ERROR", "object": {"kind": "Status", "code": 500}}],
                "gone-in-stream": [{"type": "ERROR", "object": {"kind": "Status", "code": 410}}],
                "empty": [],
            }[stub.fault]
            return self._send(200, "".join(json.dumps(e) + "\n" for e in events).encode())

    return Handler


@contextlib.contextmanager
def _following(
    fault: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[_Stub, threading.Thread]]:
    stub = _Stub(fault)
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(stub))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    kubeconfig = tmp_path / "kubeconfig"
    server_url = f"http://127.0.0.1:{server.server_port}"
    kubeconfig.write_text(
        json.dumps(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "current-context": "stub",
                "clusters": [{"name": "stub", "cluster": {"server": server_url}}],
                "users": [{"name": "stub", "user": {"token": "stub"}}],
                "contexts": [{"name": "stub", "context": {"cluster": "stub", "user": "stub"}}],
            }
        )
    )
    monkeypatch.setattr(client, "WATCH_READ_SECONDS", 0.5)
    cluster = Cluster(connect(kubeconfig=str(kubeconfig)))
    stop = threading.Event()
    follow = threading.Thread(
        target=cluster.follow,
        args=("serving.kserve.io", "v1alpha1", "servingruntimes"),
        kwargs={"seen": lambda _: None, "listed": lambda _: None, "stop": stop},
        daemon=True,
    )
    follow.start()
    try:
        yield stub, follow
    finally:
        stop.set()
        cluster.stop_following()
        follow.join(10)
        server.shutdown()
        server.server_close()


@pytest.mark.parametrize("fault", ["error", "empty", "gone", "gone-in-stream", "silent"])
def test_a_broken_watch_costs_a_few_requests_a_second(
    fault: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with _following(fault, tmp_path, monkeypatch) as (stub, _):
        wait(lambda: stub.watches >= 2, "the watch to be opened again")
        time.sleep(3)
        requests = stub.lists + stub.watches
    # Backing off from 0.8 s, doubling: a handful in 3 s where it was thousands.
    assert requests <= 10, (stub.lists, stub.watches)


@pytest.mark.parametrize("fault", ["gone", "gone-in-stream"])
def test_an_expired_watch_is_listed_again(
    fault: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with _following(fault, tmp_path, monkeypatch) as (stub, _):
        wait(lambda: stub.lists >= 2, "a second list after the 410")
