"""A real webhook server on 127.0.0.1 for tests, and a client that verifies it as
kube-apiserver does (the CA, and the name in the certificate's SANs)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import signal
import socket
import ssl
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from tests.support.pace import patience
from webhook.adapters import certs
from webhook.adapters.config import Settings
from webhook.transport.listeners import Listeners, bind
from webhook.transport.state import AppState

SANS = ("localhost", "127.0.0.1")


def kube_style_cert_dir(root: Path, bundle: certs.Bundle) -> Path:
    """A cert dir laid out like a mounted Secret: files are symlinks through `..data`."""
    root.mkdir(parents=True, exist_ok=True)
    swap_certificate(root, bundle)
    for name in (certs.CERT_FILE, certs.KEY_FILE, certs.CA_FILE):
        (root / name).symlink_to(Path("..data") / name)
    return root


def swap_certificate(root: Path, bundle: certs.Bundle | None, *, corrupt: bool = False) -> None:
    """Replace the pair the way the kubelet does: a new timestamped dir, then one rename."""
    target = root / f"..{time.time_ns()}"
    target.mkdir()
    if bundle is not None:
        certs.write(bundle, target)
    if corrupt:
        (target / certs.KEY_FILE).write_bytes(b"-----BEGIN PRIVATE KEY-----\nbroken\n")
    link = root / "..data_tmp"
    link.symlink_to(target.name)
    os.replace(link, root / "..data")


def client_context(*ca_pems: bytes) -> ssl.SSLContext:
    context = ssl.create_default_context(cadata="".join(p.decode() for p in ca_pems))
    context.check_hostname = True
    return context


@dataclass
class Running:
    state: AppState
    https_port: int
    http_port: int
    preview_port: int | None
    ca_pem: bytes

    def client(
        self, *extra_cas: bytes, host: str = "localhost", port: int | None = None
    ) -> httpx.Client:
        # kube-apiserver's Go client turns Nagle off; httpx's default transport does not.
        transport = httpx.HTTPTransport(
            verify=client_context(self.ca_pem, *extra_cas),
            socket_options=[(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)],
        )
        return httpx.Client(
            base_url=f"https://{host}:{port or self.https_port}",
            transport=transport,
            timeout=patience(30),
        )

    def previews(self) -> httpx.Client:
        """A client of the preview listener."""
        assert self.preview_port is not None, "started with preview_port=0"
        return self.client(port=self.preview_port)

    def ops(self) -> httpx.Client:
        return httpx.Client(base_url=f"http://127.0.0.1:{self.http_port}", timeout=patience(10))

    def served_certificate(self, *cas: bytes) -> bytes:
        """The DER certificate a fresh handshake presents."""
        with (
            socket.create_connection(("127.0.0.1", self.https_port)) as raw,
            client_context(*(cas or (self.ca_pem,))).wrap_socket(
                raw, server_hostname="localhost"
            ) as tls,
        ):
            der = tls.getpeercert(binary_form=True)
            assert der is not None
            return der


@contextlib.contextmanager
def running(
    tmp_path: Path, *, bundle: certs.Bundle | None = None, **settings: Any
) -> Iterator[Running]:
    """Serve in a background thread until the block ends."""
    bundle = bundle or certs.generate(sans=SANS)
    cert_dir = kube_style_cert_dir(tmp_path / "tls", bundle)
    decide = settings.pop("decide", None)
    rewrite = settings.pop("rewrite", None)
    config = Settings(
        cert_dir=cert_dir, **{"cert_reload_seconds": 0.1, "log_level": "warning", **settings}
    )
    injected = {"rewrite": rewrite, "decide": decide}
    state = AppState(
        config,
        tls=certs.CertificateReloader(cert_dir),
        **{name: given for name, given in injected.items() if given is not None},
    )
    https_socket = bind("127.0.0.1", 0, reuse_port=False)
    http_socket = bind("127.0.0.1", 0, reuse_port=False)
    # A free port, unless the settings turn the preview listener off.
    preview_socket = bind("127.0.0.1", 0, reuse_port=False) if config.preview_port else None
    listeners = Listeners(state, https_socket, http_socket, preview_socket)
    thread = threading.Thread(target=lambda: asyncio.run(listeners.serve()), daemon=True)
    thread.start()
    assert listeners.started.wait(10), "server did not start"
    try:
        yield Running(
            state,
            https_socket.getsockname()[1],
            http_socket.getsockname()[1],
            preview_socket.getsockname()[1] if preview_socket else None,
            bundle.ca_pem,
        )
    finally:
        listeners.stop()
        thread.join(15)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def send_review(tls: socket.socket, body: bytes) -> bytes:
    """POST `body` to /mutate over an open connection; the bytes sent."""
    request = (
        b"POST /mutate HTTP/1.1\r\nhost: localhost\r\ncontent-type: application/json\r\n"
        b"content-length: %d\r\n\r\n" % len(body)
    ) + body
    tls.sendall(request)
    return request


def read_response(tls: socket.socket) -> tuple[int, bytes]:
    """(status, body) of the next response on an open connection; fails if it closes."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = tls.recv(65536)
        assert chunk, f"connection closed before a complete response: {data!r}"
        data += chunk
    head, body = data.split(b"\r\n\r\n", 1)
    length = int(re.search(rb"content-length: (\d+)", head, re.IGNORECASE).group(1))  # type: ignore[union-attr]
    while len(body) < length:
        chunk = tls.recv(65536)
        assert chunk, "connection closed mid-body"
        body += chunk
    return int(head.split(b" ", 2)[1]), body


@contextlib.contextmanager
def spawned(
    tmp_path: Path,
    *flags: str,
    env: Mapping[str, str] | None = None,
    command: Sequence[str] = ("serve",),
    log: Path | None = None,
) -> Iterator[tuple[subprocess.Popen[str], int, int]]:
    """`multinode-webhook serve` (or `command`, a serve command line) in a process of its own,
    as deployed (uvloop, signals), on free ports of 127.0.0.1, once ready: the process, its
    HTTPS port and its plain-HTTP port. Its output is piped, or its log (stderr) written to
    `log` for a server that logs more than a pipe nobody reads holds; `env` adds to this
    process's environment."""
    # Port 0: the server binds free ports itself and says which, so no port changes hands.
    ports = ["--bind-address", "127.0.0.1", "--https-port", "0", "--http-port", "0"]
    ports += ["--preview-port", "0", *flags]
    logged = log.open("w") if log is not None else None
    process = subprocess.Popen(
        [sys.executable, "-m", "webhook", *command, *ports],
        cwd=tmp_path,
        env={**os.environ, **(env or {})},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE if logged is None else logged,
        text=True,
    )
    try:
        assert process.stdout is not None
        bound = next((line for line in process.stdout if line.startswith("listening:")), None)
        assert bound is not None, process.communicate()[1]
        found = dict(pair.split("=") for pair in bound.split()[1:])
        https_port, http_port = int(found["https_port"]), int(found["http_port"])
        deadline = time.monotonic() + patience(30)
        while True:
            with contextlib.suppress(httpx.TransportError):
                if httpx.get(f"http://127.0.0.1:{http_port}/readyz").status_code == 200:
                    break
            assert process.poll() is None, process.communicate()[1]
            assert time.monotonic() < deadline, "server did not become ready"
            time.sleep(0.1)
        yield process, https_port, http_port
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            process.communicate(timeout=patience(30))
        if logged is not None:
            logged.close()
