"""Ctrl-C ends any command quietly, workers included (issue 43), at the moments its start-up
races the signal: a worker process being spawned or forked, a request to the API server under
way. Each run is Ctrl-C as a terminal sends it, SIGINT to the command's process group, and ends
with exit 130, no traceback from any of its processes, and none of them left running.

The signal goes once the command's own handling of it is in (`webhook.__main__` installs it
before it imports anything heavy), so exit 130 is the one answer: a death by SIGINT, as Python
answers a KeyboardInterrupt nothing caught, is a failure too. The moments are states the test
waits for (a child in /proc, a line, a connection), not times; a timeout only bounds a hang.
"""

from __future__ import annotations

import contextlib
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Final

import httpx
import pytest

from tests.support import fakeapi
from tests.support.builders import EXAMPLES
from tests.support.interrupts import (
    children,
    interrupted,
    left_behind,
    spawned_workers,
    started,
    takes_sigint,
    until,
)
from tests.support.pace import patience
from tests.support.servers import client_context, free_port
from webhook.adapters import certs


def _ended_quietly(process: subprocess.Popen[str]) -> None:
    code, err = interrupted(process)
    assert (code, "Traceback" in err, "KeyboardInterrupt" in err) == (130, False, False), err
    assert left_behind(process.pid) == []


# A few milliseconds in: the worker, spawned, is still importing; a forked one is still
# setting up its event loop.
SOON: Final = 0.005


@pytest.mark.parametrize("later", [0, SOON], ids=["spawned", "soon-after"])
def test_ctrl_c_as_preview_spawns_its_parse_worker(later: float) -> None:
    with started(
        "preview",
        str(EXAMPLES / "llminferenceservice.yaml"),
        "--preset",
        str(EXAMPLES / "llminferenceservice-preset.yaml"),
    ) as preview:
        [worker] = until(lambda: spawned_workers(preview.pid), preview)
        assert not takes_sigint(worker)  # it imports: that is the preview's to answer
        time.sleep(later)
        _ended_quietly(preview)


@pytest.fixture(scope="module")
def tls(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("tls")
    certs.write(certs.generate(sans=("localhost", "127.0.0.1"), days=1), directory)
    return directory


@contextlib.contextmanager
def _serving(tls: Path, *flags: str) -> Iterator[subprocess.Popen[str]]:
    """`serve` on free ports, with one parse worker and nothing that reaches for a cluster;
    once it has said where it listens."""
    with started(
        "serve",
        f"--cert-dir={tls}",
        "--bind-address=127.0.0.1",
        "--https-port=0",
        "--http-port=0",
        "--parse-workers=1",
        "--no-warm-up",
        "--no-events",
        *flags,
    ) as server:
        assert server.stdout is not None
        assert server.stdout.readline().startswith("listening:")
        yield server


@pytest.mark.parametrize("moment", ["listening", "forking"])
def test_ctrl_c_as_serve_forks_its_workers(tls: Path, moment: str) -> None:
    # Right after its listening line the server is about to fork; as its first worker
    # appears, that one has no handlers of its own yet, and the second may not be forked.
    with _serving(tls, "--workers=2", "--preview-port=0") as server:
        if moment == "forking":
            until(lambda: children(server.pid), server)
        _ended_quietly(server)


def test_ctrl_c_as_serve_spawns_its_preview_worker(tls: Path) -> None:
    port = free_port()
    with _serving(tls, f"--preview-port={port}") as server:
        parse_worker = until(lambda: spawned_workers(server.pid), server)
        asking = threading.Thread(target=_preview, args=(tls, port), daemon=True)
        asking.start()
        [worker] = until(
            lambda: [pid for pid in spawned_workers(server.pid) if pid not in parse_worker],
            server,
        )
        assert not takes_sigint(worker)  # it imports: that is the server's to answer
        _ended_quietly(server)
    asking.join(patience(30))


def _preview(tls: Path, port: int) -> None:
    """POST a pod to /preview, until the listener takes it; the answer, if any, is not the
    test's: the server is stopped under it."""
    body = (EXAMPLES / "legacy-head-pod.yaml").read_bytes()
    context = client_context((tls / certs.CA_FILE).read_bytes())
    with httpx.Client(verify=context, timeout=patience(30)) as client:
        for _ in range(1000):
            try:
                client.post(
                    f"https://localhost:{port}/preview",
                    content=body,
                    headers={"content-type": "application/yaml"},
                )
            except httpx.ConnectError:
                time.sleep(0.01)  # not listening yet
                continue
            except httpx.HTTPError:
                pass
            return


@pytest.fixture
def silent_api(tmp_path: Path) -> Iterator[tuple[socket.socket, Path]]:
    """An API server that takes connections and never answers, and a kubeconfig for it."""
    with socket.create_server(("127.0.0.1", 0)) as listener:
        kubeconfig = fakeapi.write_kubeconfig(tmp_path / "kubeconfig", listener.getsockname()[1])
        yield listener, kubeconfig


def test_ctrl_c_ends_certs_bootstrap_waiting_on_a_silent_api_server(
    silent_api: tuple[socket.socket, Path],
) -> None:
    listener, kubeconfig = silent_api
    with started(
        "certs", "bootstrap", "--every=1m", "--namespace=x", f"--kubeconfig={kubeconfig}"
    ) as keeper:
        listener.settimeout(patience(60))
        connection, _ = listener.accept()  # its first request under way, never to be answered
        with connection:
            _ended_quietly(keeper)


def test_ctrl_c_ends_certs_bootstrap_between_its_passes(tmp_path: Path) -> None:
    with fakeapi.serving(tmp_path) as (api, kubeconfig):
        api.put("mutatingwebhookconfigurations", fakeapi.opt_in_configuration())
        with started(
            "certs", "bootstrap", "--every=1m", "--namespace=x", f"--kubeconfig={kubeconfig}"
        ) as keeper:
            assert keeper.stdout is not None
            assert keeper.stdout.readline().startswith("new certificate")
            _ended_quietly(keeper)


def test_ctrl_c_reaches_a_command_started_with_it_held_back(
    silent_api: tuple[socket.socket, Path],
) -> None:
    # A mask outlives exec: a parent that held SIGINT back when it started the command (as
    # multiprocessing does around the processes it starts) must not make it deaf to Ctrl-C.
    listener, kubeconfig = silent_api
    with contextlib.ExitStack() as stack:
        held = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
        try:
            keeper = stack.enter_context(
                started(
                    "certs",
                    "bootstrap",
                    "--every=1m",
                    "--namespace=x",
                    f"--kubeconfig={kubeconfig}",
                )
            )
        finally:
            signal.pthread_sigmask(signal.SIG_SETMASK, held)
        listener.settimeout(patience(60))
        connection, _ = listener.accept()
        with connection:
            _ended_quietly(keeper)
