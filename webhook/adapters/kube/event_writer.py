"""Kubernetes Events on the owners of pods: the core/v1 Event a `Notice` becomes, kept as a
series (one Event object whose `count` and `lastTimestamp` grow), as kubectl and client-go's
recorder show them.

A series is named after its owner (by kind and name) and a digest of what it says, the same in
every replica, so replicas add to one Event rather than each making its own; two that add at
once may count one occurrence short, as client-go's recorder may. The owner's uid, which
`kubectl describe` selects its Events by, is read once per owner and remembered; an owner that
cannot be read (no RBAC to read it, no answer) is named without one, and its Events still list
under `kubectl get events`; an owner that does not exist gets no Event (`NoOwner`).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Any, Final

from webhook.adapters.kube.client import NOT_FOUND, Cluster, KubeError
from webhook.core import patch
from webhook.core.kinds import ISVC_KIND, LLMISVC_KIND
from webhook.core.names import PREFIX
from webhook.core.notice import Notice, Owner
from webhook.core.raw import mapping

COMPONENT: Final = "multinode-webhook"
GROUP: Final = "serving.kserve.io"
# Where each owner kind is read, newest version first: the first that answers is kept.
OWNER_KINDS: Final = {
    ISVC_KIND: ("inferenceservices", ("v1beta1",)),
    LLMISVC_KIND: ("llminferenceservices", ("v1alpha2", "v1alpha1")),
}
# Owners whose uid is remembered, and for how long: an owner deleted and made again under its
# name has a new uid, and Events naming the old one would not show under `kubectl describe`.
OWNERS_REMEMBERED: Final = 1024
OWNER_SECONDS: Final = 600.0
CONFLICT: Final = 409


class NoOwner(Exception):
    """The owner a pod names does not exist: a pod may name any, and no Event is written for
    one that is not there."""


def series_name(notice: Notice) -> str:
    """The name of a notice's Event: its owner's name and a digest of the owner's kind and
    what it says (an InferenceService and an LLMInferenceService of one name are two owners)."""
    said = "\0".join((notice.owner.kind, notice.type, notice.reason, notice.message, notice.digest))
    return f"{notice.owner.name}.{hashlib.sha256(said.encode()).hexdigest()[:16]}"


def _timestamp(when: dt.datetime) -> str:
    return when.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class EventWriter:
    """Writes the Events of notices through `cluster`, as `instance` (the replica's name)."""

    def __init__(
        self, cluster: Cluster, *, instance: str, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._cluster = cluster
        self._instance = instance
        self._clock = clock
        self._references: OrderedDict[Owner, tuple[float, dict[str, str]]] = OrderedDict()

    def record(self, notice: Notice, *, occurrences: int, total: int | None) -> int:
        """Add `occurrences` to the notice's series; `total` is its count as this process last
        wrote it (None: never). Returns the series' count now. Raises `KubeError`, and
        `NoOwner` for a series that would begin on an owner that does not exist."""
        namespace, name = notice.owner.namespace, series_name(notice)
        now = _timestamp(dt.datetime.now(dt.UTC))
        if total is None:
            try:
                self._cluster.create_event(namespace, self._event(notice, name, occurrences, now))
                return occurrences
            except KubeError as error:
                if error.status != CONFLICT:
                    raise
            # Another replica, or this one before a restart, began the series.
            total = int(mapping(self._cluster.event(namespace, name)).get("count") or 1)
        count = total + occurrences
        try:
            self._cluster.patch_event(
                namespace, name, [patch.add("/count", count), patch.add("/lastTimestamp", now)]
            )
        except KubeError as error:
            if error.status != NOT_FOUND:
                raise
            # The series expired (the API server keeps Events an hour by default): a new one.
            self._cluster.create_event(namespace, self._event(notice, name, occurrences, now))
            return occurrences
        return count

    def _event(self, notice: Notice, name: str, count: int, now: str) -> dict[str, Any]:
        return {
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {
                "name": name,
                "namespace": notice.owner.namespace,
                "labels": {f"{PREFIX}/component": "events"},
            },
            "involvedObject": self._reference(notice.owner),
            "type": notice.type,
            "reason": notice.reason,
            "message": notice.message,
            "count": count,
            "firstTimestamp": now,
            "lastTimestamp": now,
            "source": {"component": COMPONENT},
            "reportingComponent": COMPONENT,
            "reportingInstance": self._instance,
        }

    def _reference(self, owner: Owner) -> dict[str, str]:
        known = self._references.get(owner)
        if known is not None and self._clock() - known[0] < OWNER_SECONDS:
            self._references.move_to_end(owner)
            return known[1]
        plural, versions = OWNER_KINDS[owner.kind]
        reference = {
            "apiVersion": f"{GROUP}/{versions[0]}",
            "kind": owner.kind,
            "name": owner.name,
            "namespace": owner.namespace,
        }
        answered = 0
        for version in versions:
            try:
                found = self._cluster.custom_object(
                    GROUP, version, plural, owner.namespace, owner.name
                )
            except KubeError:
                break  # no RBAC to read it, or no answer: named without its uid
            answered += 1
            if found is None:
                continue  # not there, or the kind not served at this version
            uid = mapping(mapping(found).get("metadata")).get("uid")
            if isinstance(uid, str) and uid:
                reference.update(apiVersion=f"{GROUP}/{version}", uid=uid)
                self._references[owner] = (self._clock(), reference)
                self._references.move_to_end(owner)
                if len(self._references) > OWNERS_REMEMBERED:
                    self._references.popitem(last=False)
                break
        else:
            if answered == len(versions):
                raise NoOwner(f"{owner.kind} {owner.namespace}/{owner.name} not found")
        return reference
