"""A flood of costly first-seen scripts from some namespaces, on the real server (a process of
its own, as deployed) with the real parser: every first-seen pod of another namespace is still
repaired, and the server stays up."""

from __future__ import annotations

import copy
import threading
import time
from pathlib import Path
from typing import Any

import httpx

from tests.support.builders import example, review
from tests.support.poll import wait
from tests.support.servers import client_context, spawned

FLOODERS = 8
LEGIT_PODS = 8
SCRIPT_BYTES = 60 * 1024


def _costly(serial: int) -> dict[str, Any]:
    """A post-fix head pod whose script of about 60 KiB names `$@` thousands of times."""
    pod = example("legacy-head-pod.yaml")
    head = f"# {serial}\npython -m huggingfaceserver"
    script = head + " $@" * ((SCRIPT_BYTES - len(head)) // 3) + "\n"
    pod["spec"]["containers"][0]["command"] = ["bash", "-c", script]
    pod["spec"]["containers"][0]["args"] = ["--x"]
    return pod


def _first_seen(serial: int) -> dict[str, Any]:
    """The example head pod, its script made new as a new runtime version's would be."""
    pod = example("legacy-head-pod.yaml")
    container = pod["spec"]["containers"][0]
    container["args"][0] = f"# release {serial}\n" + container["args"][0]
    return pod


def _client(https_port: int, tmp_path: Path) -> httpx.Client:
    context = client_context((tmp_path / "certs" / "ca.crt").read_bytes())
    return httpx.Client(base_url=f"https://localhost:{https_port}", verify=context, timeout=30)


def _flood(
    https_port: int, tmp_path: Path, stop: threading.Event, client_id: int, sent: list[int]
) -> None:
    serial = 0
    with _client(https_port, tmp_path) as client:
        while not stop.is_set():
            serial += 1
            body = review(_costly(client_id * 100_000 + serial), namespace=f"flood-{client_id}")
            client.post("/mutate", json=body)
            sent[client_id] += 1


def test_a_flood_of_costly_scripts_holds_no_other_namespaces_pod(tmp_path: Path) -> None:
    stop = threading.Event()
    sent = [0] * FLOODERS
    # The clients are threads of this process; the server, in its own, does not share its
    # interpreter with them, as it does not with the API server.
    with spawned(tmp_path, log=tmp_path / "serve.log") as (_, https_port, http_port):
        flooding = [
            threading.Thread(target=_flood, args=(https_port, tmp_path, stop, i, sent))
            for i in range(FLOODERS)
        ]
        for thread in flooding:
            thread.start()
        answers = []
        try:
            wait(lambda: all(sent), "every flooding client's first answer")
            with _client(https_port, tmp_path) as client:
                for serial in range(LEGIT_PODS):
                    time.sleep(0.1)  # spread over the flood, as a rollout's pods are
                    body = review(copy.deepcopy(_first_seen(serial)), namespace="models")
                    answers.append(client.post("/mutate", json=body).json()["response"])
        finally:
            stop.set()
            for thread in flooding:
                thread.join()
        assert httpx.get(f"http://127.0.0.1:{http_port}/readyz").status_code == 200
    assert all(count > 0 for count in sent), sent  # the flood ran all along
    assert [answer.get("patchType") for answer in answers] == ["JSONPatch"] * LEGIT_PODS, [
        answer.get("status") or answer.get("warnings") for answer in answers
    ]
