"""Parsing untrusted scripts in a process of their own, so that a parser crash costs no more
than that process.

tree-sitter-bash is C code fed with whatever text a pod holds, and some inputs crash it with a
signal that no `except` catches. A process that must not die (the server) or be killed by a
signal (the command line) never parses: it has each script it has not seen parsed in one
spawned worker process, keeps the result (`webhook.core.parsed.ParsedScripts`), and hands it to
the core. The pods of one runtime share its script, so only its first pod costs a trip to the
worker.

`Sandbox` runs one call at a time in the worker, so a crash names the call that caused it; the
next call starts a fresh worker. A script that crashed it is `parser-failed`, and its digest is
kept (`Failures`, `CRASHERS_KEPT` of them) so that the same script, asked again, never reaches a
worker: without that, a controller retrying one pod would kill a worker each time. The server
shares its first-seen scripts out over several sandboxes (`webhook.runtime.parsepool`); the
command line parses through one (`Isolated`).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import math
import multiprocessing
import os
import signal
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import Any, Final, NoReturn, TypeVar

from webhook.core.names import Rule
from webhook.core.parsed import ParsedScripts
from webhook.core.script import ScriptRewrite, parser_failed, rewrite_script
from webhook.offline.isolation import ParserFailed

T = TypeVar("T")

CRASHERS_KEPT: Final = 1024
# How many times a call is tried on a worker killed from outside (SIGKILL) under it.
KILLS_TRIED: Final = 3
# How often a worker looks whether the process that started it is still there.
PARENT_CHECK_SECONDS: Final = 1.0


class Failures:
    """Digests of scripts whose parse failed, with their answer (and the monotonic time
    until which it holds, for one that may change); past `kept`, the one least recently
    asked about is forgotten."""

    def __init__(self, kept: int) -> None:
        self._kept = kept
        self._answers: OrderedDict[bytes, tuple[ScriptRewrite, float]] = OrderedDict()

    def known(self, script: str) -> tuple[ScriptRewrite, float | None] | None:
        """The answer and the time it holds until (None: for good), while it holds."""
        digest = _digest(script)
        found = self._answers.get(digest)
        if found is None:
            return None
        answer, until = found
        if until <= time.monotonic():
            del self._answers[digest]
            return None
        self._answers.move_to_end(digest)
        return answer, (None if until == math.inf else until)

    def add(self, script: str, answer: ScriptRewrite, *, until: float | None = None) -> None:
        digest = _digest(script)
        self._answers[digest] = (answer, math.inf if until is None else until)
        self._answers.move_to_end(digest)
        if len(self._answers) > self._kept:
            self._answers.popitem(last=False)


class Unavailable(Exception):
    """No worker process could be started: the message says why."""


def stop_pool(executor: ProcessPoolExecutor, *, wait: bool) -> None:
    """Stop a pool's workers now; with `wait`, also wait for its manager thread to end.

    The workers hold nothing worth a clean exit, and the pool's own shutdown can lose its
    wake-up (a worker then waits for work forever, and the process's exit waits for it): they
    are killed. `wait` is for a process that is about to exit: a manager thread left running
    races the interpreter's exit hook for the pool's wake-up pipe (Python 3.11), which then
    prints a traceback. It is never for the event loop, which a join would hold up.
    """
    # The pool has no public list of its workers, nor of its manager thread.
    workers = list((executor._processes or {}).values())
    manager: threading.Thread | None = getattr(executor, "_executor_manager_thread", None)
    executor.shutdown(wait=False, cancel_futures=True)
    for worker in workers:
        worker.kill()
    # Ctrl-C can cut the pool's first call short after it made the thread and before it was
    # started: there is nothing to wait for then, and `join` would raise.
    if wait and manager is not None and manager.is_alive():
        manager.join(timeout=5)


class Sandbox:
    """One spawned worker process, started with the first call and replaced after a crash."""

    def __init__(
        self,
        *,
        rewrite: Callable[[str, frozenset[Rule]], ScriptRewrite] = rewrite_script,
    ) -> None:
        self._rewrite = rewrite
        self._executor: ProcessPoolExecutor | None = None
        self._sync = threading.Lock()
        self._making = threading.Lock()
        self._async: asyncio.Lock | None = None
        # Set by `close`: no worker is started again, not even for a call under way.
        self._closed = False
        # Calls that killed their worker, and the fresh one that ran them again.
        self.crashes = 0
        # Workers found dead before a call (killed while idle, as by the OOM killer), replaced.
        self.replaced = 0
        # Calls given up because their workers were killed from outside every try.
        self.killed = 0
        # Why the last attempt to start a worker failed (None once one runs), and how often.
        self.unavailable: str | None = None
        self.start_failures = 0

    @property
    def pids(self) -> list[int]:
        """The worker's process id, while one runs."""
        # The pool has no public list of its workers.
        processes = (self._executor._processes or {}) if self._executor is not None else {}
        return [process.pid for process in processes.values() if process.pid is not None]

    def start(self) -> None:
        """Start the worker now rather than on the first call, which then pays no start-up:
        an empty call, so that a worker that would not start, or died as it started, is told
        (`Unavailable`, counted) as a call's would be. For a process with no event loop yet;
        on a loop, `start_async`, which waits its turn with the calls."""
        self.call(int)

    async def start_async(self) -> None:
        """`start`, on the event loop, after the calls already under way; the worker is spawned
        on a thread, so that the loop serves on meanwhile."""
        if self._async is None:
            self._async = asyncio.Lock()
        async with self._async:
            await asyncio.to_thread(self.start)

    def call(self, fn: Callable[..., T], /, *args: Any) -> T:
        """`fn(*args)` in the worker; `ParserFailed` if the call killed it (`_died` says when),
        `Unavailable` if none could be started or every try was killed from outside."""
        with self._sync:
            deaths: list[int | None] = []
            while True:
                future = self._submit(fn, *args)
                try:
                    result = future.result()
                except BrokenProcessPool:
                    self._died(deaths, self._exit_signal())
                else:
                    self.unavailable = None  # a worker ran the call
                    return result

    async def call_async(
        self, fn: Callable[..., T], /, *args: Any, timeout: float | None = None
    ) -> T:
        """`call`, awaited: the event loop runs on while the worker parses. Each try gets
        `timeout` seconds (a fresh worker's start-up is no fault of the call's): past it the
        worker is killed and `TimeoutError` raised."""
        if self._async is None:
            self._async = asyncio.Lock()
        async with self._async:
            deaths: list[int | None] = []
            while True:
                future = self._submit(fn, *args)
                try:
                    result = await asyncio.wait_for(asyncio.wrap_future(future), timeout)
                except TimeoutError:
                    self._discard()  # the worker is still at it: killed, and replaced on next use
                    raise
                except BrokenProcessPool:
                    # Waiting for the dead worker's exit code must not hold up the event loop.
                    ended = await asyncio.to_thread(self._exit_signal)
                    self._died(deaths, ended)
                else:
                    self.unavailable = None  # a worker ran the call
                    return result

    def _submit(self, fn: Callable[..., T], /, *args: Any) -> Future[T]:
        """The call handed to the worker. A worker that died while idle broke the pool before
        this call: that is no crash of this call's, and a new worker takes it."""
        for attempt in (1, 2):
            try:
                # Under `_making`, so that `close` never misses a worker being spawned here.
                with self._making:
                    if self._closed:
                        raise Unavailable("the parse worker was stopped at shutdown")
                    pool = self._pool()
                    with interrupts_held():  # the worker is spawned here, on the first call
                        future = pool.submit(fn, *args)
            except BrokenProcessPool:
                self.replaced += 1
                self._discard()
                if attempt == 2:
                    self._unavailable("a new parse worker died before it took a call")
            except (OSError, RuntimeError) as error:
                self._discard()
                self._unavailable(f"no parse worker could be started: {error}")
            else:
                return future
        raise AssertionError("unreachable")

    def rewrite(self, script: str, rules: frozenset[Rule]) -> ScriptRewrite:
        """The script's rewrite, parsed in the worker; `ParserFailed` if the parse killed it."""
        return self.call(self._rewrite, script, rules)

    def close(self, *, wait: bool = False) -> None:
        """Shut down for good (`wait` when the process is about to exit): the worker is stopped
        now, even mid-call, and that call and every later one are `Unavailable`. A call under
        way must not start a worker of its own again, which nothing would ever stop."""
        self._closed = True
        self._discard(wait=wait)

    def _discard(self, *, wait: bool = False) -> None:
        """Stop the worker now (`stop_pool`); the next call starts a fresh one."""
        with self._making:
            if self._executor is not None:
                stop_pool(self._executor, wait=wait)
                self._executor = None

    def _pool(self) -> ProcessPoolExecutor:
        """The pool, made if need be; under `_making` (`start` may run on another thread
        than the calls)."""
        if self._executor is None:
            # spawn, not fork: the asking process may have an event loop and threads.
            context = multiprocessing.get_context("spawn")
            self._executor = ProcessPoolExecutor(
                max_workers=1, mp_context=context, initializer=leave_interrupts
            )
        return self._executor

    def _died(self, deaths: list[int | None], ended: int | None) -> None:
        """The worker died under a call, by the signal `ended`, which `deaths` (the signals
        that ended the call's earlier tries) gains: it is replaced on the next try.

        A worker killed by SIGKILL (the OOM killer, an operator), or a pool that broke with
        its worker still alive, is no fault of the call's: the call is tried again, and after
        `KILLS_TRIED` such tries it is `Unavailable`, never a crash to remember. A death by
        any other signal (the parser's SIGSEGV) is the call's crash once it happens twice: the
        first may have been bad luck."""
        deaths.append(ended)
        self._discard()
        crashes = sum(1 for death in deaths if death not in (None, signal.SIGKILL))
        kills = len(deaths) - crashes
        if crashes >= 2:
            self.crashes += 1
            raise ParserFailed
        if kills >= KILLS_TRIED:
            # No worker lasts long enough to run a call: as good as none can be started.
            self.killed += 1
            self._unavailable(f"the parse worker was killed from outside {kills} times in a row")

    def _exit_signal(self) -> int | None:
        """The signal that ended the worker, when one did."""
        # The pool has no public list of its workers; a broken pool keeps them, exited.
        processes = (self._executor._processes or {}) if self._executor is not None else {}
        for process in processes.values():
            # Its pipes close before it can be reaped: the pool can break a moment before
            # the exit code is there (longer when the kernel writes a core dump).
            process.join(timeout=5)
        codes = [process.exitcode for process in processes.values()]
        return next((-code for code in codes if code is not None and code < 0), None)

    def _unavailable(self, reason: str) -> NoReturn:
        self.unavailable = reason
        self.start_failures += 1
        raise Unavailable(reason)


def _digest(script: str) -> bytes:
    return hashlib.sha256(script.encode("utf-8", "surrogatepass")).digest()


class Isolated:
    """The command line's `Isolation`: each script parsed once, in a sandbox, and kept in a
    store of this run's; a script that crashes the parser is `parser-failed`, and never
    reaches a worker again."""

    def __init__(
        self,
        *,
        sandbox: Sandbox | None = None,
        scripts: ParsedScripts | None = None,
        crashers_kept: int = CRASHERS_KEPT,
    ) -> None:
        self.sandbox = sandbox or Sandbox()
        self.scripts = scripts or ParsedScripts()
        self._crashers = Failures(crashers_kept)

    def rewrite(self, script: str, rules: frozenset[Rule]) -> ScriptRewrite:
        found = self.scripts.get(script, rules)
        if found is not None:
            return found
        known = self._crashers.known(script)
        if known is not None:
            return known[0]
        try:
            found = self.sandbox.rewrite(script, rules)
        except ParserFailed:
            found = parser_failed()
            self._crashers.add(script, found)
            return found
        self.scripts.put(script, rules, found)
        return found

    def call(self, fn: Callable[..., T], /, *args: Any) -> T:
        return self.sandbox.call(fn, *args)

    def close(self, *, wait: bool = False) -> None:
        self.sandbox.close(wait=wait)


@contextlib.contextmanager
def interrupts_held() -> Iterator[None]:
    """Hold SIGINT back from the calling thread while it starts a worker process (a pool's
    `submit`), which inherits the hold; its initializer, `leave_interrupts`, lets it go.

    A spawned worker imports the project before any code of ours runs in it, and Ctrl-C in
    that moment printed its traceback: held, the signal waits, and is dropped once the worker
    ignores it. The process that starts the worker gets its own Ctrl-C once the hold ends.
    A mask, not SIG_IGN, as the resource tracker of `multiprocessing` does it: a thread may
    set its own mask, where only the main thread may set a handler. Not around the making of
    the pool, which starts that tracker, and its start lifts the hold.
    """
    held = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, held)


def leave_interrupts() -> None:
    """A worker's initializer: Ctrl-C reaches the whole process group, and the process that
    started the worker is the one to answer it (it stops its workers); a worker that took it
    too would print its own traceback. A Ctrl-C held since the worker started
    (`interrupts_held`) is dropped here. And the worker ends with that process
    (`end_with_parent`)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})
    end_with_parent()


def end_with_parent() -> None:
    """A worker's watch on the process that started it. Killed (SIGKILL, the OOM killer), that
    process stops no worker, and its workers would wait on their queues for ever, orphans of
    a command long gone. A worker ends once its parent has (it is then another's child).
    Polled, not `PR_SET_PDEATHSIG`, which fires when the thread that spawned the worker ends,
    and workers are spawned from threads."""
    parent = os.getppid()

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(PARENT_CHECK_SECONDS)
        os._exit(0)

    threading.Thread(target=watch, name="parent-watch", daemon=True).start()
