"""Rolling restarts under keep-alive load: no review is lost.

Two `serve` processes stand behind a Service that pins each connection to the backend it first
reached, as conntrack does. Clients that pool connections like kube-apiserver's (and never retry
a POST once written) send reviews all along while, three times, the endpoint moves to a new
replica, the old one keeps serving for a moment (the preStop pause), then gets SIGTERM. Every
review written must get its whole response: one that does not is a pod admitted unrepaired.
"""

from __future__ import annotations

import contextlib
import json
import signal
from pathlib import Path

from tests.support import servers
from tests.support.builders import example, review
from tests.support.keepalive import PooledClient, Service, load
from tests.support.servers import client_context

RESTARTS = 3
# What each replica is started with: quiet logs (their pipes are not read while they run). The
# keep-alive and drain timeouts are the defaults, as deployed.
FLAGS = ("--log-level", "warning")


def test_rolling_restarts_under_keep_alive_load_lose_no_review(tmp_path: Path) -> None:
    body = json.dumps(review(example("legacy-head-pod.yaml"))).encode()
    with contextlib.ExitStack() as stack:
        process, https_port, _ = stack.enter_context(servers.spawned(tmp_path, *FLAGS))
        service = Service(https_port)
        stack.callback(service.close)
        context = client_context((tmp_path / "certs" / "ca.crt").read_bytes())
        client = PooledClient(service.port, context, body)
        with load(client, threads=8, pause=0.002) as tally:
            tally.more(500)
            for _ in range(RESTARTS):
                old = process
                process, https_port, _ = stack.enter_context(servers.spawned(tmp_path, *FLAGS))
                service.backend = https_port  # the endpoint moves; open connections stay
                tally.more(500)  # the preStop pause: the old replica still serves its own
                old.send_signal(signal.SIGTERM)
                assert old.wait(60) == 0
                tally.more(500)
    print(f"{tally.answered} reviews answered, {tally.lost} lost over {RESTARTS} restarts")
    assert tally.answered > 500
    assert tally.lost == 0, tally.errors[:5]
