"""The listeners: all served in one event loop, certificate polling, clean shutdown.

Uvicorn serves the HTTPS admission app, the plain-HTTP operations app and, unless turned off,
the HTTPS preview app on sockets bound here, so a port of 0 picks a free one and several
worker processes can share a port (`SO_REUSEPORT`). SIGTERM stops every listener from
accepting, lets every review already received finish, and exits 0.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import multiprocessing
import signal
import socket
import tempfile
import threading
from collections.abc import Generator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

import uvicorn
from starlette.types import ASGIApp

from webhook.adapters import certs
from webhook.adapters.config import Settings
from webhook.adapters.kube.client import Cluster, KubeError, connect
from webhook.runtime.certificates import watch_certificates
from webhook.runtime.events import send_events
from webhook.runtime.warmup import WarmUp
from webhook.transport import metrics
from webhook.transport.admission_app import admission_app, guarded
from webhook.transport.coalesce import CoalescingHttpToolsProtocol
from webhook.transport.logs import LISTENERS_LOGGER
from webhook.transport.metrics import Metrics
from webhook.transport.ops_app import ops_app
from webhook.transport.preview_app import preview_app
from webhook.transport.state import AppState

log = logging.getLogger(LISTENERS_LOGGER)

# How long a connection must have waited on its client before it may be dropped to make room:
# the API server writes a review as soon as it has a connection, and reuses the one it used
# last, so one quiet (or part-way through a request) this long is none it is writing on.
MAKE_ROOM_AFTER: Final = 1.0
# What stops the server: SIGTERM drains it, SIGINT (Ctrl-C) stops it at once.
STOP_SIGNALS: Final = frozenset({signal.SIGTERM, signal.SIGINT})


class _Uvicorn(uvicorn.Server):
    """A uvicorn server that leaves signals to `Listeners`, which owns two of them."""

    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        yield

    def load(self) -> int:
        """Open connections or requests in flight, whichever is more."""
        return max(len(self.server_state.connections), len(self.server_state.tasks))

    def make_room(self, limit: int) -> bool:
        """Over the cap, drop the connection that has waited longest on its client (quiet
        between requests, or part-way through one) for `MAKE_ROOM_AFTER` at least; whether
        one was dropped. Not when the excess is requests in flight: dropping a connection
        frees none of those.

        It makes room for a request rather than refusing it: with a keep-alive longer than
        the API server's, a client could otherwise hold the cap for minutes with connections
        it does not use, and every review after would be refused. The longest-waiting goes
        first, as the API server reuses the connection it used last."""
        if len(self.server_state.tasks) > limit:
            return False
        latest = asyncio.get_running_loop().time() - MAKE_ROOM_AFTER
        waiting = [
            (since, connection)
            for connection in self.server_state.connections
            if isinstance(connection, CoalescingHttpToolsProtocol)
            and (since := connection.waiting_since()) is not None
            and since <= latest
        ]
        if not waiting:
            return False
        _, longest = min(waiting, key=lambda found: found[0])
        longest.evict()
        return True


def bind(host: str, port: int, *, reuse_port: bool) -> socket.socket:
    """A listening TCP socket with Nagle off.

    asyncio turns Nagle off on accepted sockets only when their protocol reads IPPROTO_TCP,
    and a response written as headers then body would otherwise wait ~40 ms for the
    client's delayed ACK.
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if reuse_port:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind((host, port))
    sock.listen(2048)
    sock.set_inheritable(True)
    return sock


@dataclass
class Listeners:
    """One process serving the HTTPS and the plain-HTTP listener on already-bound sockets."""

    state: AppState
    https_socket: socket.socket
    http_socket: socket.socket
    preview_socket: socket.socket | None = None
    started: threading.Event = field(default_factory=threading.Event)
    _servers: list[_Uvicorn] = field(default_factory=list)
    _drain: asyncio.Future[None] | None = None
    # Set by SIGINT (Ctrl-C): the command then ends as an interrupted one does (exit 130).
    interrupted: bool = False

    def _uvicorn(self, asgi: ASGIApp, *, tls: bool) -> _Uvicorn:
        settings = self.state.settings
        tls_state = self.state.tls
        server: _Uvicorn  # bound below; the cap reads it only once requests arrive
        config = uvicorn.Config(
            guarded(
                asgi,
                self.state,
                limit=settings.max_connections,
                load=lambda: server.load(),  # noqa: PLW0108 - bound below
                make_room=lambda: server.make_room(settings.max_connections),
            ),
            # The read deadline on every port: a silent connection to the ops port would
            # otherwise count against the cap for ever, until the probes are refused.
            http=CoalescingHttpToolsProtocol.with_deadline(settings.read_seconds),
            timeout_keep_alive=settings.keep_alive_seconds,
            lifespan="off",
            access_log=False,
            log_config=None,
            server_header=False,
            date_header=False,
            proxy_headers=False,  # the API server connects directly; no forwarded headers
            timeout_graceful_shutdown=settings.shutdown_grace_seconds,
            ssl_context_factory=(lambda *_: tls_state.context) if tls and tls_state else None,
        )
        server = _Uvicorn(config)
        return server

    def stop(self) -> None:
        """Shut down now: every listener stops accepting and in-flight reviews finish."""
        for server in self._servers:
            server.should_exit = True

    def interrupt(self) -> None:
        """SIGINT: stop now, and say so once stopped."""
        self.interrupted = True
        self.stop()

    def terminate(self) -> None:
        """SIGTERM: drain, then stop. A second signal stops at once."""
        if self._drain is not None:
            self.stop()
            return
        self._drain = asyncio.ensure_future(self._drained())

    async def _drained(self) -> None:
        """Keep answering while the clients move off: /readyz fails and every admission
        response closes its connection. Stop when no admission connection is left, or after
        --drain-seconds.

        Closing an idle keep-alive connection, as a plain shutdown does at once, loses the review
        a client may be writing on it that moment: the API server does not retry a POST, and
        admits the pod unrepaired. So a connection is left for its client to use once more, and
        be told to close, until the drain ends; the keep-alive timeout, longer than the API
        server's own, does not close it first.
        """
        self.state.draining = True
        log.info("draining", extra={"fields": {"seconds": self.state.settings.drain_seconds}})
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.state.settings.drain_seconds
        admission = self._servers[0]
        while admission.server_state.connections and loop.time() < deadline:
            await asyncio.sleep(0.05)
        self.stop()

    async def serve(self) -> None:
        listening = [
            (self._uvicorn(admission_app(self.state), tls=True), self.https_socket),
            (self._uvicorn(ops_app(self.state), tls=False), self.http_socket),
        ]
        if self.preview_socket is not None:
            preview = self._uvicorn(preview_app(self.state), tls=True)
            listening.append((preview, self.preview_socket))
        self._servers = [server for server, _ in listening]
        loop = asyncio.get_running_loop()
        self.state.review_log.batch(loop)
        if threading.current_thread() is threading.main_thread():
            loop.add_signal_handler(signal.SIGTERM, self.terminate)
            loop.add_signal_handler(signal.SIGINT, self.interrupt)
            # A forked worker starts with both held back (`_run_workers`): one sent meanwhile
            # is handled now.
            signal.pthread_sigmask(signal.SIG_UNBLOCK, STOP_SIGNALS)
        # The sandboxes start now, so that the first new script does not wait for them.
        starting = asyncio.create_task(self.state.parses.started())
        settings = self.state.settings
        watcher = (
            asyncio.create_task(
                watch_certificates(
                    self.state.tls,
                    every=settings.cert_reload_seconds,
                    checked=self.state.certificate_metrics,
                )
            )
            if self.state.tls is not None
            else None
        )
        # One connection to the cluster, for warm start and Events alike.
        cluster = await _connected() if settings.warm_up or settings.events else None
        warming: asyncio.Task[None] | None = None
        if settings.warm_up:
            self.state.warm = WarmUp(
                cluster=cluster,
                pool=self.state.parses,
                options=settings.options(),
                seconds=settings.warm_up_seconds,
                parsed=self.state.metrics.warm_script,
            )
            warming = asyncio.create_task(self.state.warm.run())
        telling = (
            asyncio.create_task(send_events(self.state.events, cluster))
            if settings.events
            else None
        )
        serving = [asyncio.create_task(server.serve(sockets=[sock])) for server, sock in listening]
        while not all(s.started for s in self._servers) and not any(t.done() for t in serving):
            await asyncio.sleep(0.01)
        self.started.set()
        try:
            await asyncio.gather(*serving)
        finally:
            if watcher is not None:
                watcher.cancel()
            if telling is not None:
                telling.cancel()
            if self.state.warm is not None and warming is not None:
                self.state.warm.close()
                warming.cancel()
            self.stop()
            self.state.review_log.flush()
            self.state.previews.close(wait=True)  # the process exits next
            with contextlib.suppress(Exception):
                await starting
            self.state.parses.close()


async def _connected() -> Cluster | None:
    """The server's connection to the cluster (the pod's ServiceAccount, or `KUBECONFIG`), or
    None, said once, when it has no credentials: warm start and Events are then off."""
    try:
        return Cluster(await asyncio.get_running_loop().run_in_executor(None, connect))
    except KubeError as error:
        log.info(
            "no cluster credentials: warm start and Events off; first-seen scripts are parsed "
            "on first use",
            extra={"fields": {"why": str(error)}},
        )
        return None


def run(listeners: Listeners) -> None:
    try:
        import uvloop  # noqa: PLC0415 - optional speed-up, absent on some platforms

        uvloop.run(listeners.serve())
    except ImportError:
        asyncio.run(listeners.serve())


def serve(settings: Settings) -> None:
    """Serve until SIGTERM, in this process or in `settings.workers` processes."""
    if settings.cert_dir is None:
        raise ValueError("cert_dir must be set: the CLI makes a self-signed pair when it is not")
    reuse = settings.workers > 1
    wanted = {"https_port": settings.https_port, "http_port": settings.http_port}
    if settings.preview_port:
        wanted["preview_port"] = settings.preview_port
    sockets = {}
    for name, port in wanted.items():
        try:
            sockets[name] = bind(settings.bind_address, port, reuse_port=reuse)
        except OSError as error:
            flag = "--" + name.replace("_", "-")
            where = f"{settings.bind_address}:{port}"
            raise OSError(f"cannot listen on {where} ({flag}): {error.strerror}") from None
    tls = certs.CertificateReloader(settings.cert_dir)
    ports = {name: sock.getsockname()[1] for name, sock in sockets.items()}
    log.info("serving", extra={"fields": {**ports, "workers": settings.workers}})
    # The ports as bound (port 0 takes a free one), for whoever started the server.
    print("listening:", " ".join(f"{name}={port}" for name, port in ports.items()), flush=True)

    def listeners(state: AppState) -> Listeners:
        return Listeners(
            state, sockets["https_port"], sockets["http_port"], sockets.get("preview_port")
        )

    if settings.workers == 1:
        serving = listeners(AppState(settings, tls=tls))
        run(serving)
        interrupted = serving.interrupted
    else:
        with tempfile.TemporaryDirectory(prefix="multinode-webhook-metrics-") as directory:
            metrics.use_multiprocess(Path(directory))
            state = AppState(settings, tls=tls, metrics=Metrics(multiprocess_dir=Path(directory)))
            interrupted = _run_workers(listeners(state), settings.workers)
    if interrupted:
        # Stopped cleanly; the command line answers Ctrl-C with exit 130, quietly.
        raise KeyboardInterrupt


def _run_workers(listeners: Listeners, count: int) -> bool:
    """Fork `count` workers and wait for them; SIGTERM and SIGINT are passed on to each.
    True when SIGINT stopped them.

    The workers inherit the bound sockets, the loaded certificate and the log setup; each
    polls the certificate files on its own, and counts its metrics in the shared directory.

    Both signals are held back while the workers are forked, and each worker lets them go
    once its own handlers are in (`Listeners.serve`): Ctrl-C right after `listening:` landed
    in a worker before its handlers (a KeyboardInterrupt in the fork's own locks, which left
    it hung) or in this process before `forward` (the workers it had forked were never told,
    and it waited on them for ever). The process has no other thread to take them meanwhile.
    """
    context = multiprocessing.get_context("fork")
    workers = [context.Process(target=run, args=(listeners,)) for _ in range(count)]
    interrupted = False

    def forward(signum: int, _frame: object) -> None:
        nonlocal interrupted
        interrupted = interrupted or signum == signal.SIGINT
        for worker in workers:
            if worker.is_alive():
                with contextlib.suppress(ProcessLookupError):
                    worker.terminate()

    held = signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS)
    try:
        signal.signal(signal.SIGTERM, forward)
        signal.signal(signal.SIGINT, forward)
        for worker in workers:
            worker.start()
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, held)  # one sent meanwhile is forwarded now
    for worker in workers:
        worker.join()
    return interrupted
