"""The Events queue: series, bounds, rate limits and errors, then the real server telling the
owners of reviewed pods through a fake API server, off the admission path."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support import fakeapi, llmisvc
from tests.support.builders import example, review
from tests.support.pace import patience
from tests.support.poll import wait
from tests.support.servers import running
from webhook.adapters.kube.client import KubeError
from webhook.adapters.kube.event_writer import NoOwner
from webhook.core import names
from webhook.core.kinds import ISVC_KIND
from webhook.core.notice import NORMAL, WARNING, Notice, Owner
from webhook.runtime.events import EventQueue
from webhook.transport.metrics import Metrics


def _notice(name: str = "llama", namespace: str = "models", reason: str = "ArgsRepaired") -> Notice:
    return Notice(Owner(ISVC_KIND, name, namespace), NORMAL, reason, f"{reason} said")


class Recorder:
    """A writer that records each write, and fails while `failing` is set."""

    def __init__(self) -> None:
        self.writes: list[tuple[Notice, int, int | None]] = []
        self.failing = False

    def record(self, notice: Notice, *, occurrences: int, total: int | None) -> int:
        if self.failing:
            raise KubeError("create Event: 500 etcd is down", status=500)
        self.writes.append((notice, occurrences, total))
        return (total or 0) + occurrences


def _dropped(metrics: Metrics, reason: str) -> float:
    value = metrics.registry.get_sample_value(
        "multinode_webhook_events_dropped_total", {"reason": reason}
    )
    return value or 0.0


def _run(queue: EventQueue, writer: Recorder, steps: Callable[[], Awaitable[None]]) -> None:
    """Run the queue's task beside `steps`, then stop it."""

    async def main() -> None:
        task = asyncio.create_task(queue.run(writer))
        try:
            await steps()
        finally:
            task.cancel()

    asyncio.run(main())


async def _settled(writer: Recorder, count: int) -> None:
    deadline = time.monotonic() + patience(5)
    while len(writer.writes) < count:
        assert time.monotonic() < deadline, writer.writes
        await asyncio.sleep(0.005)


def test_repeats_of_a_notice_are_one_series_written_at_most_every_repeat() -> None:
    metrics, writer = Metrics(), Recorder()
    queue = EventQueue(metrics=metrics, repeat_seconds=0.2)

    async def steps() -> None:
        queue.offer(_notice())
        await _settled(writer, 1)
        for _ in range(49):
            queue.offer(_notice())
        # Held until the repeat interval: the 49 are one write, not 49.
        await _settled(writer, 2)
        await asyncio.sleep(0.3)

    _run(queue, writer, steps)
    assert [(occurrences, total) for _, occurrences, total in writer.writes] == [(1, None), (49, 1)]


def test_a_full_queue_drops_new_series_and_counts_them() -> None:
    metrics, writer = Metrics(), Recorder()
    queue = EventQueue(metrics=metrics, limit=2)
    for name in ("a", "b", "c"):
        queue.offer(_notice(name))
    # A repeat of a queued series takes no place: it is counted into its series.
    queue.offer(_notice("a"))

    async def steps() -> None:
        await _settled(writer, 2)

    _run(queue, writer, steps)
    assert [(n.owner.name, occurrences) for n, occurrences, _ in writer.writes] == [
        ("a", 2),
        ("b", 1),
    ]
    assert _dropped(metrics, "queue-full") == 1


def test_one_namespace_cannot_take_every_place_in_the_queue() -> None:
    metrics, writer = Metrics(), Recorder()
    queue = EventQueue(metrics=metrics, limit=10, namespace_limit=2)
    for name in ("a", "b", "c", "d"):
        queue.offer(_notice(name, namespace="flood"))
    queue.offer(_notice("quiet", namespace="models"))

    async def steps() -> None:
        await _settled(writer, 3)

    _run(queue, writer, steps)
    assert sorted(n.owner.name for n, _, _ in writer.writes) == ["a", "b", "quiet"]
    assert _dropped(metrics, "queue-full") == 2


def test_an_owner_over_its_rate_loses_new_series_but_not_the_counts_of_old_ones() -> None:
    metrics, writer = Metrics(), Recorder()
    queue = EventQueue(metrics=metrics, burst=2, refill_seconds=0.3, repeat_seconds=0.0)

    async def steps() -> None:
        queue.offer(_notice(reason="ArgsRepaired"))
        queue.offer(_notice(reason="ScriptReplaced"))
        await _settled(writer, 2)
        queue.offer(_notice(reason="ArgsIgnored"))  # no token left: dropped
        queue.offer(_notice(reason="ArgsRepaired"))  # waits for the next token
        await asyncio.sleep(0.05)
        assert len(writer.writes) == 2
        await _settled(writer, 3)

    _run(queue, writer, steps)
    assert [(n.reason, occurrences, total) for n, occurrences, total in writer.writes] == [
        ("ArgsRepaired", 1, None),
        ("ScriptReplaced", 1, None),
        ("ArgsRepaired", 1, 1),
    ]
    assert _dropped(metrics, "rate-limited") == 1


def test_the_owners_a_namespace_names_share_its_rate() -> None:
    # A pod names its owner: a new name on each pod must not buy a new bucket.
    metrics, writer = Metrics(), Recorder()
    queue = EventQueue(
        metrics=metrics, namespace_limit=100, namespace_burst=3, namespace_refill_seconds=60
    )
    for serial in range(10):
        queue.offer(_notice(f"owner-{serial}", namespace="flood"))
    queue.offer(_notice("quiet", namespace="models"))

    async def steps() -> None:
        await _settled(writer, 4)
        while _dropped(metrics, "rate-limited") < 7:
            await asyncio.sleep(0.005)

    _run(queue, writer, steps)
    assert sorted(n.owner.name for n, _, _ in writer.writes) == [
        "owner-0",
        "owner-1",
        "owner-2",
        "quiet",
    ]


class _Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_all_writes_together_go_at_the_clients_pace() -> None:
    # Owners in many namespaces each have tokens of their own: the client's bound holds.
    metrics, writer, clock = Metrics(), Recorder(), _Clock()
    queue = EventQueue(
        metrics=metrics, limit=100, client_burst=3, client_refill_seconds=10, clock=clock
    )
    for serial in range(8):
        queue.offer(_notice(f"owner-{serial}", namespace=f"ns-{serial}"))

    async def steps() -> None:
        await _settled(writer, 3)
        await asyncio.sleep(0.1)  # no fourth write: the clock stands still
        assert len(writer.writes) == 3
        clock.now += 10  # one token back
        await _settled(writer, 4)
        await asyncio.sleep(0.1)
        assert len(writer.writes) == 4

    _run(queue, writer, steps)


def test_a_flood_over_many_namespaces_cannot_keep_another_namespaces_event_out() -> None:
    # 4 namespaces fill the queue with 2 series each; the victim's first Event takes the place
    # of the oldest of a namespace with the most waiting.
    metrics = Metrics()
    queue = EventQueue(metrics=metrics, limit=8, namespace_limit=2)
    for serial in range(8):
        queue.offer(_notice(f"owner-{serial}", namespace=f"flood-{serial % 4}"))
    queue.offer(_notice("llama", namespace="victim"))
    writer = Recorder()

    async def steps() -> None:
        await _settled(writer, 8)

    _run(queue, writer, steps)
    written = [notice.owner.name for notice, _, _ in writer.writes]
    assert "llama" in written
    assert "owner-0" not in written  # the oldest of the namespace with the most waiting
    assert _dropped(metrics, "queue-full") == 1


class _NoOwners(Recorder):
    def record(self, notice: Notice, *, occurrences: int, total: int | None) -> int:
        if notice.owner.name.startswith("ghost"):
            raise NoOwner(notice.owner.name)
        return super().record(notice, occurrences=occurrences, total=total)


def test_an_owner_that_does_not_exist_gets_no_event() -> None:
    metrics, writer = Metrics(), _NoOwners()
    queue = EventQueue(metrics=metrics)
    queue.offer(_notice("ghost"))
    queue.offer(_notice("llama"))

    async def steps() -> None:
        await _settled(writer, 1)
        while _dropped(metrics, "no-owner") < 1:
            await asyncio.sleep(0.005)
        queue.offer(_notice("ghost"))  # a new series again, not a count kept for it
        while _dropped(metrics, "no-owner") < 2:
            await asyncio.sleep(0.005)

    _run(queue, writer, steps)
    assert [n.owner.name for n, _, _ in writer.writes] == ["llama"]


class _OwnerGoes(Recorder):
    """The owner is there for the first write, and gone when its series is written again."""

    def record(self, notice: Notice, *, occurrences: int, total: int | None) -> int:
        if total is not None and notice.owner.name == "llama":
            raise NoOwner(notice.owner.name)
        return super().record(notice, occurrences=occurrences, total=total)


def test_an_owner_gone_after_its_first_event_stops_no_other_event() -> None:
    metrics, writer = Metrics(), _OwnerGoes()
    queue = EventQueue(metrics=metrics, repeat_seconds=0.0)

    async def steps() -> None:
        queue.offer(_notice())
        await _settled(writer, 1)
        queue.offer(_notice())  # written again: its owner is gone now
        while _dropped(metrics, "no-owner") < 1:
            await asyncio.sleep(0.005)
        queue.offer(_notice("other"))
        await _settled(writer, 2)

    _run(queue, writer, steps)
    assert [n.owner.name for n, _, _ in writer.writes] == ["llama", "other"]


def test_an_api_error_drops_the_write_and_a_later_notice_tries_again() -> None:
    metrics, writer = Metrics(), Recorder()
    queue = EventQueue(metrics=metrics)
    writer.failing = True

    async def steps() -> None:
        queue.offer(_notice())
        deadline = time.monotonic() + patience(5)
        while not _dropped(metrics, "api-error"):
            assert time.monotonic() < deadline
            await asyncio.sleep(0.005)
        writer.failing = False
        queue.offer(_notice())
        await _settled(writer, 1)

    _run(queue, writer, steps)
    assert [(occurrences, total) for _, occurrences, total in writer.writes] == [(1, None)]
    assert _dropped(metrics, "api-error") == 1


def test_off_takes_nothing() -> None:
    queue = EventQueue(metrics=Metrics())
    queue.off()
    queue.offer(_notice())
    writer = Recorder()

    async def steps() -> None:
        await asyncio.sleep(0.05)

    _run(queue, writer, steps)
    assert writer.writes == []


# Through the real server: a fake API server stands in for the cluster.

ISVC_UID = "0b6b9e1c-2f3a-4c5d-8e9f-a0b1c2d3e4f5"


def _events(api: fakeapi.FakeApi) -> list[dict[str, Any]]:
    with api.lock:
        return [dict(o) for (r, _, _), o in api.objects.items() if r == "events"]


@pytest.fixture
def cluster(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[fakeapi.FakeApi]:
    with fakeapi.serving(tmp_path) as (api, kubeconfig):
        monkeypatch.setenv("KUBECONFIG", str(kubeconfig))
        monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
        isvc = {"metadata": {"name": "llama", "namespace": "models", "uid": ISVC_UID}}
        api.put("inferenceservices", isvc)
        llm = {"metadata": {"name": llmisvc.NAME, "namespace": llmisvc.NAMESPACE, "uid": "u-llm"}}
        api.put("llminferenceservices", llm)
        yield api


def _post(live: Any, body: dict[str, Any]) -> dict[str, Any]:
    with live.client() as client:
        reply = client.post("/mutate", json=body)
    assert reply.status_code == 200, reply.text
    found: dict[str, Any] = reply.json()["response"]
    return found


def test_the_server_tells_the_inferenceservice_of_its_repaired_pods(
    cluster: fakeapi.FakeApi, tmp_path: Path
) -> None:
    head = example("legacy-head-pod.yaml")
    with running(tmp_path, warm_up=False) as live:
        live.state.events.repeat_seconds = 0.2  # ten seconds in production
        for _ in range(3):
            assert _post(live, review(head))["patchType"] == "JSONPatch"
        _post(live, review(head, dryRun=True))
        wait(lambda: len(_events(cluster)) == 1, "the Event to be written")
        [event] = _events(cluster)
        # The other two pods are counted into the series within its repeat interval.
        wait(lambda: _events(cluster)[0].get("count") == 3, "the series to count 3")
    assert event["involvedObject"] == {
        "apiVersion": "serving.kserve.io/v1beta1",
        "kind": ISVC_KIND,
        "name": "llama",
        "namespace": "models",
        "uid": ISVC_UID,
    }
    assert (event["type"], event["reason"]) == (NORMAL, "ArgsRepaired")
    assert event["metadata"]["name"].startswith("llama.")
    assert event["source"] == {"component": "multinode-webhook"}


def test_admission_never_waits_for_the_api_server(cluster: fakeapi.FakeApi, tmp_path: Path) -> None:
    pod = example("legacy-head-pod.yaml")
    for index in range(5):
        owner = {"metadata": {"name": f"model-{index}", "namespace": "models", "uid": f"u{index}"}}
        cluster.put("inferenceservices", owner)
    with running(tmp_path, warm_up=False) as live:
        cluster.gate.clear()  # every API call hangs from now on
        try:
            for index in range(5):
                pod["metadata"]["labels"][names.ISVC_LABEL] = f"model-{index}"
                # Each review is answered (a review waiting for the API would time out here),
                # though the Event writes behind them hang.
                assert _post(live, review(pod))["patchType"] == "JSONPatch"
            assert _events(cluster) == []
        finally:
            cluster.gate.set()
        wait(lambda: len(_events(cluster)) == 5, "the Events to be written once it answers")


def test_a_pod_whose_args_replaced_its_script_warns_its_llminferenceservice(
    cluster: fakeapi.FakeApi, tmp_path: Path
) -> None:
    pod = llmisvc.build_pod(llmisvc.SCRIPT_IN_ARGS_PRESET, role="leader", user_args=["--x=1"])
    with running(tmp_path, warm_up=False) as live:
        _post(live, review(pod, namespace=llmisvc.NAMESPACE))
        wait(lambda: len(_events(cluster)) == 1, "the Event to be written")
    [event] = _events(cluster)
    assert (event["type"], event["reason"]) == (WARNING, "ScriptReplaced")
    assert event["involvedObject"]["kind"] == "LLMInferenceService"
    assert event["involvedObject"]["uid"] == "u-llm"


def test_events_false_writes_none(cluster: fakeapi.FakeApi, tmp_path: Path) -> None:
    with running(tmp_path, warm_up=False, events=False) as live:
        _post(live, review(example("legacy-head-pod.yaml")))
        time.sleep(0.3)
    assert _events(cluster) == []
    assert not any("events" in path for _, path in cluster.requests)


def _raising(facts: Any, **_: Any) -> Any:
    raise RuntimeError("injected failure")


def test_a_review_answered_by_the_error_policy_warns_its_owner(
    cluster: fakeapi.FakeApi, tmp_path: Path
) -> None:
    with running(tmp_path, warm_up=False, decide=_raising) as live:
        response = _post(live, review(example("legacy-head-pod.yaml")))
        assert response["allowed"] is True
        wait(lambda: len(_events(cluster)) == 1, "the Event to be written")
    [event] = _events(cluster)
    assert (event["type"], event["reason"]) == (WARNING, "ReviewFailed")
    assert "internal error: RuntimeError" in event["message"]
    assert "admitted unchanged" in event["message"]
