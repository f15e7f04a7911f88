"""Fault: warm start's watches broken by the API server, every one of them, one way per run, under
a real `serve` process (Events on too, reading the same connection). What must hold: the
replica sends at most a few requests a second in all, whatever the fault; a 410 leads to a
list again within seconds; and admission is answered throughout."""

from __future__ import annotations

import time
from pathlib import Path

import httpx
import pytest

from tests.support import stubapi
from tests.support.builders import example, review
from tests.support.pace import patience
from tests.support.poll import wait
from tests.support.servers import client_context, spawned

# Followed kinds, each listed then watched: what a replica may send in its first seconds.
KINDS = len(stubapi.FOLLOWED_PATHS)


def _answered(https_port: int, cert_dir: Path) -> bool:
    with httpx.Client(verify=client_context((cert_dir / "ca.crt").read_bytes())) as client:
        reply = client.post(
            f"https://localhost:{https_port}/mutate", json=review(example("legacy-head-pod.yaml"))
        )
    return bool(reply.json()["response"].get("patchType") == "JSONPatch")


# The other faults are each tried on one watch in tests/adapters/test_follow.py; here, a whole
# replica against the two that cost the most before: a stream error (thousands of watches a
# second) and an HTTP 410 (relisted, then watched again).
@pytest.mark.parametrize("fault", ["error", "gone"])
def test_broken_watches_cost_a_few_requests_a_second_in_all(fault: str, tmp_path: Path) -> None:
    stub, server, kubeconfig = stubapi.serving(fault, tmp_path)
    try:
        flags = ("--warm-up-seconds", "5")
        with spawned(tmp_path, *flags, env={"KUBECONFIG": str(kubeconfig)}) as (_, https, _):
            wait(lambda: stub.watches >= 2 * KINDS, "every watch to be opened again")
            start, started = stub.lists + stub.watches, time.monotonic()
            time.sleep(5)
            sent = stub.lists + stub.watches - start
            seconds = time.monotonic() - started
            assert _answered(https, tmp_path / "certs")
    finally:
        stubapi.stop(server)
    # Backing off from 0.8 s, doubling, per kind: a few a second in all, where it was
    # thousands a second for each kind.
    assert sent <= 3 * seconds, (fault, sent, seconds, stub.lists, stub.watches)


def test_an_expired_watch_is_listed_again_within_seconds(tmp_path: Path) -> None:
    stub, server, kubeconfig = stubapi.serving("gone-in-stream", tmp_path)
    try:
        flags = ("--warm-up-seconds", "5")
        with spawned(tmp_path, *flags, env={"KUBECONFIG": str(kubeconfig)}):
            wait(lambda: stub.lists >= KINDS, "the first lists")
            first = stub.lists
            wait(lambda: stub.lists >= first + KINDS, "a list again after the 410", patience(15))
    finally:
        stubapi.stop(server)
