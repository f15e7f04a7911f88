"""The preview worker: a real process, a bounded queue, a restart after it dies."""

from __future__ import annotations

import asyncio
import json
import os
import signal
from pathlib import Path

import pytest
import yaml

from tests.support import llmisvc
from tests.support.builders import EXAMPLES
from tests.support.interrupts import takes_sigint
from webhook.core.model import Context, Options
from webhook.offline.preview import NEWEST, preview_text
from webhook.offline.report import formatted
from webhook.transport.preview_worker import PreviewRefused, PreviewWorker, formatted_preview

HEAD = (EXAMPLES / "legacy-head-pod.yaml").read_text()
CONTEXT = Context()
OPTIONS = Options()


def _many_pods(count: int) -> str:
    """A YAML stream of legacy head pods with distinct scripts: seconds of work."""
    return "---\n".join(HEAD.replace("ray start", f"ray start # {n}") for n in range(count))


def _worker_pid(worker: PreviewWorker) -> int:
    executor = worker._executor  # the test signals the process itself
    assert executor is not None
    [pid] = executor._processes
    return pid


def test_the_worker_writes_what_the_cli_writes() -> None:
    async def go() -> str:
        worker = PreviewWorker()
        try:
            return await worker.preview(HEAD, context=CONTEXT, options=OPTIONS, fmt="json")
        finally:
            worker.close()

    expected = formatted(preview_text(HEAD, name="body", context=CONTEXT, options=OPTIONS), "json")
    assert json.loads(asyncio.run(go())) == json.loads(expected)


@pytest.mark.parametrize(
    ("text", "error"),
    [("a: [b\n", "body:2:1: invalid YAML"), ("", "body: the input holds no Kubernetes object")],
)
def test_bad_input_is_a_400_naming_the_fault(text: str, error: str) -> None:
    async def go() -> None:
        worker = PreviewWorker()
        try:
            await worker.preview(text, context=CONTEXT, options=OPTIONS, fmt="json")
        finally:
            worker.close()

    with pytest.raises(PreviewRefused) as refused:
        asyncio.run(go())
    assert refused.value.status == 400
    assert str(refused.value).startswith(error)


def test_previews_past_the_queue_are_refused() -> None:
    async def go() -> tuple[list[str], int]:
        worker = PreviewWorker(waiting=1)
        try:
            work = [
                asyncio.ensure_future(
                    worker.preview(_many_pods(30), context=CONTEXT, options=OPTIONS, fmt="patch")
                )
                for _ in range(3)
            ]
            outcomes = await asyncio.gather(*work, return_exceptions=True)
        finally:
            worker.close()
        refused = [o for o in outcomes if isinstance(o, PreviewRefused)]
        return [o for o in outcomes if isinstance(o, str)], refused[0].status

    done, status = asyncio.run(go())
    assert len(done) == 2
    assert status == 503


@pytest.mark.skipif(not Path("/proc/self/oom_score_adj").exists(), reason="needs /proc")
def test_the_worker_gives_way_and_a_dead_one_is_replaced() -> None:
    async def go() -> tuple[int, int, int, str]:
        worker = PreviewWorker()
        try:
            await worker.preview(HEAD, context=CONTEXT, options=OPTIONS, fmt="json")
            pid = _worker_pid(worker)
            priority = os.getpriority(os.PRIO_PROCESS, pid) - os.getpriority(os.PRIO_PROCESS, 0)
            oom = int(Path(f"/proc/{pid}/oom_score_adj").read_text())
            running = asyncio.ensure_future(
                worker.preview(_many_pods(1000), context=CONTEXT, options=OPTIONS, fmt="json")
            )
            await asyncio.sleep(0)  # the preview runs up to its submission to the worker
            os.kill(pid, signal.SIGKILL)  # as the OOM killer would
            with pytest.raises(PreviewRefused) as refused:
                await running
            after = await worker.preview(HEAD, context=CONTEXT, options=OPTIONS, fmt="patch")
            return priority, oom, refused.value.status, after
        finally:
            worker.close()

    priority, oom, status, after = asyncio.run(go())
    assert priority == 10
    assert oom == 1000
    assert status == 503
    assert json.loads(after.splitlines()[0])[0]["op"]


def test_ctrl_c_as_the_worker_starts_is_left_to_the_server() -> None:
    # Ctrl-C reaches the server's whole process group, the worker's imports under way included:
    # it printed a KeyboardInterrupt traceback from them, the server being the one to stop.
    async def go() -> tuple[bool, bool, str]:
        worker = PreviewWorker()
        try:
            running = asyncio.ensure_future(
                worker.preview(HEAD, context=CONTEXT, options=OPTIONS, fmt="json")
            )
            await asyncio.sleep(0)  # the preview runs up to its submission: the worker spawned
            pid = _worker_pid(worker)
            takes = takes_sigint(pid)
            os.kill(pid, signal.SIGINT)
            answer = await running
            return takes, _worker_pid(worker) == pid, answer
        finally:
            worker.close()

    takes, same, answer = asyncio.run(go())
    assert (takes, same) == (False, True)
    assert json.loads(answer)["results"]


# What a request lacks, and how its error says to give it: in its one body, never with a flag
# of the command line, which a request has no way to pass.
@pytest.mark.parametrize(
    ("body", "lacking"),
    [
        (
            (EXAMPLES / "inferenceservice.yaml").read_text(),
            "not among those given (none): pass it in the same input",
        ),
        (
            yaml.safe_dump(llmisvc.small_service([])),
            "which is not among the presets given: pass it in the same input",
        ),
    ],
    ids=["runtime", "preset"],
)
def test_a_request_is_told_to_give_what_it_lacks_in_its_body(body: str, lacking: str) -> None:
    with pytest.raises(PreviewRefused) as refused:
        formatted_preview(body, context=CONTEXT, options=OPTIONS, fmt="json", kserve_version=NEWEST)
    assert refused.value.status == 400
    assert str(refused.value).endswith(lacking)
    assert " --" not in str(refused.value)
