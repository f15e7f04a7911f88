"""Event series through a fake API server: one object per series, counted up, begun again when
it expired, shared with another replica's, and naming its owner by uid when it can be read."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support import fakeapi
from webhook.adapters.kube.client import Cluster, KubeError, connect
from webhook.adapters.kube.event_writer import EventWriter, NoOwner, series_name
from webhook.core.kinds import ISVC_KIND, LLMISVC_KIND
from webhook.core.notice import NORMAL, Notice, Owner

NOTICE = Notice(Owner(ISVC_KIND, "llama", "models"), NORMAL, "ArgsRepaired", "said", "d1")


@pytest.fixture
def api(tmp_path: Path) -> Iterator[tuple[fakeapi.FakeApi, EventWriter]]:
    with fakeapi.serving(tmp_path) as (fake, kubeconfig):
        # The owner of NOTICE: an owner that does not exist gets no Event.
        owner = {"metadata": {"name": "llama", "namespace": "models", "uid": "u1"}}
        fake.put("inferenceservices", owner)
        cluster = Cluster(connect(kubeconfig=str(kubeconfig)))
        yield fake, EventWriter(cluster, instance="replica-1")


def _event(fake: fakeapi.FakeApi, notice: Notice = NOTICE) -> dict[str, Any] | None:
    return fake.get("events", "models", series_name(notice))


def test_a_series_is_made_then_counted_up(api: tuple[fakeapi.FakeApi, EventWriter]) -> None:
    fake, writer = api
    fake.put(
        "inferenceservices", {"metadata": {"name": "llama", "namespace": "models", "uid": "u1"}}
    )
    assert writer.record(NOTICE, occurrences=1, total=None) == 1
    assert writer.record(NOTICE, occurrences=4, total=1) == 5
    event = _event(fake)
    assert event is not None
    assert (event["count"], event["reason"], event["message"]) == (5, "ArgsRepaired", "said")
    assert event["involvedObject"] == {
        "apiVersion": "serving.kserve.io/v1beta1",
        "kind": ISVC_KIND,
        "name": "llama",
        "namespace": "models",
        "uid": "u1",
    }
    assert event["reportingInstance"] == "replica-1"
    # The owner's uid was read once.
    reads = [p for m, p in fake.requests if m == "GET" and "inferenceservices" in p]
    assert len(reads) == 1


def test_a_series_begun_elsewhere_is_added_to(api: tuple[fakeapi.FakeApi, EventWriter]) -> None:
    fake, writer = api
    writer.record(NOTICE, occurrences=3, total=None)
    # Another replica, or this one after a restart, has no count of its own yet.
    assert writer.record(NOTICE, occurrences=2, total=None) == 5
    assert (_event(fake) or {})["count"] == 5


def test_an_expired_series_begins_again(api: tuple[fakeapi.FakeApi, EventWriter]) -> None:
    fake, writer = api
    writer.record(NOTICE, occurrences=3, total=None)
    del fake.objects["events", "models", series_name(NOTICE)]
    assert writer.record(NOTICE, occurrences=2, total=3) == 2
    assert (_event(fake) or {})["count"] == 2


def test_each_outcome_is_a_series_of_its_own() -> None:
    other = NOTICE._replace(digest="d2")
    assert series_name(NOTICE) != series_name(other)
    assert series_name(NOTICE).startswith("llama.")


def test_owners_of_two_kinds_and_one_name_are_two_series() -> None:
    kinds = {ISVC_KIND, LLMISVC_KIND}
    names = {series_name(NOTICE._replace(owner=NOTICE.owner._replace(kind=k))) for k in kinds}
    assert len(names) == 2


def test_an_owner_that_does_not_exist_gets_no_event(
    api: tuple[fakeapi.FakeApi, EventWriter],
) -> None:
    fake, writer = api
    notice = NOTICE._replace(owner=Owner(ISVC_KIND, "ghost", "models"))
    with pytest.raises(NoOwner):
        writer.record(notice, occurrences=1, total=None)
    assert _event(fake, notice) is None


def test_an_owner_that_cannot_be_read_is_named_without_its_uid(
    api: tuple[fakeapi.FakeApi, EventWriter], monkeypatch: pytest.MonkeyPatch
) -> None:
    fake, writer = api
    notice = NOTICE._replace(owner=Owner(LLMISVC_KIND, "granite", "models"))

    def forbidden(*_: Any, **__: Any) -> None:
        raise KubeError("read llminferenceservices: 403 Forbidden", status=403)

    monkeypatch.setattr(writer._cluster, "custom_object", forbidden)
    writer.record(notice, occurrences=1, total=None)
    event = _event(fake, notice)
    assert event is not None
    assert event["involvedObject"] == {
        "apiVersion": "serving.kserve.io/v1alpha2",
        "kind": LLMISVC_KIND,
        "name": "granite",
        "namespace": "models",
    }


def test_an_owner_made_again_under_its_name_is_read_again(tmp_path: Path) -> None:
    now = [0.0]
    with fakeapi.serving(tmp_path) as (fake, kubeconfig):
        writer = EventWriter(
            Cluster(connect(kubeconfig=str(kubeconfig))), instance="r", clock=lambda: now[0]
        )
        owner = {"metadata": {"name": "llama", "namespace": "models", "uid": "old"}}
        fake.put("inferenceservices", owner)
        writer.record(NOTICE, occurrences=1, total=None)
        fake.put("inferenceservices", {"metadata": {**owner["metadata"], "uid": "new"}})
        other = NOTICE._replace(digest="d2")
        writer.record(other, occurrences=1, total=None)  # within the hour's first minutes
        now[0] = 601.0
        later = NOTICE._replace(digest="d3")
        writer.record(later, occurrences=1, total=None)
        uids = [(_event(fake, n) or {})["involvedObject"]["uid"] for n in (NOTICE, other, later)]
    assert uids == ["old", "old", "new"]


def _uid(event: dict[str, Any] | None) -> str:
    assert event is not None
    reference: dict[str, str] = event["involvedObject"]
    return reference["uid"]
