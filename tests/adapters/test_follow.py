"""`Cluster.follow` (warm start's list and watch) against a stub API server that breaks every
watch: an error in the stream, a watch that ends at once, a 410 (in the stream or as the
answer), a watch that never speaks. Whatever the fault, the replica's requests stay a few a
second, an expired watch is listed again, and a silent one is given up."""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support import stubapi
from tests.support.poll import wait
from webhook.adapters.kube import client
from webhook.adapters.kube.client import Cluster, connect


@contextlib.contextmanager
def _following(
    fault: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[stubapi.Stub, threading.Thread]]:
    stub, server, kubeconfig = stubapi.serving(fault, tmp_path)
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
        stubapi.stop(server)


@pytest.mark.parametrize("fault", ["error", "empty", "gone", "gone-in-stream", "silent"])
def test_a_broken_watch_costs_a_few_requests_a_second(
    fault: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with _following(fault, tmp_path, monkeypatch) as (stub, _):
        wait(lambda: stub.watches >= 2, "the watch to be opened again")
        time.sleep(1.5)
        requests = stub.lists + stub.watches
    # Backing off from 0.8 s, doubling: a handful in 1.5 s where it was thousands.
    assert requests <= 10, (stub.lists, stub.watches)


@pytest.mark.parametrize("fault", ["gone", "gone-in-stream"])
def test_an_expired_watch_is_listed_again(
    fault: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with _following(fault, tmp_path, monkeypatch) as (stub, _):
        wait(lambda: stub.lists >= 2, "a second list after the 410")
