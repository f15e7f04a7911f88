"""One structured line per review, in JSON or text, with the fields an operator searches by."""

from __future__ import annotations

import asyncio
import datetime as dt
import io
import json
import logging
import signal
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.builders import example, review
from tests.support.pace import patience
from tests.support.servers import free_port, running, spawned
from webhook.transport import logs
from webhook.transport.state import REFUSALS_LOGGED_PER_SECOND

FIELDS = {
    "endpoint": "/mutate",
    "uid": "u-1",
    "namespace": "models",
    "pod": "llama-head",
    "operation": "CREATE",
    "dryRun": False,
    "decision": "patched",
    "reason": "lossy-args",
    "duration_ms": 0.25,
}


def test_json_line() -> None:
    stream = io.StringIO()
    logs.ReviewLog(level="info", fmt="json", stream=stream)(dict(FIELDS))
    line = json.loads(stream.getvalue())
    assert {k: line[k] for k in FIELDS} == FIELDS
    assert (line["level"], line["msg"], line["logger"]) == ("info", "review", logs.REVIEW_LOGGER)


def test_text_line() -> None:
    stream = io.StringIO()
    logs.ReviewLog(level="debug", fmt="text", stream=stream)(dict(FIELDS))
    [line] = stream.getvalue().splitlines()
    assert " INFO    review endpoint=/mutate uid=u-1 namespace=models pod=llama-head" in line
    assert line.endswith("decision=patched reason=lossy-args duration_ms=0.25")


def test_timestamps_are_rfc3339_utc_milliseconds() -> None:
    # In this order: a repeat, a second's rollover and a step back all pass the cache.
    moments = [1_795_000_000.0004, 1_795_000_000.9994, 1_795_000_001.5, 1_795_000_000.0004, 0.0]
    for created in moments:
        expected = dt.datetime.fromtimestamp(created, dt.UTC).isoformat(timespec="milliseconds")
        assert logs._clock(created) == expected


def test_each_review_is_one_whole_line_in_order() -> None:
    stream = io.StringIO()
    review_log = logs.ReviewLog(level="info", fmt="json", stream=stream)
    for uid in ("a", "b", "c"):
        review_log({**FIELDS, "uid": uid})
    assert [json.loads(line)["uid"] for line in stream.getvalue().splitlines()] == ["a", "b", "c"]


class Writes(io.StringIO):
    """A stream that keeps each write it is handed."""

    def __init__(self) -> None:
        super().__init__()
        self.writes: list[str] = []

    def write(self, text: str) -> int:
        self.writes.append(text)
        return super().write(text)


def test_the_lines_of_one_loop_iteration_leave_in_one_write() -> None:
    stream = Writes()
    review_log = logs.ReviewLog(level="info", fmt="json", stream=stream)

    async def reviews() -> list[str]:
        review_log.batch(asyncio.get_running_loop())
        for uid in ("a", "b", "c"):
            review_log({**FIELDS, "uid": uid})
        during = list(stream.writes)
        await asyncio.sleep(0)
        review_log({**FIELDS, "uid": "d"})
        review_log.flush()  # as the server does when it stops
        return during

    assert asyncio.run(reviews()) == []
    assert len(stream.writes) == 2
    assert [json.loads(line)["uid"] for line in stream.writes[0].splitlines()] == ["a", "b", "c"]
    assert [json.loads(line)["uid"] for line in stream.writes[1].splitlines()] == ["d"]


def test_quiet_above_info() -> None:
    stream = io.StringIO()
    logs.ReviewLog(level="warning", fmt="json", stream=stream)(dict(FIELDS))
    assert stream.getvalue() == ""


@pytest.fixture
def logging_put_back() -> Iterator[None]:
    """What `logs.configure` changes, put back after the test: the root's handlers and level,
    uvicorn's loggers (their handlers, propagation and the filter that names their lines the
    listeners'), and the record details it turns off. Left in place, a later test in this
    process would find uvicorn's lines under our logger."""
    root = logging.getLogger()
    uvicorn = [logging.getLogger(name) for name in ("uvicorn", "uvicorn.error", "uvicorn.access")]
    saved = (root.handlers[:], root.level)
    saved_uvicorn = [(lg.handlers[:], lg.propagate, lg.filters[:]) for lg in uvicorn]
    details = (logging.logThreads, logging.logProcesses, logging.logMultiprocessing)
    try:
        yield
    finally:
        root.handlers[:], level = saved
        root.setLevel(level)
        for lg, (handlers, propagate, filters) in zip(uvicorn, saved_uvicorn, strict=True):
            lg.handlers[:], lg.propagate, lg.filters[:] = handlers, propagate, filters
        logging.logThreads, logging.logProcesses, logging.logMultiprocessing = details


@pytest.mark.usefixtures("logging_put_back")
def test_records_share_the_format(capsys: pytest.CaptureFixture[str]) -> None:
    logs.configure(level="info", fmt="json")
    logging.getLogger("multinode_webhook.test").info("hello", extra={"fields": {"a": 1}})
    line = json.loads(capsys.readouterr().err)
    assert (line["msg"], line["a"], line["level"]) == ("hello", 1, "info")


@pytest.mark.parametrize(
    ("msg", "args"),
    [
        ("Started server process [%d]", (7,)),
        ("Shutting down", ()),
        ("Finished server process [%d]", (7,)),
        ("Waiting for connections to close. (CTRL+C to force quit)", ()),
    ],
)
@pytest.mark.usefixtures("logging_put_back")
def test_uvicorns_lines_come_under_the_listeners_logger(
    capsys: pytest.CaptureFixture[str], msg: str, args: tuple[int, ...]
) -> None:
    logs.configure(level="info", fmt="json")
    logging.getLogger("uvicorn.error").info(msg, *args)
    line = json.loads(capsys.readouterr().err)
    assert (line["logger"], line["msg"]) == ("multinode_webhook.listeners", msg % args)


def test_the_server_logs_every_review(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    pod = example("legacy-head-pod.yaml")
    del pod["metadata"]["name"]
    pod["metadata"]["generateName"] = "llama-predictor-"
    body = review(pod, uid="logged")
    body["request"]["dryRun"] = True
    with running(tmp_path, log_level="info") as live, live.client() as client:
        capsys.readouterr()
        assert client.post("/mutate", json=body).status_code == 200
    lines = [
        json.loads(line)
        for line in capsys.readouterr().err.splitlines()
        if '"msg":"review"' in line
    ]
    assert len(lines) == 1
    line = lines[0]
    assert (line["uid"], line["namespace"], line["pod"], line["operation"], line["dryRun"]) == (
        "logged",
        "models",
        "llama-predictor-",
        "CREATE",
        True,
    )
    assert (line["decision"], line["reason"]) == ("patched", "lossy-args")
    assert line["duration_ms"] > 0


def test_refused_requests_are_logged_but_not_without_bound(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="multinode_webhook.app")
    with running(tmp_path) as live, live.client() as client, live.previews() as previews:
        for _ in range(40):
            reply = client.post(
                "/mutate", content=b"{nope", headers={"content-type": "application/json"}
            )
            assert reply.status_code == 400
        assert previews.post("/preview?format=xml", content=b"{}").status_code in (400, 415)
    refusals = [r for r in caplog.records if r.getMessage() == "request refused"]
    assert 1 <= len(refusals) <= REFUSALS_LOGGED_PER_SECOND + 2
    fields = refusals[0].fields  # type: ignore[attr-defined]
    assert fields["endpoint"] == "/mutate"
    assert fields["status"] == 400
    assert fields["error"].startswith("body is not valid JSON")


def test_each_lifecycle_line_is_printed_once_for_all_three_listeners(tmp_path: Path) -> None:
    flags = ("--preview-port", str(free_port()), "--log-format", "text", "--drain-seconds", "0")
    with spawned(tmp_path, *flags) as (process, _, _):
        process.send_signal(signal.SIGTERM)
        _, stderr = process.communicate(timeout=patience(30))
    for line in ("Started server process", "Shutting down", "Finished server process"):
        assert stderr.count(line) == 1, stderr
