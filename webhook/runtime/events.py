"""The Events queue: what admission tells owners, sent later by a background task (DESIGN §7.2).

Admission only `offer`s a notice: a dictionary lookup and a count, never a call to the API. A
notice already in a series adds one to it; a new one takes a place in a bounded queue (in all,
and for each namespace) or is dropped and counted. With the queue full, a newcomer from a
namespace with fewer waiting takes the place of the oldest of the namespace with the most, so
that no flood, however many namespaces it spans, keeps another tenant's Events out. The task
writes each series once, then at most every `repeat_seconds` with the occurrences seen since;
every write costs the owner a token from a bucket (`burst`, one back every `refill_seconds`),
and its namespace one from another (a pod names its owner, so chooses that bucket), so no
owner's or namespace's pods can make the server write much; and all writes together go at most
as fast as `CLIENT_BURST` allows (10, then 5 a second; a write is an owner lookup and an Event
create or patch, a few requests). An owner that does not exist gets no Event. A new series with
no token is dropped and counted; a series already written keeps its count for a later write. An
API error drops what was to be written, counted and logged at a bounded rate.

With no cluster connection (no ServiceAccount, no `KUBECONFIG`), or `--events=false`, the queue
is off and `offer` costs one attribute test.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import time
from collections import OrderedDict, deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final, Protocol

from webhook.adapters.kube.client import Cluster, KubeError
from webhook.adapters.kube.event_writer import EventWriter, NoOwner
from webhook.core import admission
from webhook.core.memo import Memo
from webhook.core.model import Decision
from webhook.core.names import Action
from webhook.core.notice import Notice, Owner, Said, failed, notices, owner_of
from webhook.runtime.ratelimit import RateLimit

QUEUE_LIMIT: Final = 256
NAMESPACE_LIMIT: Final = 16
SERIES_LIMIT: Final = 4096
REPEAT_SECONDS: Final = 10.0
# Per owner, as client-go's recorder allows an object: a burst, then one write in a while.
BURST: Final = 20
REFILL_SECONDS: Final = 30.0
# Per namespace as well: a pod names its owner, and so chooses the owner's bucket; a tenant
# naming a new owner on each pod still writes (and looks owners up) at most this fast.
NAMESPACE_BURST: Final = 50
NAMESPACE_REFILL_SECONDS: Final = 6.0
ERRORS_LOGGED_PER_SECOND: Final = 1
# For every write, whatever its owner and namespace, as client-go's client allows a process
# (QPS 5, burst 10): a forger spreading pods over many namespaces still costs the API server
# at most this.
CLIENT_BURST: Final = 10
CLIENT_REFILL_SECONDS: Final = 0.2

log = logging.getLogger("multinode_webhook.events")

Key = tuple[Owner, str, str, str, str]


# The decisions whose Events' text is kept: the pods of one runtime share theirs.
SAID_KEPT: Final = 256


class EventCounts(Protocol):
    """What the queue counts, in the server's metrics."""

    def event_dropped(self, reason: str) -> None: ...

    def event_written(self, kind: str, reason: str) -> None: ...


class Writer(Protocol):
    def record(self, notice: Notice, *, occurrences: int, total: int | None) -> int: ...


@dataclass
class _Series:
    notice: Notice
    pending: int = 1
    total: int | None = None
    written_at: float | None = None
    queued: bool = True


class _Bucket:
    """One owner's write tokens."""

    def __init__(self, tokens: float, stamp: float) -> None:
        self.tokens = tokens
        self.stamp = stamp


class EventQueue:
    """Notices from admission, sent as Event series by `run`."""

    def __init__(
        self,
        *,
        metrics: EventCounts,
        limit: int = QUEUE_LIMIT,
        namespace_limit: int = NAMESPACE_LIMIT,
        series_limit: int = SERIES_LIMIT,
        repeat_seconds: float = REPEAT_SECONDS,
        burst: int = BURST,
        refill_seconds: float = REFILL_SECONDS,
        namespace_burst: int = NAMESPACE_BURST,
        namespace_refill_seconds: float = NAMESPACE_REFILL_SECONDS,
        client_burst: int = CLIENT_BURST,
        client_refill_seconds: float = CLIENT_REFILL_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.on = True
        self._metrics = metrics
        self._limit = limit
        self._namespace_limit = namespace_limit
        self._series_limit = series_limit
        self.repeat_seconds = repeat_seconds
        self._burst = burst
        self._refill = refill_seconds
        self._namespace_burst = namespace_burst
        self._namespace_refill = namespace_refill_seconds
        self._clock = clock
        self._client = _Bucket(client_burst, clock())
        self._client_burst = client_burst
        self._client_refill = client_refill_seconds
        self._series: OrderedDict[Key, _Series] = OrderedDict()
        self._ready: deque[Key] = deque()
        self._new = 0
        self._new_by_namespace: dict[str, int] = {}
        self._buckets: OrderedDict[Owner, _Bucket] = OrderedDict()
        self._namespace_buckets: OrderedDict[str, _Bucket] = OrderedDict()
        self._wake: asyncio.Event | None = None
        self._errors = RateLimit(ERRORS_LOGGED_PER_SECOND)
        self._said: Said = Memo(SAID_KEPT)

    def tell(
        self,
        request: admission.ReviewRequest,
        decision: Decision | None,
        response: admission.AdmissionReviewResponse,
    ) -> None:
        """Offer what a review's owner should know: never for a dry run."""
        if not self.on or request.dry_run:
            return
        if decision is not None:
            if decision.action not in (Action.PATCHED, Action.SHADOW) and not decision.warnings:
                return
            owner = owner_of(request.pod, namespace=request.namespace)
            if owner is not None:
                for notice in notices(decision, owner, said=self._said):
                    self.offer(notice)
            return
        owner = owner_of(request.pod, namespace=request.namespace)
        if owner is not None:
            answer = response["response"]
            error = answer.get("auditAnnotations", {}).get("reason", "internal error")
            self.offer(failed(owner, error=error, denied=not answer["allowed"]))

    def offer(self, notice: Notice) -> None:
        """Count the notice into its series, or queue a new series; never blocks."""
        if not self.on:
            return
        key: Key = (notice.owner, notice.type, notice.reason, notice.message, notice.digest)
        series = self._series.get(key)
        if series is not None:
            series.pending += 1
            if not series.queued:
                series.queued = True
                self._push(key)
            return
        namespace = notice.owner.namespace
        waiting = self._new_by_namespace.get(namespace, 0)
        if waiting >= self._namespace_limit or (
            self._new >= self._limit and not self._made_room(waiting)
        ):
            self._metrics.event_dropped("queue-full")
            return
        self._new += 1
        self._new_by_namespace[namespace] = waiting + 1
        self._series[key] = _Series(notice)
        if len(self._series) > self._series_limit:
            self._evict()
        self._push(key)

    def _made_room(self, waiting: int) -> bool:
        """With the queue full, drop the oldest new series of the namespace with the most
        waiting, when it has more than one more than the newcomer's (`waiting`): many
        namespaces together cannot keep another's Events out."""
        most = max(self._new_by_namespace, key=self._new_by_namespace.__getitem__)
        if self._new_by_namespace[most] <= waiting + 1:
            return False
        for key, series in self._series.items():
            if series.total is None and series.queued and key[0].namespace == most:
                self._forget_new(key, series)
                self._metrics.event_dropped("queue-full")
                return True
        return False

    def _evict(self) -> None:
        """Forget the oldest series that is not waiting to be written."""
        for key, series in self._series.items():
            if not series.queued:
                del self._series[key]
                return

    def _push(self, key: Key) -> None:
        self._ready.append(key)
        if self._wake is not None:
            self._wake.set()

    def off(self) -> None:
        """Stop taking notices, and forget those waiting."""
        self.on = False
        self._series.clear()
        self._ready.clear()
        self._new = 0
        self._new_by_namespace.clear()

    async def run(self, writer: Writer) -> None:
        """Write what is queued, until cancelled."""
        self._wake = asyncio.Event()
        loop = asyncio.get_running_loop()
        while True:
            if not self._ready:
                self._wake.clear()
                await self._wake.wait()
                continue
            key = self._ready.popleft()
            series = self._series.get(key)
            if series is None:
                continue
            now = self._clock()
            if series.written_at is not None and now - series.written_at < self.repeat_seconds:
                loop.call_later(series.written_at + self.repeat_seconds - now, self._push, key)
                continue
            wait = self._take_token(series.notice.owner, now)
            if wait:
                if series.total is None:
                    self._forget_new(key, series)
                    self._metrics.event_dropped("rate-limited")
                else:
                    loop.call_later(wait, self._push, key)
                continue
            await self._paced()
            await self._write(writer, key, series)

    async def _paced(self) -> None:
        """Until the client may make its next write, taking a token for it."""
        client = self._client
        while True:
            now = self._clock()
            client.tokens = min(
                self._client_burst, client.tokens + (now - client.stamp) / self._client_refill
            )
            client.stamp = now
            if client.tokens >= 1:
                client.tokens -= 1
                return
            # Looked at again at least every 0.1 s: the clock is the queue's, not the loop's.
            await asyncio.sleep(min((1 - client.tokens) * self._client_refill, 0.1))

    def _take_token(self, owner: Owner, now: float) -> float:
        """0 when the owner and its namespace may write now (a token is taken from each), else
        the seconds to the later of their next."""
        mine = _filled(self._buckets, owner, now, burst=self._burst, refill=self._refill)
        theirs = _filled(
            self._namespace_buckets,
            owner.namespace,
            now,
            burst=self._namespace_burst,
            refill=self._namespace_refill,
        )
        for buckets in (self._buckets, self._namespace_buckets):
            if len(buckets) > self._series_limit:
                buckets.popitem(last=False)
        if mine.tokens < 1 or theirs.tokens < 1:
            return max(
                (1 - mine.tokens) * self._refill,
                (1 - theirs.tokens) * self._namespace_refill,
            )
        mine.tokens -= 1
        theirs.tokens -= 1
        return 0.0

    async def _write(self, writer: Writer, key: Key, series: _Series) -> None:
        occurrences, total = series.pending, series.total
        try:
            # The client blocks: it runs on a thread, one write at a time.
            count = await asyncio.to_thread(
                writer.record, series.notice, occurrences=occurrences, total=total
            )
        except NoOwner:
            self._metrics.event_dropped("no-owner")
            if total is None:
                self._forget_new(key, series)
            else:  # its Event expired, and its owner has gone since
                del self._series[key]
            return
        except KubeError as error:
            self._metrics.event_dropped("api-error")
            allowed, left_out = self._errors.allow()
            if allowed:
                fields: dict[str, object] = {"reason": series.notice.reason, "error": str(error)}
                if left_out:
                    fields["errors_not_logged"] = left_out
                log.warning("an Event was not written", extra={"fields": fields})
            if total is None:
                self._forget_new(key, series)
                return
            count = total
        else:
            self._metrics.event_written(series.notice.type, series.notice.reason)
        if total is None:
            self._settle_new(series)
        series.total = count
        series.written_at = self._clock()
        series.pending -= occurrences
        series.queued = series.pending > 0
        if series.queued:
            self._push(key)

    def _settle_new(self, series: _Series) -> None:
        namespace = series.notice.owner.namespace
        self._new -= 1
        left = self._new_by_namespace[namespace] - 1
        if left:
            self._new_by_namespace[namespace] = left
        else:
            del self._new_by_namespace[namespace]

    def _forget_new(self, key: Key, series: _Series) -> None:
        self._settle_new(series)
        del self._series[key]


def _filled(
    buckets: OrderedDict[Any, _Bucket], key: Any, now: float, *, burst: int, refill: float
) -> _Bucket:
    """The key's bucket, refilled up to `now` (a new one full)."""
    bucket = buckets.get(key)
    if bucket is None:
        bucket = buckets[key] = _Bucket(burst, now)
        return bucket
    buckets.move_to_end(key)
    bucket.tokens = min(burst, bucket.tokens + (now - bucket.stamp) / refill)
    bucket.stamp = now
    return bucket


async def send_events(queue: EventQueue, cluster: Cluster | None) -> None:
    """Write the queue's Events through the server's cluster connection until cancelled;
    without one, turn the queue off (the server said so, once for Events and warm start)."""
    if cluster is None:
        queue.off()
        return
    await queue.run(EventWriter(cluster, instance=socket.gethostname()))
