"""Parsing untrusted scripts in a process of their own, so that a parser crash costs no more
than that process.

tree-sitter-bash is C code fed with whatever text a pod holds, and some inputs crash it with a
signal that no `except` catches. A process that must not die (the server) or be killed by a
signal (the command line) sets `Options.parse_scripts` to False: the core then raises
`ScriptNotParsed` for each script it has not cached instead of parsing it, the script is parsed
here in one spawned worker process, the result is cached in the asking process (`remember`),
and the call is made again. The pods of one runtime share its script, so only its first pod
costs a trip to the worker.

`Sandbox` runs one call at a time in the worker, so a crash names the call that caused it; the
next call starts a fresh worker. A script that crashed it is `parser-failed`, and its digest is
kept (`Failures`, `CRASHERS_KEPT` of them) so that the same script, asked again, never reaches a
worker: without that, a controller retrying one pod would kill a worker each time. The server
shares its first-seen scripts out over several sandboxes (`webhook.offline.parsepool`).
"""

from __future__ import annotations

import asyncio
import hashlib
import math
import multiprocessing
import signal
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import Any, Final, NoReturn, TypeVar

from webhook.core.names import Reason, Rule
from webhook.core.script import (
    ScriptNotParsed,
    ScriptRewrite,
    parser_failed,
    remember,
    rewrite_script,
)
from webhook.offline.documents import InputError

T = TypeVar("T")

CRASHED: Final = "the bash parser crashed on its script"
CRASHERS_KEPT: Final = 1024


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


class Crashed(Exception):
    """The worker process died while it ran the call."""


class Unavailable(Exception):
    """No worker process could be started: the message says why."""


class ParserCrashed(InputError):
    """A front end's input holds a script that crashes the parser: one line naming where."""


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
    if wait and manager is not None:
        manager.join(timeout=5)


class Sandbox:
    """One spawned worker process, started with the first call and replaced after a crash."""

    def __init__(
        self,
        *,
        parse: Callable[[str, frozenset[Rule]], ScriptRewrite] = rewrite_script,
        crashers_kept: int = CRASHERS_KEPT,
    ) -> None:
        self._parse = parse
        self._executor: ProcessPoolExecutor | None = None
        self._sync = threading.Lock()
        self._making = threading.Lock()
        self._async: asyncio.Lock | None = None
        self._crashers = Failures(crashers_kept)
        # Calls that killed their worker, and the fresh one that ran them again.
        self.crashes = 0
        # Workers found dead before a call (killed while idle, as by the OOM killer), replaced.
        self.replaced = 0
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
        """Start the worker now rather than on the first call, which then pays no start-up."""
        self._submit(int).result()

    def call(self, fn: Callable[..., T], /, *args: Any) -> T:
        """`fn(*args)` in the worker; `Crashed` if it died running the call twice (a worker
        killed from outside, as by the OOM killer, is no fault of the call's: the call runs
        once more on a fresh one), `Unavailable` if none could be started."""
        with self._sync:
            for attempt in (1, 2):
                future = self._submit(fn, *args)
                try:
                    return future.result()
                except BrokenProcessPool:
                    self._died(final=attempt == 2)
        raise AssertionError("unreachable")

    async def call_async(self, fn: Callable[..., T], /, *args: Any) -> T:
        """`call`, awaited: the event loop runs on while the worker parses."""
        if self._async is None:
            self._async = asyncio.Lock()
        async with self._async:
            for attempt in (1, 2):
                future = self._submit(fn, *args)
                try:
                    return await asyncio.wrap_future(future)
                except BrokenProcessPool:
                    self._died(final=attempt == 2)
        raise AssertionError("unreachable")

    def _submit(self, fn: Callable[..., T], /, *args: Any) -> Future[T]:
        """The call handed to the worker. A worker that died while idle broke the pool before
        this call: that is no crash of this call's, and a new worker takes it."""
        for attempt in (1, 2):
            try:
                future = self._pool().submit(fn, *args)
            except BrokenProcessPool:
                self.replaced += 1
                self.close()
                if attempt == 2:
                    self._unavailable("a new parse worker died before it took a call")
            except (OSError, RuntimeError) as error:
                self.close()
                self._unavailable(f"no parse worker could be started: {error}")
            else:
                self.unavailable = None
                return future
        raise AssertionError("unreachable")

    def rewrite(self, script: str, rules: frozenset[Rule]) -> ScriptRewrite:
        """The script's rewrite, parsed in the worker; `Crashed` if the parse killed it."""
        return self.call(self._parse, script, rules)

    def remember(self, missing: ScriptNotParsed) -> ScriptRewrite:
        """Parse a missing script in the worker and cache its rewrite in this process, and
        return it; a script that kills the worker, now or before, is `parser-failed`."""
        known = self._crashers.known(missing.script)
        rewritten = known[0] if known is not None else None
        if rewritten is None:
            try:
                rewritten = self.rewrite(missing.script, missing.rules)
            except Crashed:
                rewritten = parser_failed()
                self._crashers.add(missing.script, rewritten)
        remember(missing.script, missing.rules, rewritten)
        return rewritten

    def close(self, *, wait: bool = False) -> None:
        """Stop the worker now (`stop_pool`; `wait` when the process is about to exit)."""
        if self._executor is not None:
            stop_pool(self._executor, wait=wait)
            self._executor = None

    def _pool(self) -> ProcessPoolExecutor:
        with self._making:  # `start` may run on another thread than the calls
            if self._executor is None:
                # spawn, not fork: the asking process may have an event loop and threads.
                context = multiprocessing.get_context("spawn")
                self._executor = ProcessPoolExecutor(
                    max_workers=1, mp_context=context, initializer=leave_interrupts
                )
            return self._executor

    def _died(self, *, final: bool) -> None:
        """The worker died under a call: it is replaced on the next; a call's second such
        death is its crash."""
        self.close()
        if final:
            self.crashes += 1
            raise Crashed

    def _unavailable(self, reason: str) -> NoReturn:
        self.unavailable = reason
        self.start_failures += 1
        raise Unavailable(reason)


def _digest(script: str) -> bytes:
    return hashlib.sha256(script.encode("utf-8", "surrogatepass")).digest()


_shared: Sandbox | None = None


def shared() -> Sandbox:
    """This process's sandbox for the offline front ends, started on first use."""
    global _shared  # noqa: PLW0603 - one worker per process, made only when needed
    if _shared is None:
        _shared = Sandbox()
    return _shared


def resolved(call: Callable[[], T], *, what: str, answer_crashes: bool = False) -> T:
    """`call()`, after the shared sandbox parsed each script it may not parse itself.

    A script that crashes the worker is a `ParserCrashed` naming `what` and the container; with
    `answer_crashes`, it is `parser-failed` instead, as admission answers it.
    """
    parsed: set[tuple[str, frozenset[Rule]]] = set()
    while True:
        try:
            return call()
        except ScriptNotParsed as missing:
            key = (missing.script, missing.rules)
            if key in parsed:
                raise RuntimeError("the script cache cannot hold this object's scripts") from None
            parsed.add(key)
            crashed = shared().remember(missing).reason is Reason.PARSER_FAILED
            if crashed and not answer_crashes:
                raise ParserCrashed(f"{what}: container {missing.container}: {CRASHED}") from None


def leave_interrupts() -> None:
    """A worker's initializer: Ctrl-C reaches the whole process group, and the process that
    started the worker is the one to answer it (it stops its workers); a worker that took it
    too would print its own traceback."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
