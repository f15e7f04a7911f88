"""The two things between kube-apiserver and the webhook's pods during a rolling restart, in
miniature: a Service that pins each connection to the backend it first reached (as conntrack
does) while new connections go where the endpoints now point, and a client that pools its
keep-alive connections as Go's http.Transport does and never retries a POST once written.
"""

from __future__ import annotations

import contextlib
import select
import socket
import ssl
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

from tests.support.poll import wait


class Service:
    """A TCP proxy on 127.0.0.1: each accepted connection is joined to `backend` as it is at
    that moment, and stays there; closes travel both ways."""

    def __init__(self, backend: int) -> None:
        self.backend = backend
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port: int = self._listener.getsockname()[1]
        self._closing = False
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while not self._closing:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            try:
                upstream = socket.create_connection(("127.0.0.1", self.backend), timeout=5)
            except OSError:
                client.close()
                continue
            for sock in (client, upstream):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            threading.Thread(target=self._pipe, args=(client, upstream), daemon=True).start()

    @staticmethod
    def _pipe(client: socket.socket, upstream: socket.socket) -> None:
        ends = {client: upstream, upstream: client}
        open_ = set(ends)
        try:
            while open_:
                readable, _, _ = select.select(list(open_), [], [], 1.0)
                for sock in readable:
                    try:
                        data = sock.recv(65536)
                    except OSError:
                        data = b""
                    if data:
                        ends[sock].sendall(data)
                        continue
                    # A close on one side is a close on the other: FIN for FIN.
                    open_.discard(sock)
                    with contextlib.suppress(OSError):
                        ends[sock].shutdown(socket.SHUT_WR)
        finally:
            client.close()
            upstream.close()

    def close(self) -> None:
        self._closing = True
        self._listener.close()


@dataclass
class Tally:
    """Requests answered in full, and those written but never answered in full."""

    answered: int = 0
    lost: int = 0
    errors: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def more(self, count: int) -> None:
        """Return once `count` more requests have been answered (30 s at most)."""
        target = self.answered + count
        wait(lambda: self.answered >= target, f"{count} more requests answered")

    def count(self, *, error: str | None) -> None:
        with self.lock:
            if error is None:
                self.answered += 1
            else:
                self.lost += 1
                self.errors.append(error)


class PooledClient:
    """Reviews POSTed over pooled keep-alive TLS connections, most recently used first.

    Like Go's http.Transport, a pooled connection the server has closed is noticed before it
    is reused (Go's read loop sees the FIN) and a response with `Connection: close` retires its
    connection; unlike a GET, a POST whose request was written is never retried: if its
    response does not arrive in full, it is lost, as a pod is admitted unrepaired.
    """

    def __init__(self, port: int, context: ssl.SSLContext, body: bytes) -> None:
        self.port = port
        self.context = context
        self.request = (
            b"POST /mutate HTTP/1.1\r\nhost: localhost\r\ncontent-type: application/json\r\n"
            b"content-length: %d\r\n\r\n" % len(body)
        ) + body
        self._idle: list[ssl.SSLSocket] = []
        self._lock = threading.Lock()

    def _connection(self) -> ssl.SSLSocket:
        with self._lock:
            while self._idle:
                tls = self._idle.pop()
                readable, _, _ = select.select([tls], [], [], 0)
                if not readable:
                    return tls
                tls.close()  # closed by the server while idle: Go would have dropped it too
        raw = socket.create_connection(("127.0.0.1", self.port), timeout=10)
        raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return self.context.wrap_socket(raw, server_hostname="localhost")

    def post(self) -> str | None:
        """One review; None when answered in full, else what went wrong."""
        try:
            tls = self._connection()
        except OSError as error:
            return f"connect: {error}"  # nothing was written: Go would retry; count it anyway
        try:
            tls.sendall(self.request)
            status, close = _response(tls)
        except (OSError, ValueError) as error:
            tls.close()
            return f"after the request was written: {error!r}"
        if status != 200:
            tls.close()
            return f"HTTP {status}"
        if close:
            tls.close()
        else:
            with self._lock:
                self._idle.append(tls)
        return None

    def close(self) -> None:
        with self._lock:
            for tls in self._idle:
                tls.close()
            self._idle.clear()


def _response(tls: ssl.SSLSocket) -> tuple[int, bool]:
    """(status, whether the server closes the connection after it) of one whole response."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = tls.recv(65536)
        if not chunk:
            raise ValueError(f"closed before the headers ({len(data)} bytes)")
        data += chunk
    head, body = data.split(b"\r\n\r\n", 1)
    lines = head.decode("latin-1").split("\r\n")
    headers = dict(line.lower().split(": ", 1) for line in lines[1:])
    length = int(headers["content-length"])
    while len(body) < length:
        chunk = tls.recv(65536)
        if not chunk:
            raise ValueError("closed mid-body")
        body += chunk
    return int(lines[0].split(" ", 2)[1]), headers.get("connection") == "close"


@contextlib.contextmanager
def load(client: PooledClient, *, threads: int, pause: float) -> Iterator[Tally]:
    """`threads` senders posting reviews through `client` until the block ends, each pausing
    `pause` seconds between reviews."""
    tally = Tally()
    stop = threading.Event()

    def send() -> None:
        while not stop.is_set():
            tally.count(error=client.post())
            time.sleep(pause)

    senders = [threading.Thread(target=send, daemon=True) for _ in range(threads)]
    for sender in senders:
        sender.start()
    try:
        yield tally
    finally:
        stop.set()
        for sender in senders:
            sender.join(30)
        client.close()
