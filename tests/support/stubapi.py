"""A stub API server on 127.0.0.1 that breaks every watch, one way per run: an error in the
stream (`error`), a watch that ends at once with no event (`empty`), a 410 as the answer
(`gone`) or in the stream (`gone-in-stream`), a watch that never speaks (`silent`). Lists of
the kinds warm start follows are answered, empty; anything else is a 404. It counts the lists
and watches it was sent."""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from webhook.adapters.kube.sources import FOLLOWED

FAULTS = ("error", "empty", "gone", "gone-in-stream", "silent")
FOLLOWED_PATHS = tuple(
    f"/apis/{group}/{version}/{plural}" for group, version, plural, _ in FOLLOWED
)


class Stub:
    def __init__(self, fault: str) -> None:
        self.fault = fault
        self.lists = 0
        self.watches = 0
        self.lock = threading.Lock()


def _handler(stub: Stub) -> type[BaseHTTPRequestHandler]:
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
            if not self.path.startswith(FOLLOWED_PATHS):
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


def serving(fault: str, work: Path) -> tuple[Stub, ThreadingHTTPServer, Path]:
    """The stub, serving in a thread of its own, and a kubeconfig in `work` that points at it."""
    stub = Stub(fault)
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(stub))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    kubeconfig = work / "kubeconfig"
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
    return stub, server, kubeconfig


def stop(server: ThreadingHTTPServer) -> None:
    server.shutdown()
    server.server_close()
