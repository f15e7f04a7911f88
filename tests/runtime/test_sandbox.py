"""The sandbox: a crash in its worker is an answer, never the asking process's death."""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Final

import pytest
import yaml

from tests.support import kserve
from tests.support.builders import EXAMPLES, REPO, example
from tests.support.crash import crashing_script, rewrite_or_crash
from tests.support.interrupts import takes_sigint
from tests.support.pace import patience
from tests.support.poll import wait
from tests.support.spawning import kill_at_start
from webhook.core.names import Reason, Rule
from webhook.offline.isolation import InProcess, ParserFailed, isolated
from webhook.offline.migrate import migrate_text
from webhook.offline.preview import preview_inference_service, preview_object
from webhook.runtime.sandbox import Isolated, Sandbox, Unavailable, stop_pool

RULES = frozenset(Rule)


def _die() -> None:
    os.kill(os.getpid(), signal.SIGSEGV)


@pytest.fixture
def crashing() -> Iterator[Sandbox]:
    """A sandbox whose parse dies on `crashing_script`, the offline front ends' isolation."""
    box = Sandbox(rewrite=rewrite_or_crash)
    try:
        with isolated(Isolated(sandbox=box)):
            yield box
    finally:
        box.close()


def test_a_call_runs_in_another_process_and_a_crash_starts_a_new_one() -> None:
    box = Sandbox()
    try:
        first = box.call(os.getpid)
        assert first != os.getpid()
        with pytest.raises(ParserFailed):
            box.call(_die)
        assert box.crashes == 1
        second = box.call(os.getpid)
        assert second not in (first, os.getpid())
        assert box.rewrite("python -m huggingfaceserver\n", RULES).rules == (Rule.FORWARD_ARGS,)
    finally:
        box.close()


def _killed_until(counter: str, times: int) -> int:
    """Die by SIGKILL (as by the OOM killer) the first `times` calls, counted in a file."""
    done = int(Path(counter).read_text() or "0")
    if done < times:
        Path(counter).write_text(str(done + 1))
        os.kill(os.getpid(), signal.SIGKILL)
    return os.getpid()


@pytest.mark.parametrize(("kills", "answered"), [(1, True), (2, True), (3, False)])
def test_a_worker_killed_from_outside_is_no_crash_of_the_call(
    tmp_path: Path, kills: int, answered: bool
) -> None:
    counter = tmp_path / "kills"
    counter.write_text("0")
    box = Sandbox()
    try:
        if answered:
            assert box.call(_killed_until, str(counter), kills) != os.getpid()
        else:
            with pytest.raises(Unavailable, match="killed from outside 3 times"):
                box.call(_killed_until, str(counter), kills)
        assert (box.crashes, box.killed) == (0, 0 if answered else 1)
        assert box.call(os.getpid) != os.getpid()  # the next call finds a fresh worker
    finally:
        box.close()


def test_a_crashing_script_is_parser_failed_and_never_parsed_again() -> None:
    box = Sandbox(rewrite=rewrite_or_crash)
    script = crashing_script()
    try:
        first = Isolated(sandbox=box)
        assert first.rewrite(script, RULES).reason is Reason.PARSER_FAILED
        assert box.crashes == 1
        assert first.scripts.get(script, RULES) is None  # a crash is kept apart, by digest
        assert first.rewrite(script, RULES).reason is Reason.PARSER_FAILED
        assert box.crashes == 1
        good = "python -m huggingfaceserver --x\n"
        assert first.rewrite(good, RULES).rules == (Rule.FORWARD_ARGS,)
        assert first.scripts.get(good, RULES) is not None
        # Another run's isolation keeps nothing of this one's.
        other = Isolated(sandbox=box)
        assert other.scripts.get(good, RULES) is None
        assert other.rewrite(script, RULES).reason is Reason.PARSER_FAILED
        assert box.crashes == 2
    finally:
        box.close()


def test_a_full_crasher_memory_forgets_the_oldest_and_keeps_the_newest() -> None:
    box = Sandbox(rewrite=rewrite_or_crash)
    isolation = Isolated(sandbox=box, crashers_kept=2)
    first, second, newest = (crashing_script(serial) for serial in (10, 11, 12))
    try:
        for script in (first, second, newest):
            isolation.rewrite(script, RULES)
        assert box.crashes == 3
        # The newest crasher, retried by its controller, costs no worker: it is remembered.
        isolation.rewrite(newest, RULES)
        assert box.crashes == 3, "the newest crasher was forgotten"
        isolation.rewrite(second, RULES)
        assert box.crashes == 3, "a crasher was forgotten while there was room for it"
        # The oldest made room for the newest, and is parsed (and crashes) again.
        isolation.rewrite(first, RULES)
        assert box.crashes == 4, "the oldest crasher was kept past the memory's size"
    finally:
        box.close()


def _crashing_pod() -> dict[str, object]:
    pod = example("legacy-head-pod.yaml")
    pod["spec"]["containers"][0]["args"][0] = crashing_script(1)
    return pod


def test_preview_names_the_object_and_container_whose_script_crashed(crashing: Sandbox) -> None:
    with pytest.raises(ParserFailed) as error:
        preview_object(_crashing_pod())
    name = example("legacy-head-pod.yaml")["metadata"]["name"]
    assert str(error.value) == (
        f"Pod {name}: container kserve-container: the bash parser crashed on its script"
    )
    assert crashing.crashes == 1
    # The next object gets a new worker.
    [result] = preview_object(example("legacy-head-pod.yaml"))
    assert result["decision"] == "patched"


def test_migrate_names_the_file_runtime_and_container(crashing: Sandbox) -> None:
    runtime = (
        "apiVersion: serving.kserve.io/v1alpha1\n"
        "kind: ServingRuntime\n"
        "metadata: {name: rt}\n"
        "spec:\n"
        "  containers:\n"
        "    - name: kserve-container\n"
        "      command: [bash, -c]\n"
        f"      args: [{crashing_script(2)!r}]\n"
    )
    with pytest.raises(ParserFailed) as error:
        migrate_text(runtime, name="rt.yaml")
    assert str(error.value) == (
        "rt.yaml: ServingRuntime/rt: container kserve-container: "
        "the bash parser crashed on its script"
    )


def test_a_rendered_pod_whose_script_crashes_names_the_inference_service(
    crashing: Sandbox,
) -> None:
    runtime = yaml.safe_load((EXAMPLES / "legacy-servingruntime.yaml").read_text())
    runtime["spec"]["containers"][0]["args"][0] = crashing_script(3)
    isvc = kserve.inference_service(runtime, user_args=["--x"])
    with pytest.raises(ParserFailed) as error:
        preview_inference_service(isvc, [runtime])
    assert str(error.value) == (
        f"InferenceService {kserve.ISVC} (head): container kserve-container: "
        "the bash parser crashed on its script"
    )
    # Parsed in the sandbox, the example previews as it does in-process, launch argv included.
    runtime = yaml.safe_load((EXAMPLES / "legacy-servingruntime.yaml").read_text())
    isvc = kserve.inference_service(runtime, user_args=["--x"])
    in_sandbox = preview_inference_service(isvc, [runtime])
    with isolated(InProcess()):
        assert in_sandbox == preview_inference_service(isvc, [runtime])


def _running(pid: int) -> bool:
    """Whether the process exists and has not exited (a zombie has)."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (FileNotFoundError, ProcessLookupError):
        # Gone, or reaped between opening its stat and reading it.
        return False


def test_close_ends_the_worker_at_once_even_mid_call(tmp_path: Path) -> None:
    box = Sandbox()
    worker = box.call(os.getpid)
    assert worker != os.getpid()
    started = tmp_path / "started"
    outcome: list[BaseException] = []
    busy = threading.Thread(target=_busy, args=(box, str(started), outcome), daemon=True)
    busy.start()
    wait(started.exists, "the worker to run the call")
    box.close()
    # Not left to the pool's own shutdown: that waits for the call, and its lost wake-up
    # once kept a server's process from exiting at all.
    wait(lambda: not _running(worker), "the sandbox worker to end", seconds=5)
    busy.join(5)
    # The call under way is not tried again on a worker of its own, which would outlive the
    # sandbox; nor is a later one.
    assert not busy.is_alive()
    [answer] = outcome
    assert isinstance(answer, Unavailable), answer
    assert str(answer) == "the parse worker was stopped at shutdown"
    assert box.pids == []
    assert not started.with_name("started-again").exists()
    with pytest.raises(Unavailable, match="stopped at shutdown"):
        box.call(os.getpid)


def _busy(box: Sandbox, marker: str, outcome: list[BaseException]) -> None:
    try:
        box.call(_mark_and_sleep, marker)
    except BaseException as error:
        outcome.append(error)


def _mark_and_sleep(marker: str) -> None:
    path = Path(marker)
    (path.with_name("started-again") if path.exists() else path).touch()
    time.sleep(60)


def test_a_worker_that_dies_as_it_starts_is_a_start_failure(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    kill_at_start(monkeypatch)
    box = Sandbox()
    try:
        with pytest.raises(Unavailable, match="killed from outside 3 times"):
            box.start()
        assert box.start_failures == 1
        assert box.unavailable is not None
        monkeypatch.undo()
        box.start()
        assert box.unavailable is None
    finally:
        box.close()


def test_ctrl_c_as_a_worker_starts_is_left_to_the_process_that_started_it() -> None:
    # Ctrl-C reaches the whole process group, the worker's imports under way included: it
    # printed a KeyboardInterrupt traceback from them, the asking process being the one to stop.
    box = Sandbox()
    answered: list[int] = []
    calling = threading.Thread(target=lambda: answered.append(box.call(os.getpid)), daemon=True)
    try:
        calling.start()
        deadline = time.monotonic() + patience(30)
        while not box.pids and time.monotonic() < deadline:
            time.sleep(0.001)  # it imports for a good part of a second: caught in it
        [worker] = box.pids
        assert not takes_sigint(worker)
        os.kill(worker, signal.SIGINT)
        calling.join(patience(60))
        assert answered == [worker]
        assert (box.replaced, box.crashes) == (0, 0)
    finally:
        box.close()


def test_a_pool_whose_first_call_ctrl_c_cut_short_stops_at_once() -> None:
    # Its first `submit` makes the manager thread, then starts it: Ctrl-C between the two, and
    # the command's last act, stopping the pool, raised (cannot join thread before it is started).
    pool = ProcessPoolExecutor(max_workers=1, mp_context=multiprocessing.get_context("spawn"))
    # typeshed has the attribute's type wrong (the wake-up's, not the thread's).
    pool._executor_manager_thread = threading.Thread(target=int)  # type: ignore[assignment]
    stop_pool(pool, wait=True)


_ORPHANING: Final = """
import os, sys
from webhook.runtime.sandbox import Sandbox
box = Sandbox()
print(box.call(os.getpid), flush=True)
sys.stdin.read()  # until the test kills this process
"""


def test_a_worker_ends_with_the_process_that_started_it() -> None:
    # Killed (SIGKILL, the OOM killer), a command stops none of its workers.
    parent = subprocess.Popen(
        [sys.executable, "-c", _ORPHANING],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        cwd=REPO,
    )
    try:
        assert parent.stdout is not None
        worker = int(parent.stdout.readline())
    finally:
        parent.kill()
        parent.wait()
    try:
        wait(lambda: _ended(worker), "the orphaned worker to end")
    finally:  # not left behind by a failure
        with contextlib.suppress(ProcessLookupError):
            os.kill(worker, signal.SIGKILL)


def _ended(pid: int) -> bool:
    """Whether the process is gone, or a zombie its new parent has yet to reap."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except FileNotFoundError:
        return True
    return "\nState:\tZ" in status
