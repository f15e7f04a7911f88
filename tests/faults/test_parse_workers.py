"""Fault: the parse workers of a running server killed (as the OOM killer does) while idle,
while parsing, three times in a row, and unable to start. What must hold: no first-seen pod
goes unrepaired for more than the review that met the fault, a kill is never blamed on the
script (`parser-failed`), and `/readyz` says the truth throughout."""

from __future__ import annotations

import copy
import os
import signal
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from tests.support.builders import example, review
from tests.support.crash import SLOW, rewrite_slowly
from tests.support.poll import wait
from tests.support.servers import Running, running
from tests.support.spawning import refuse_spawning


def _first_seen(serial: str) -> dict[str, Any]:
    """The example head pod, its script new to the server (and to this process's cache)."""
    pod = example("legacy-head-pod.yaml")
    container = pod["spec"]["containers"][0]
    container["args"][0] = f"# release {serial} {uuid.uuid4()}\n" + container["args"][0]
    return pod


def _answer(live: Running, serial: int) -> dict[str, Any]:
    with live.client() as client:
        body = review(copy.deepcopy(_first_seen(str(serial))), namespace="models")
        response: dict[str, Any] = client.post("/mutate", json=body).json()["response"]
        return response


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().split(") ", 1)[1][:1] not in ("Z", "X")
    except (FileNotFoundError, ProcessLookupError):
        return False


def _kill_workers(live: Running) -> None:
    """SIGKILL every running parse worker, and wait for them to die."""
    pids = [pid for pid in live.state.parses.pids if _alive(pid)]
    assert pids, "no parse worker runs"
    for pid in pids:
        os.kill(pid, signal.SIGKILL)
    wait(lambda: not any(map(_alive, pids)), "the killed workers to die")


def _metric(live: Running, name: str) -> float:
    with live.ops() as ops:
        text = ops.get("/metrics").text
    [line] = [line for line in text.splitlines() if line.startswith(name + " ")]
    return float(line.split()[1])


def test_workers_killed_while_idle_three_times_leave_no_first_seen_pod_unrepaired(
    tmp_path: Path,
) -> None:
    with running(tmp_path) as live:
        for serial in range(3):
            assert _answer(live, 100 + serial).get("patchType") == "JSONPatch"  # workers ran
            _kill_workers(live)
            answer = _answer(live, serial)
            assert answer.get("patchType") == "JSONPatch", answer.get("warnings")
            with live.ops() as ops:
                assert ops.get("/readyz").status_code == 200
        assert _metric(live, "multinode_webhook_parse_workers_replaced_total") >= 3
        assert _metric(live, "multinode_webhook_parser_crashes_total") == 0


def _slow_first_seen(serial: int, seconds: float) -> dict[str, Any]:
    """A first-seen pod whose script takes `seconds` to parse under `rewrite_slowly`."""
    pod = _first_seen(str(serial))
    container = pod["spec"]["containers"][0]
    container["args"][0] = f"{SLOW}{seconds}\n" + container["args"][0]
    return pod


@pytest.mark.parametrize(("kills", "repaired"), [(2, True), (3, False)])
def test_workers_killed_under_one_parse_are_no_fault_of_the_script(
    tmp_path: Path, kills: int, repaired: bool
) -> None:
    """Each kill lands while the worker parses; the parse is tried again on a fresh one. Three
    kills in a row give the review up (the error policy answers it, and the replica is not
    ready until a worker runs again), but never blame the script: the same pod, sent again, is
    repaired."""
    with running(
        tmp_path,
        rewrite=rewrite_slowly,
        parse_workers=1,
        warm_up=False,
        parse_budget_seconds=20,
        deadline_seconds=25,
    ) as live:
        pod = _slow_first_seen(200 + kills, 1.0)
        body = review(pod, namespace="models")
        # The worker runs (a first pod repaired); it is killed while idle, so that each one
        # after it is started for the review's parse.
        assert _answer(live, 300 + kills).get("patchType") == "JSONPatch"
        killed = _busy(live)
        _kill_workers(live)
        with ThreadPoolExecutor(1) as pool, live.client() as client:
            answering = pool.submit(lambda: client.post("/mutate", json=body).json())
            for _ in range(kills):
                _wait_fresh(live, killed)
                fresh = _busy(live) - killed
                _kill_workers(live)
                killed |= fresh
            answer = answering.result()["response"]
        if repaired:
            assert answer.get("patchType") == "JSONPatch", answer.get("warnings")
        else:
            assert "parse-worker-unavailable" in answer["auditAnnotations"]["reason"], answer
            # No worker lasted: /readyz said so until one was started again.
            with live.ops() as ops:
                wait(lambda: ops.get("/readyz").status_code == 200, "a worker to run again")
            again = _answer_pod(live, pod)
            assert again.get("patchType") == "JSONPatch", again.get("warnings")
        assert _metric(live, "multinode_webhook_parser_crashes_total") == 0
        with live.ops() as ops:
            assert ops.get("/readyz").status_code == 200


def _wait_fresh(live: Running, killed: set[int]) -> None:
    """Until a worker not killed yet runs."""
    wait(lambda: bool(_busy(live) - killed), "a worker to take the parse")


def _answer_pod(live: Running, pod: dict[str, Any]) -> dict[str, Any]:
    with live.client() as client:
        reply = client.post("/mutate", json=review(pod, namespace="models")).json()
        answer: dict[str, Any] = reply["response"]
        return answer


def _busy(live: Running) -> set[int]:
    """The worker processes alive."""
    return {pid for pid in live.state.parses.pids if _alive(pid)}


def test_workers_that_would_not_start_with_the_server_start_once_they_can(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    refuse_spawning(monkeypatch)
    with running(tmp_path, parse_workers=2, warm_up=False) as live, live.ops() as ops:
        wait(lambda: ops.get("/readyz").status_code == 503, "/readyz to fail")
        assert "no parse worker could be started" in ops.get("/readyz").json()["reason"]
        # Answered at once by the error policy, not held to its deadline.
        answer = _answer(live, 1)
        assert "parse-worker-unavailable" in answer["auditAnnotations"]["reason"], answer
        monkeypatch.undo()
        wait(lambda: ops.get("/readyz").status_code == 200, "the workers to start", 60)
        wait(lambda: len(live.state.parses.pids) == 2, "both workers to start")
        assert _answer(live, 2).get("patchType") == "JSONPatch"


def test_while_no_worker_can_start_readyz_fails_naming_why_and_the_server_recovers(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with running(tmp_path, parse_workers=2) as live:
        assert _answer(live, 0).get("patchType") == "JSONPatch"  # the workers ran
        # Both are started (on a thread) before any is killed: one still starting would
        # come up after the kill and parse.
        wait(lambda: len(_busy(live)) == 2, "both workers to start")
        refuse_spawning(monkeypatch)
        _kill_workers(live)
        answer = _answer(live, 1)
        assert answer["allowed"] is True
        assert "patchType" not in answer
        assert "parse-worker-unavailable" in answer["auditAnnotations"]["reason"], answer
        with live.ops() as ops:
            wait(lambda: ops.get("/readyz").status_code == 503, "/readyz to fail")
            reason = ops.get("/readyz").json()["reason"]
            assert "no parse worker could be started" in reason, reason
        assert _metric(live, "multinode_webhook_parse_worker_start_failures_total") >= 1
        assert _metric(live, "multinode_webhook_ready") == 0
        monkeypatch.undo()
        with live.ops() as ops:
            wait(lambda: ops.get("/readyz").status_code == 200, "the workers to start again", 60)
        assert _answer(live, 2).get("patchType") == "JSONPatch"
