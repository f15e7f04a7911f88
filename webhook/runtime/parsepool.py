"""First-seen scripts of admission, parsed by several sandboxes from one fair, bounded queue.

A script the server has not seen is parsed in a sandbox process (`webhook.runtime.sandbox`), and
its rewrite kept in the server's `ParsedScripts`.
Any tenant allowed to create pods chooses what those scripts are, so their parses are shared out
so that no tenant can delay another's:

- each tenant (the pod's namespace) has a queue of its own, at most `tenant_limit` long, and the
  workers take the tenants' queues in rounds: a tenant served in this round waits for the next,
  behind every tenant that has not had its turn, a newcomer included. A tenant flooding the
  webhook waits behind its own scripts, while another's first-seen pod waits for at most one
  parse per worker;
- the queues together hold at most `queue_limit` scripts; a script that finds no room is shed at
  once (`Shed`), and a review whose deadline comes before its script's turn stops waiting
  (`Late`): the server answers both by its error policy, and a retried pod finds its script
  parsed, or queued again;
- a parse gets `budget` seconds: past it the worker is killed and replaced, and the script is
  answered `parse-timeout`; one that kills its worker is `parser-failed`. Both are remembered
  by digest (`CRASHERS_KEPT` of them), so the same pod, sent again, never costs a worker; a
  timeout only for `timeout_kept` seconds (a minute), as the parse may fit its budget on a
  machine less busy;
- pods of one runtime share its script: one parse serves every review waiting for it, and the
  script stands in the queue of each tenant waiting for it, so that it is parsed at the first of
  their turns: no review waits in another tenant's queue;
- a worker killed while idle (the OOM killer) is replaced by the next call, which runs on; a
  worker killed under a call runs the call once more on a fresh one. While no worker can be
  started, the reviews waiting are answered `Unavailable`, `unavailable` says why (the server's
  `/readyz` fails with it), and the pool tries again, backing off from 1 to 30 seconds.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Final

from webhook.adapters.backoff import Backoff
from webhook.core.names import Reason, Rule
from webhook.core.parsed import Needed, ParsedScripts
from webhook.core.script import ScriptRewrite, parse_timeout, parser_failed, rewrite_script
from webhook.offline.isolation import ParserFailed
from webhook.runtime.sandbox import CRASHERS_KEPT, Failures, Sandbox, Unavailable

log = logging.getLogger("multinode_webhook.parsepool")

# How long a parse that overran its budget is answered `parse-timeout` before it is tried again.
TIMEOUT_KEPT_SECONDS: Final = 60.0
# How long the pool waits before it tries again to start workers that would not start.
REVIVE_FIRST: Final = 1.0
REVIVE_MOST: Final = 30.0


class Shed(Exception):
    """No room in the queue for the script: the review is answered at once."""


class Late(Exception):
    """The review's deadline came before its script was parsed."""


@dataclass
class _Job:
    needed: Needed
    tenant: str  # the first tenant that asked, named in the failure's log line
    deadline: float  # loop time after which no review waits for it
    # The tenants whose queues hold it: all of them give it up when a worker takes it.
    places: list[str] = field(default_factory=list)
    done: asyncio.Future[ScriptRewrite] = field(
        default_factory=lambda: asyncio.get_running_loop().create_future()
    )


@dataclass
class ParseCounts:
    """What the pool did, for the server's metrics."""

    parsed: int = 0
    crashes: int = 0
    timeouts: int = 0
    shed: int = 0
    late: int = 0


class ParsePool:
    """`workers` sandboxes serving the tenants' queues in rounds; see the module's docstring."""

    def __init__(
        self,
        *,
        workers: int,
        budget: float,
        queue_limit: int,
        tenant_limit: int,
        scripts: ParsedScripts,
        rewrite: Callable[[str, frozenset[Rule]], ScriptRewrite] = rewrite_script,
        on_failure: Callable[[Needed, Reason, str], None] = lambda *_: None,
        failures_kept: int = CRASHERS_KEPT,
        timeout_kept: float = TIMEOUT_KEPT_SECONDS,
    ) -> None:
        """`on_failure(needed, reason, tenant)` is told once of each parse that crashed or
        overran its budget, whichever reviews waited for it."""
        self._boxes = [Sandbox(rewrite=rewrite) for _ in range(workers)]
        self.scripts = scripts
        self._rewrite = rewrite
        self._on_failure = on_failure
        self._budget = budget
        self._queue_limit = queue_limit
        self._tenant_limit = tenant_limit
        self._queues: dict[str, deque[_Job]] = {}
        # Tenants with a queue: those yet to be served in this round, and those served in it.
        self._turns: deque[str] = deque()
        self._next_round: deque[str] = deque()
        self._queued = 0
        self._jobs: dict[tuple[str, frozenset[Rule]], _Job] = {}
        self._failures = Failures(failures_kept)
        self._timeout_kept = timeout_kept
        self._ready: asyncio.Semaphore | None = None  # one release for each place queued
        self._serving: list[asyncio.Task[None]] = []
        self._reviving: asyncio.Task[None] | None = None
        self.counts = ParseCounts()

    @property
    def queued(self) -> int:
        """Places in the tenants' queues (a script shared by two tenants stands in both)."""
        return self._queued

    @property
    def namespaces_waiting(self) -> int:
        """Namespaces with a script waiting (each has a queue while it does)."""
        return len(self._queues)

    @property
    def unavailable(self) -> str | None:
        """Why no worker can take a parse (none of them could be started), or None."""
        reasons = [box.unavailable for box in self._boxes]
        return reasons[0] if all(reasons) else None

    @property
    def pids(self) -> list[int]:
        """The workers' process ids."""
        return [pid for box in self._boxes for pid in box.pids]

    @property
    def replaced(self) -> int:
        """Workers found dead before a call (killed while idle) and replaced."""
        return sum(box.replaced for box in self._boxes)

    @property
    def start_failures(self) -> int:
        """Attempts to start a worker that failed."""
        return sum(box.start_failures for box in self._boxes)

    async def started(self) -> bool:
        """`start`, on the event loop, each worker after the calls it runs already; the workers
        that would not start are tried again (`revive`)."""
        started = True
        for box in self._boxes:
            try:
                await box.start_async()
            except (Unavailable, ParserFailed):
                started = False
        if not started:
            self.revive()
        return started

    def start(self) -> bool:
        """Start every worker process now, so that the first new script does not wait; False
        when one would not start (`revive`, on the event loop, keeps trying)."""
        started = True
        for box in self._boxes:
            try:
                box.start()
            except Unavailable:
                started = False
        return started

    def known(self, needed: Needed) -> ScriptRewrite | None:
        """The script's rewrite when the server has it, or a failure it remembers."""
        found = self.scripts.get(needed.script, needed.rules)
        if found is None and (failed := self._failures.known(needed.script)) is not None:
            found = failed[0]
        return found

    async def parse(self, needed: Needed, *, tenant: str, deadline: float) -> ScriptRewrite:
        """The script's rewrite, parsed by loop time `deadline` and kept in the server's
        scripts; `Shed`, `Late` or `Unavailable` when it cannot be."""
        found = self.known(needed)
        if found is not None:
            return found
        if (reason := self.unavailable) is not None:
            raise Unavailable(reason)  # no worker to wait for: answered now, not at the deadline
        self._serve()
        job = self._jobs.get(needed.key)
        if job is None:
            job = _Job(needed, tenant, deadline)
            self._queue(job, tenant=tenant)
            self._jobs[needed.key] = job
        else:
            job.deadline = max(job.deadline, deadline)
            if job.places and tenant not in job.places:
                # Waiting for another tenant's turn would let that tenant's flood delay it; with
                # no room in this tenant's queue it still waits for the other's.
                with contextlib.suppress(Shed):
                    self._queue(job, tenant=tenant, counted=False)
        wait = deadline - asyncio.get_running_loop().time()
        try:
            return await asyncio.wait_for(asyncio.shield(job.done), max(wait, 0))
        except asyncio.CancelledError:
            if not job.done.cancelled():
                raise  # the review itself was cancelled
            self.counts.late += 1  # its deadline passed before its turn came
            raise Late(f"its script was not parsed in time ({tenant})") from None
        except TimeoutError:
            self.counts.late += 1
            raise Late(
                f"its script was not parsed within the review's deadline ({tenant})"
            ) from None

    def _queue(self, job: _Job, *, tenant: str, counted: bool = True) -> None:
        """A place for the job in the tenant's queue; `Shed` (counted unless told not to) when
        there is no room."""
        # A namespace's queue exists while it holds a job: one shed leaves none behind.
        queue = self._queues.get(tenant, deque())
        if len(queue) >= self._tenant_limit or self._queued >= self._queue_limit:
            self.counts.shed += counted
            full = "its namespace's" if len(queue) >= self._tenant_limit else "the"
            raise Shed(f"{full} queue of first-seen scripts is full ({tenant})")
        if not queue:  # a newcomer has its turn in this round
            self._queues[tenant] = queue
            self._turns.append(tenant)
        queue.append(job)
        job.places.append(tenant)
        self._queued += 1
        assert self._ready is not None
        self._ready.release()

    def _serve(self) -> None:
        """Start the workers' tasks on this loop, with the first script queued."""
        if self._ready is None:
            self._ready = asyncio.Semaphore(0)
            loop = asyncio.get_running_loop()
            self._serving = [loop.create_task(self._work(box)) for box in self._boxes]

    async def _next(self) -> _Job:
        """The next job, from the next tenant in turn; its places in the other tenants'
        queues are given up, so that none of them spends a turn on it."""
        assert self._ready is not None
        while True:
            await self._ready.acquire()
            if not self._turns:  # every tenant had its turn: the next round begins
                self._turns, self._next_round = self._next_round, self._turns
            if not self._turns:
                continue  # the release of a place given up since
            tenant = self._turns.popleft()
            job = self._queues[tenant][0]
            for holder in job.places:
                self._leave(job, holder, served=holder == tenant)
            job.places.clear()
            return job

    def _leave(self, job: _Job, tenant: str, *, served: bool) -> None:
        """Take the job's place out of the tenant's queue; a queue left empty goes, with its
        tenant's turn. The served tenant's turn is spent: it waits for the next round."""
        queue = self._queues[tenant]
        queue.remove(job)
        self._queued -= 1
        if not queue:
            del self._queues[tenant]
            for turns in (self._turns, self._next_round):
                if tenant in turns:
                    turns.remove(tenant)
        elif served:
            self._next_round.append(tenant)

    async def _work(self, box: Sandbox) -> None:
        loop = asyncio.get_running_loop()
        while True:
            while box.unavailable is not None:  # the other workers take the jobs meanwhile
                await asyncio.sleep(REVIVE_FIRST)
            job = await self._next()
            needed = job.needed
            try:
                if loop.time() < job.deadline:  # else nobody waits for it any more
                    rewritten, until = await self._parsed(box, job)
                    self.scripts.put(needed.script, needed.rules, rewritten, until=until)
                    job.done.set_result(rewritten)
            except Exception as error:  # the reviews waiting answer it; this worker goes on
                job.done.set_exception(error)
                job.done.exception()  # retrieved here: no review may be left to read it
            finally:
                del self._jobs[needed.key]
                if not job.done.done():
                    job.done.cancel()

    async def _parsed(self, box: Sandbox, job: _Job) -> tuple[ScriptRewrite, float | None]:
        """The script's rewrite, and the monotonic time it holds until (None: for good)."""
        needed = job.needed
        until = None
        try:
            # The budget is each try's: a fresh worker started after a crash has one of its own.
            rewritten = await box.call_async(
                self._rewrite, needed.script, needed.rules, timeout=self._budget
            )
        except TimeoutError:  # the worker was killed, and is replaced on next use
            self.counts.timeouts += 1
            rewritten = parse_timeout(self._budget)
            # The parse may fit its budget on a machine less busy: it is tried again later.
            until = time.monotonic() + self._timeout_kept
        except ParserFailed:
            self.counts.crashes += 1
            rewritten = parser_failed()
        except Unavailable:
            self.revive()
            raise
        else:
            self.counts.parsed += 1
            return rewritten, None
        self._failures.add(needed.script, rewritten, until=until)
        assert rewritten.reason is not None
        self._on_failure(needed, rewritten.reason, job.tenant)
        return rewritten, until

    def revive(self) -> None:
        """Try to start the workers that would not start, until each one runs (on the event
        loop)."""
        if self._reviving is None or self._reviving.done():
            self._reviving = asyncio.get_running_loop().create_task(self._reviver())

    async def _reviver(self) -> None:
        """Every worker is tried at once (one that cannot start says so before a review finds
        out; each waits its turn after the calls under way), then those that would not start,
        backing off."""
        backoff = Backoff(REVIVE_FIRST, REVIVE_MOST)
        stopped = list(self._boxes)
        while stopped:
            for box in stopped:
                try:
                    await box.start_async()
                except (Unavailable, ParserFailed):
                    pass  # it says why, and is tried again
                except Exception as error:  # the reviver must outlive any failure
                    box.unavailable = f"a parse worker could not be started: {error}"
                    log.exception("a parse worker could not be started")
            if not (stopped := [box for box in self._boxes if box.unavailable]):
                return
            await asyncio.sleep(backoff.next())

    def close(self) -> None:
        """Stop the workers' tasks and kill their processes, at shutdown."""
        for task in [*self._serving, *([self._reviving] if self._reviving else [])]:
            task.cancel()
        self._serving = []
        self._reviving = None
        self._ready = None
        for box in self._boxes:
            box.close(wait=True)
