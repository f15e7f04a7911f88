"""Warm start: a serving replica parses the scripts of the cluster's runtimes and LLM workloads
before `/readyz` passes, and each new or changed one as it appears, so that the first pod of a
known runtime finds its script cached instead of waiting for a sandbox.

With the server's cluster connection (made from the pod's ServiceAccount, or `KUBECONFIG`
outside a cluster) one thread per kind lists and then watches it (`Cluster.follow`), and hands
each object's scripts to the event loop; one task parses them through the parse pool, one at a
time, in a namespace of their own, so that they never crowd out a review's. Scripts wait in a
bounded `Inbox` that keeps only the newest of each object's containers. Without a connection,
or while the API server cannot be reached, the replica starts as it would without warm start,
and says so once.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections import OrderedDict
from collections.abc import Callable
from typing import Any, Final

from webhook.adapters.kube.client import Cluster
from webhook.adapters.kube.sources import FOLLOWED
from webhook.core.model import Options
from webhook.core.parsed import Needed
from webhook.runtime.parsepool import Late, ParsePool, Shed
from webhook.runtime.scripts import launch_scripts

# The parse pool's namespace for warm-up: no pod's namespace is empty.
TENANT: Final = ""
# Scripts waiting for warm start's parse: past this, the oldest is dropped (its first pod
# parses it instead).
INBOX_LIMIT: Final = 1024

Key = tuple[str, str, int]


class Inbox:
    """The scripts waiting for warm start's parse: the newest of each object's containers only
    (an object changed again before its script was parsed is parsed as it now is), at most
    `limit`, the oldest dropped past it and counted."""

    def __init__(self, limit: int = INBOX_LIMIT) -> None:
        self._limit = limit
        self._items: OrderedDict[Key, Needed] = OrderedDict()
        self._ready = asyncio.Event()
        self._idle = asyncio.Event()
        self._idle.set()
        self._busy = 0
        self.dropped = 0

    def __len__(self) -> int:
        return len(self._items)

    def put(self, key: Key, missing: Needed) -> None:
        self._items.pop(key, None)
        self._items[key] = missing
        while len(self._items) > self._limit:
            self._items.popitem(last=False)
            self.dropped += 1
        self._idle.clear()
        self._ready.set()

    async def get(self) -> Needed:
        """The oldest script waiting; `done` must follow once it is handled."""
        while not self._items:
            self._ready.clear()
            await self._ready.wait()
        _, missing = self._items.popitem(last=False)
        self._busy += 1
        return missing

    def done(self) -> None:
        self._busy -= 1
        if not self._items and not self._busy:
            self._idle.set()

    async def join(self) -> None:
        """Until every script put is handled."""
        await self._idle.wait()


log = logging.getLogger("multinode_webhook.warmup")


class WarmUp:
    """What warm start has done: `ready` is set once the first lists are parsed, or the
    warm-up's bound has passed, or there is no cluster to read."""

    def __init__(
        self,
        *,
        cluster: Cluster | None,
        pool: ParsePool,
        options: Options,
        seconds: float,
        parsed: Callable[[], None],
    ) -> None:
        """`cluster` is the server's connection (None: it has none); `parsed` is called for
        each script warm start parsed."""
        self._pool = pool
        self._counted = parsed
        self._options = options
        self._seconds = seconds
        self._stop = threading.Event()
        self._inbox = Inbox()
        self.ready = asyncio.Event()
        self.parsed = 0
        self._cluster = cluster

    @property
    def dropped(self) -> int:
        """Scripts let go unparsed, the inbox full."""
        return self._inbox.dropped

    async def run(self) -> None:
        """Follow the cluster until `close`; returns at once when there is none. Whatever
        happens, `ready` is set: warm start never keeps a replica from serving."""
        try:
            await self._run()
        finally:
            self.ready.set()

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        cluster = self._cluster
        if cluster is None:  # the server said so, once for warm start and Events
            return
        parsing = asyncio.create_task(self._parse())
        listed = [asyncio.Event() for _ in FOLLOWED]
        failures: list[str] = []

        def seen(found: dict[str, Any]) -> None:  # on a follow thread
            loop.call_soon_threadsafe(self._scripts_of, found)

        for (group, version, plural, selector), done in zip(FOLLOWED, listed, strict=True):

            def told(error: str | None, done: asyncio.Event = done) -> None:
                if error is not None:
                    failures.append(error)
                loop.call_soon_threadsafe(done.set)

            threading.Thread(
                target=cluster.follow,
                args=(group, version, plural),
                kwargs={
                    "label_selector": selector,
                    "seen": seen,
                    "listed": told,
                    "stop": self._stop,
                },
                daemon=True,
                name=f"follow {plural}",
            ).start()
        try:
            await asyncio.wait_for(self._warmed(listed), self._seconds)
        except TimeoutError:
            log.warning(
                "warm start incomplete: ready before every known script was parsed",
                extra={"fields": {"seconds": self._seconds, "parsed": self.parsed}},
            )
        if failures:
            log.warning(
                "warm start could not read the cluster; it keeps trying",
                extra={"fields": {"error": failures[0]}},
            )
        log.info("warm start done", extra={"fields": {"scripts": self.parsed}})
        self.ready.set()
        await parsing  # the watches go on handing it scripts

    async def _warmed(self, listed: list[asyncio.Event]) -> None:
        for done in listed:
            await done.wait()
        await self._inbox.join()

    def _scripts_of(self, found: dict[str, Any]) -> None:
        metadata = found.get("metadata") or {}
        where = (found.get("kind"), metadata.get("namespace"), metadata.get("name"))
        uid = metadata.get("uid") or "/".join(map(str, where))
        for ordinal, missing in enumerate(launch_scripts(found, options=self._options)):
            self._inbox.put((str(uid), missing.container, ordinal), missing)

    async def _parse(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            missing = await self._inbox.get()
            try:
                if self._pool.known(missing) is None:
                    # A generous deadline: nobody waits on these, but a stuck turn must end.
                    deadline = loop.time() + 60
                    await self._pool.parse(missing, tenant=TENANT, deadline=deadline)
                    self.parsed += 1
                    self._counted()
            except (Shed, Late):
                pass  # its first pod will ask again
            except Exception:
                log.exception("warm start could not parse a script")
            finally:
                self._inbox.done()

    def close(self) -> None:
        """Stop following the cluster."""
        self._stop.set()
        if self._cluster is not None:
            self._cluster.stop_following()
