"""The server's life: certificate rotation under load, SIGTERM mid-burst, the README's first
command, several workers on one port."""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import re
import shlex
import signal
import socket
import ssl
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from prometheus_client.parser import text_string_to_metric_families

from tests.support import servers
from tests.support.builders import REPO, example, review
from tests.support.pace import patience
from tests.support.poll import wait
from tests.support.servers import client_context, running
from webhook.adapters import certs
from webhook.core import names
from webhook.core.names import Reason
from webhook.transport import listeners
from webhook.transport.listeners import bind


def _der(pem: bytes) -> bytes:
    return x509.load_pem_x509_certificate(pem).public_bytes(serialization.Encoding.DER)


def test_listening_sockets_turn_nagle_off() -> None:
    sock = bind("127.0.0.1", 0, reuse_port=False)
    with sock:
        assert sock.proto == socket.IPPROTO_TCP
        assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) == 1


def test_certificate_rotation_under_keep_alive_load(tmp_path: Path) -> None:
    first = certs.generate(sans=servers.SANS)
    second = certs.generate(sans=servers.SANS)  # another CA altogether
    with running(tmp_path, bundle=first) as live:
        assert live.served_certificate() == _der(first.cert_pem)
        failures: list[str] = []
        answered = 0
        stop = threading.Event()

        def hammer() -> None:
            nonlocal answered
            # Trusts both CAs, as a caBundle does while a rotation is rolled out.
            with live.client(second.ca_pem) as client:
                while not stop.is_set():
                    try:
                        reply = client.post("/mutate", json=review())
                        if reply.status_code != 200:
                            failures.append(f"status {reply.status_code}")
                        answered += 1
                    except httpx.HTTPError as error:
                        failures.append(repr(error))

        workers = [threading.Thread(target=hammer) for _ in range(4)]
        for worker in workers:
            worker.start()
        wait(lambda: answered >= 20, "reviews answered")
        servers.swap_certificate(tmp_path / "tls", second)
        wait(
            lambda: live.served_certificate(first.ca_pem, second.ca_pem) == _der(second.cert_pem),
            "the new certificate served",
        )
        after_swap = answered
        wait(lambda: answered >= after_swap + 20, "reviews answered on the new pair")
        servers.swap_certificate(tmp_path / "tls", second, corrupt=True)
        with live.ops() as ops:
            wait(
                lambda: "certificate_reload_errors_total 1.0" in ops.get("/metrics").text,
                "the corrupt pair refused",
            )
        assert live.served_certificate(first.ca_pem, second.ca_pem) == _der(second.cert_pem)
        stop.set()
        for worker in workers:
            worker.join()
        assert failures == []
        assert answered > 50
        with live.ops() as ops:
            assert ops.get("/readyz").status_code == 200


def test_an_expired_pair_never_replaces_the_served_one(tmp_path: Path) -> None:
    expired = certs.generate(
        sans=servers.SANS, days=1, now=dt.datetime.now(dt.UTC) - dt.timedelta(days=3)
    )
    with running(tmp_path) as live, live.ops() as ops:
        served = live.served_certificate()
        servers.swap_certificate(tmp_path / "tls", expired)
        wait(
            lambda: "certificate_reload_errors_total 1.0" in ops.get("/metrics").text,
            "the refused pair counted",
        )
        assert live.served_certificate() == served
        assert ops.get("/readyz").status_code == 200


def test_expired_certificate_is_not_ready(tmp_path: Path) -> None:
    expired = certs.generate(
        sans=servers.SANS, days=1, now=dt.datetime.now(dt.UTC) - dt.timedelta(days=3)
    )
    with running(tmp_path, bundle=expired) as live, live.ops() as ops:
        reply = ops.get("/readyz")
        assert reply.status_code == 503
        assert reply.json()["reason"] == "no valid certificate"
        assert ops.get("/healthz").status_code == 200


def test_sigterm_finishes_every_review_in_flight(tmp_path: Path) -> None:
    bundle = certs.generate(sans=servers.SANS)
    cert_dir = tmp_path / "tls"
    certs.write(bundle, cert_dir)
    process = subprocess.Popen(
        [sys.executable, "-m", "tests.support.slow_server", str(cert_dir)],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        https_port = int(process.stdout.readline().split()[0])
        connections = []
        for index in range(6):
            raw = socket.create_connection(("127.0.0.1", https_port))
            tls = client_context(bundle.ca_pem).wrap_socket(raw, server_hostname="localhost")
            servers.send_review(tls, json.dumps(review(uid=f"burst-{index}")).encode())
            connections.append(tls)
        # The first review is running, the others are queued behind it.
        assert process.stdout.readline().strip() == "reviewing"
        process.send_signal(signal.SIGTERM)
        for index, tls in enumerate(connections):
            status, body = servers.read_response(tls)
            assert status == 200
            assert json.loads(body)["response"]["uid"] == f"burst-{index}"
            tls.close()
        assert process.stderr is not None
        assert process.wait(20) == 0, process.stderr.read()
        logged = [json.loads(line) for line in process.stderr if '"msg":"review"' in line]
        assert sorted(line["uid"] for line in logged) == [f"burst-{i}" for i in range(6)]
    finally:
        process.kill()


def _readme_server_command() -> list[str]:
    """The server start of the README's first command."""
    readme = (REPO / "README.md").read_text()
    block = re.search(r"```bash\n(.*?)```", readme, re.DOTALL)
    assert block
    first = next(line for line in block.group(1).splitlines() if line and not line.startswith("#"))
    start = first.split("&&")[-1].strip()
    assert start.startswith(".venv/bin/multinode-webhook serve"), start
    return [str(Path(sys.executable).parent / "multinode-webhook"), *shlex.split(start)[1:]]


def test_readme_quick_start_serves(tmp_path: Path) -> None:
    https_port, http_port, preview_port = (servers.free_port() for _ in range(3))
    command = [
        *_readme_server_command(),
        "--https-port",
        str(https_port),
        "--http-port",
        str(http_port),
        "--preview-port",
        str(preview_port),
    ]
    process = subprocess.Popen(
        command, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        deadline = time.monotonic() + patience(20)
        while True:
            try:
                if httpx.get(f"http://127.0.0.1:{http_port}/readyz").status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert process.poll() is None, "server exited before it was ready"
            assert time.monotonic() < deadline, "server did not become ready"
            time.sleep(0.1)
        ca = (tmp_path / "certs" / "ca.crt").read_bytes()
        pod = (REPO / "examples" / "legacy-head-pod.yaml").read_text()
        reply = httpx.post(
            f"https://localhost:{preview_port}/preview",
            content=pod,
            headers={"content-type": "application/yaml"},
            verify=client_context(ca),
        )
        assert reply.json()["results"][0]["decision"] == "patched"
    finally:
        process.send_signal(signal.SIGTERM)
        out, _ = process.communicate(timeout=patience(20))
    assert process.returncode == 0
    assert "caBundle: " in out
    assert str(tmp_path / "certs" / "ca.crt") in out


@pytest.mark.skipif(not hasattr(socket, "SO_REUSEPORT"), reason="needs SO_REUSEPORT")
def test_workers_share_the_port_sum_their_metrics_and_stop_together(tmp_path: Path) -> None:
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    env = {"MULTINODE_WEBHOOK_WORKERS": "2", "TMPDIR": str(scratch)}
    with servers.spawned(tmp_path, "--log-level", "warning", env=env) as (
        process,
        https_port,
        http_port,
    ):
        verify = client_context((tmp_path / "certs" / "ca.crt").read_bytes())
        for serial in range(20):
            with httpx.Client(verify=verify) as client:  # a new connection each time
                reply = client.post(
                    f"https://localhost:{https_port}/mutate", json=review(uid=f"w{serial}")
                )
            assert reply.json()["response"]["uid"] == f"w{serial}"
        # Each scrape is a new connection, answered by either worker: all must show all 20.
        for _ in range(10):
            scraped = httpx.get(f"http://127.0.0.1:{http_port}/metrics").text
            assert _reviews_answered(scraped) == 20, scraped
        process.send_signal(signal.SIGTERM)
        process.communicate(timeout=patience(30))
    assert process.returncode == 0
    assert list(scratch.iterdir()) == [], "the metrics directory outlived the server"


def _reviews_answered(exposition: str) -> float:
    return sum(
        sample.value
        for family in text_string_to_metric_families(exposition)
        if family.name == "multinode_webhook_reviews"
        for sample in family.samples
        if sample.name == "multinode_webhook_reviews_total"
    )


def _rss_bytes(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS")


def _pod_with_script(size: int, serial: int) -> dict[str, Any]:
    """A legacy head pod whose script is `size` bytes and unlike any other's."""
    launch = "python -m huggingfaceserver --model_dir=/mnt/models\n"
    line = f"# {serial:08d} " + "x" * 60 + "\n"
    filler = line * ((size - len(launch)) // len(line))
    container = {"name": "kserve-container", "command": ["bash", "-c"], "args": [filler + launch]}
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": f"p{serial}", "labels": {names.ISVC_LABEL: "m"}},
        "spec": {"containers": [container]},
    }


def test_plain_http_and_requests_cut_at_shutdown_leave_no_traceback(tmp_path: Path) -> None:
    flags = ("--shutdown-grace-seconds", "1", "--drain-seconds", "1")
    with servers.spawned(tmp_path, *flags) as (process, https_port, _):
        with socket.create_connection(("127.0.0.1", https_port), timeout=5) as plain:
            plain.sendall(b"POST /mutate HTTP/1.1\r\nhost: localhost\r\n\r\n")
            with contextlib.suppress(ConnectionResetError):
                assert plain.recv(1024) == b""  # closed, without an answer it could misread
        context = client_context((tmp_path / "certs" / "ca.crt").read_bytes())
        raw = socket.create_connection(("127.0.0.1", https_port), timeout=10)
        with context.wrap_socket(raw, server_hostname="localhost") as cut:
            cut.sendall(
                b"POST /mutate HTTP/1.1\r\nhost: localhost\r\ncontent-type: application/json\r\n"
                b"content-length: 1000\r\n\r\n{"
            )
            # The drain (1 s) gives the partial request time to arrive, whenever it does.
            process.send_signal(signal.SIGTERM)
            status, body = servers.read_response(cut)
        _, stderr = process.communicate(timeout=patience(30))
    assert (status, json.loads(body)) == (503, {"error": "the server is shutting down"})
    assert process.returncode == 0
    assert "request cut short at shutdown" in stderr
    assert "Traceback" not in stderr, stderr
    assert "Exception in ASGI application" not in stderr, stderr


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="needs /proc")
def test_memory_stays_bounded_under_many_distinct_large_scripts(tmp_path: Path) -> None:
    with servers.spawned(tmp_path, "--log-level", "warning") as (process, https_port, http_port):
        context = client_context((tmp_path / "certs" / "ca.crt").read_bytes())
        with httpx.Client(base_url=f"https://localhost:{https_port}", verify=context) as client:

            def send(size: int, serial: int) -> str:
                reply = client.post("/mutate", json=review(_pod_with_script(size, serial)))
                assert reply.status_code == 200
                return str(reply.json()["response"]["auditAnnotations"]["reason"])

            for serial in range(30):  # warm up the allocator
                send(40 * 1024, serial)
            before = _rss_bytes(process.pid)
            reasons = {send(256 * 1024, 1000 + serial) for serial in range(150)}
            reasons |= {send(48 * 1024, 2000 + serial) for serial in range(150)}
            grown = _rss_bytes(process.pid) - before
        assert reasons == {Reason.SCRIPT_TOO_LARGE, Reason.LOSSY_ARGS}
        metrics = httpx.get(f"http://127.0.0.1:{http_port}/metrics").text
        assert 'multinode_webhook_scripts_too_large_total{endpoint="/mutate"} 150.0' in metrics
        # 300 distinct scripts of 48-256 KiB: about 45 MiB of scripts went through.
        assert grown < 24 * 1024 * 1024, f"RSS grew by {grown / 2**20:.1f} MiB"


def test_admission_is_answered_while_the_largest_preview_runs(tmp_path: Path) -> None:
    limit = 4 * 1024 * 1024
    pods: list[dict[str, Any]] = []
    size = 0
    while size < limit - 64 * 1024:  # distinct 16 KiB scripts, so that nothing is cached
        pods.append(_pod_with_script(16 * 1024, len(pods)))
        size += len(json.dumps(pods[-1])) + 8
    body = json.dumps({"apiVersion": "v1", "kind": "List", "items": pods}).encode()
    assert len(body) <= limit
    with running(tmp_path, preview_body_limit=limit) as live, live.client() as client:
        assert client.post("/mutate", json=review()).status_code == 200
        assert live.preview_port is not None
        raw = socket.create_connection(("127.0.0.1", live.preview_port))
        with client_context(live.ca_pem).wrap_socket(raw, server_hostname="localhost") as tls:
            head = (
                "POST /preview HTTP/1.1\r\nhost: localhost\r\n"
                f"content-type: application/json\r\ncontent-length: {len(body)}\r\n\r\n"
            )
            tls.sendall(head.encode() + body)
            # An order of events, not a clock: with the whole preview sent, reviews are
            # answered before its reply begins. On the event loop the first review waited for
            # the whole preview, and its reply was there first.
            for _ in range(3):
                assert client.post("/mutate", json=review()).status_code == 200
                assert not _replied(tls), "the preview was answered before the review"
            tls.settimeout(patience(120))
            reply = tls.makefile("rb")
            status = reply.readline()
            length = 0
            while (line := reply.readline()) not in (b"\r\n", b""):
                name, _, value = line.partition(b":")
                if name.lower() == b"content-length":
                    length = int(value)
            content = reply.read(length)
    assert status.startswith(b"HTTP/1.1 200"), status
    assert len(json.loads(content)["results"]) == len(pods)


def test_over_the_connection_cap_a_request_gets_a_json_503(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Connections too young to be dropped for room: the cap itself answers.
    monkeypatch.setattr(listeners, "MAKE_ROOM_AFTER", 3600.0)

    def first_reply(status: int) -> httpx.Response:
        """Reviews on fresh connections until one is answered `status`: the server counts a
        connection once its handshake is done, and forgets it once it is closed."""
        deadline = time.monotonic() + patience(10)
        while True:
            with live.client() as client:
                reply = client.post("/mutate", json=review())
            if reply.status_code == status:
                return reply
            assert time.monotonic() < deadline, f"never answered {status}"

    with running(tmp_path, max_connections=3) as live:
        idle = [_tls_socket(live) for _ in range(3)]
        reply = first_reply(503)
        assert reply.headers["connection"] == "close"
        assert reply.json() == {"error": "over 3 open connections or requests; retry"}
        for sock in idle:
            sock.close()
        first_reply(200)
        with live.ops() as ops:
            metrics = ops.get("/metrics").text
    assert 'multinode_webhook_rejected_requests_total{code="503",endpoint="/mutate"} 1.0' in metrics


def _replied(tls: ssl.SSLSocket) -> bool:
    """Whether a reply has begun to arrive: the socket alone may be readable for a TLS 1.3
    session ticket, which is no reply."""
    tls.setblocking(False)
    try:
        return bool(tls.recv(1))
    except ssl.SSLWantReadError:
        return False
    finally:
        tls.setblocking(True)


def _tls_socket(live: servers.Running) -> ssl.SSLSocket:
    raw = socket.create_connection(("127.0.0.1", live.https_port))
    return client_context(live.ca_pem).wrap_socket(raw, server_hostname="localhost")


def _closed_within(tls: socket.socket, seconds: float, *, trickle: bytes = b"") -> bool:
    """Whether the server closes the connection within `seconds`, while `trickle` is sent a
    byte every 0.1 s. The tests give it far longer than the deadline under test: a server
    without that deadline never closes such a connection, however long it is given."""
    tls.settimeout(0.1)
    deadline = time.monotonic() + seconds
    for byte in [trickle[i : i + 1] for i in range(len(trickle))] or [b""]:
        with contextlib.suppress(OSError):
            if byte:
                tls.sendall(byte)
        try:
            if tls.recv(1024) == b"":
                return True
        except TimeoutError:
            pass
        except OSError:
            return True
        if time.monotonic() > deadline:
            return False
    while time.monotonic() < deadline:
        try:
            if tls.recv(1024) == b"":
                return True
        except TimeoutError:
            continue
        except OSError:
            return True
    return False


@pytest.mark.parametrize(
    "start",
    [
        b"POST /mutate HTTP/1.1\r\nhost: localhost\r\ncontent-type: application/json\r\n",
        b"POST /mutate HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n"
        b"content-length: 1000\r\n\r\n{",
    ],
    ids=["trickled-headers", "partial-body"],
)
def test_a_request_slower_than_the_read_deadline_is_closed(tmp_path: Path, start: bytes) -> None:
    with running(tmp_path, read_seconds=0.6) as live, live.client() as client:
        tls = _tls_socket(live)
        tls.sendall(start)
        # More header bytes keep arriving, but too slowly for the whole request to make it.
        assert _closed_within(tls, 20.0, trickle=b"x-slow: " + b"a" * 40)
        assert client.post("/mutate", json=review()).status_code == 200
        tls.close()


def test_a_silent_connection_to_the_ops_port_is_closed(tmp_path: Path) -> None:
    """The probes' port has the read deadline too: connections that send nothing would
    otherwise hold its cap until /healthz is refused and the kubelet restarts the pod."""
    with running(tmp_path, read_seconds=0.6, max_connections=2) as live, live.ops() as ops:
        silent = [socket.create_connection(("127.0.0.1", live.http_port)) for _ in range(2)]
        assert all(_closed_within(sock, 20.0) for sock in silent)
        assert ops.get("/healthz").status_code == 200
        for sock in silent:
            sock.close()


@pytest.mark.parametrize("first", [b"GET /held HTTP/1.1\r\nhost: localhost\r\n\r\n", b""])
def test_over_the_cap_the_connection_waiting_longest_on_its_client_makes_room(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, first: bytes
) -> None:
    """Connections that hold on after one request, or never send one, as a client squatting
    the cap would: the next review is answered, and the oldest of them is dropped for it."""
    monkeypatch.setattr(listeners, "MAKE_ROOM_AFTER", 0.0)
    with running(tmp_path, max_connections=3) as live:
        held = []
        for _ in range(3):
            tls = _tls_socket(live)
            if first:
                tls.sendall(first)
                assert servers.read_response(tls)[0] == 404
            held.append(tls)
        with live.client() as client:
            assert client.post("/mutate", json=review()).status_code == 200
        assert _closed_within(held[0], 20.0)
        for tls in held[1:]:
            tls.sendall(b"GET /held HTTP/1.1\r\nhost: localhost\r\n\r\n")
            assert servers.read_response(tls)[0] == 404  # still open: only one made room
            tls.close()
        with live.ops() as ops:
            metrics = ops.get("/metrics").text
    assert "multinode_webhook_connections_dropped_total 1.0" in metrics


def test_an_idle_keep_alive_connection_is_closed(tmp_path: Path) -> None:
    with running(tmp_path, keep_alive_seconds=1) as live:
        tls = _tls_socket(live)
        body = json.dumps(review()).encode()
        tls.sendall(
            b"POST /mutate HTTP/1.1\r\nhost: localhost\r\ncontent-type: application/json\r\n"
            + f"content-length: {len(body)}\r\n\r\n".encode()
            + body
        )
        status, _ = servers.read_response(tls)
        assert status == 200
        assert _closed_within(tls, 20.0)
        tls.close()


# Each, followed by a character above U+FFFF, crashes tree-sitter-bash's scanner if parsed.
HOSTILE_PREFIXES = ["{", "${", "x=${", 'echo "${', "f() {", "$({"]


@pytest.mark.parametrize("server", range(2))
def test_hostile_scripts_leave_the_server_up(tmp_path: Path, server: int) -> None:
    with servers.spawned(tmp_path, "--log-level", "warning") as (process, https_port, http_port):
        context = client_context((tmp_path / "certs" / "ca.crt").read_bytes())
        with httpx.Client(base_url=f"https://localhost:{https_port}", verify=context) as client:
            reasons = set()
            for serial in range(36):
                prefix = HOSTILE_PREFIXES[serial % len(HOSTILE_PREFIXES)]
                pod = _pod_with_script(0, serial)
                script = f"{prefix}{chr(0xC1113 + serial + 100 * server)}"
                pod["spec"]["containers"][0]["args"] = [script, "--x"]
                reply = client.post("/mutate", json=review(pod))
                assert reply.status_code == 200
                assert reply.json()["response"]["allowed"] is True
                reasons.add(reply.json()["response"]["auditAnnotations"]["reason"])
            assert reasons == {Reason.UNSUPPORTED_CHARACTERS}
            assert process.poll() is None
            assert httpx.get(f"http://127.0.0.1:{http_port}/readyz").status_code == 200
            patched = client.post("/mutate", json=review(example("legacy-head-pod.yaml")))
            assert patched.json()["response"]["patchType"] == "JSONPatch"


def test_sigterm_drains_before_it_stops(tmp_path: Path) -> None:
    flags = ("--log-level", "warning", "--drain-seconds", "30")
    with servers.spawned(tmp_path, *flags) as (process, https_port, http_port):
        context = client_context((tmp_path / "certs" / "ca.crt").read_bytes())
        body = json.dumps(review()).encode()
        raw = socket.create_connection(("127.0.0.1", https_port), timeout=10)
        with context.wrap_socket(raw, server_hostname="localhost") as kept:
            servers.send_review(kept, body)
            assert servers.read_response(kept)[0] == 200
            process.send_signal(signal.SIGTERM)
            ops = f"http://127.0.0.1:{http_port}/readyz"
            wait(lambda: httpx.get(ops).status_code == 503, "/readyz failing")
            assert process.poll() is None  # still serving the connection it holds
            servers.send_review(kept, body)
            head = b""
            while b"\r\n\r\n" not in head:
                head += kept.recv(65536)
            assert head.startswith(b"HTTP/1.1 200")
            assert b"connection: close" in head.lower()
        # Its last admission connection closed, the drain ends long before its 30 s.
        assert process.wait(10) == 0
