"""The preview worker: a real process, a bounded queue, a restart after it dies."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import signal
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from tests.support import llmisvc
from tests.support.builders import EXAMPLES
from tests.support.interrupts import takes_sigint
from webhook.adapters.config import Settings
from webhook.core.model import Context, Options
from webhook.offline.preview import NEWEST, InputError, preview_text
from webhook.offline.report import formatted
from webhook.transport import preview_worker
from webhook.transport.preview_app import preview_app
from webhook.transport.preview_worker import (
    FAILURE_CHARS,
    PreviewFailed,
    PreviewRefused,
    PreviewWorker,
    formatted_preview,
)
from webhook.transport.state import AppState

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


def test_a_body_its_format_cannot_write_is_a_400(monkeypatch: pytest.MonkeyPatch) -> None:
    # Writing the results out is part of the preview: a value the format has no way to write is
    # the input's fault, as one it cannot read.
    def unwritable(*_: object) -> str:
        raise InputError("body: a mapping key that is a date has no JSON form")

    monkeypatch.setattr(preview_worker, "formatted", unwritable)
    with pytest.raises(PreviewRefused) as refused:
        formatted_preview(HEAD, context=CONTEXT, options=OPTIONS, fmt="json", kserve_version=NEWEST)
    assert (refused.value.status, str(refused.value)) == (
        400,
        "body: a mapping key that is a date has no JSON form",
    )


def test_a_fault_of_ours_comes_back_from_the_worker_in_one_short_line() -> None:
    # The app refuses an unknown format before the worker sees it: here it stands for any
    # exception the preview does not expect.
    async def go() -> str:
        worker = PreviewWorker()
        try:
            return await worker.preview(HEAD, context=CONTEXT, options=OPTIONS, fmt="nonsense")
        finally:
            worker.close()

    with pytest.raises(PreviewFailed) as failed:
        asyncio.run(go())
    assert failed.value.kind == "ValueError"
    assert str(failed.value).startswith("ValueError: unknown format 'nonsense'")
    assert failed.value.__cause__ is None  # no traceback of the worker's along with it


def test_a_long_failure_is_cut_to_one_line(monkeypatch: pytest.MonkeyPatch) -> None:
    def failing(*_: object) -> str:
        raise TypeError("not this\n" * 10_000)

    monkeypatch.setattr(preview_worker, "formatted", failing)
    outcome = preview_worker._preview_in_worker(
        HEAD, context=CONTEXT, options=OPTIONS, fmt="json", kserve_version=NEWEST
    )
    assert isinstance(outcome, preview_worker._Failed)
    assert outcome.kind == "TypeError"
    assert len(outcome.message) == FAILURE_CHARS
    assert outcome.message.startswith("not this not this")


def test_a_failed_preview_is_a_500_naming_its_kind_and_one_log_line(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    async def failing(*_: Any, **__: Any) -> str:
        raise PreviewFailed("TypeError", "keys must be str, int, float, bool or None, not date")

    async def post(state: AppState) -> httpx.Response:
        transport = httpx.ASGITransport(app=preview_app(state))
        async with httpx.AsyncClient(transport=transport, base_url="https://test") as client:
            headers = {"content-type": "application/yaml"}
            return await client.post("/preview", content=HEAD, headers=headers)

    state = AppState(Settings())
    monkeypatch.setattr(state.previews, "preview", failing)
    try:
        with caplog.at_level(logging.INFO, logger="multinode_webhook"):
            reply = asyncio.run(post(state))
    finally:
        state.parses.close()
    assert reply.status_code == 500
    assert reply.json() == {"error": "multinode-webhook internal error: TypeError"}
    [record] = [r for r in caplog.records if r.name.startswith("multinode_webhook")]
    assert (record.levelname, record.getMessage(), record.exc_info) == (
        "ERROR",
        "preview failed",
        None,
    )
    assert record.fields == {  # type: ignore[attr-defined]
        "error": "TypeError: keys must be str, int, float, bool or None, not date"
    }
