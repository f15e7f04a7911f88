"""Where `/preview` does its work: one worker process, apart from admission.

A preview parses YAML and rewrites every script it holds, which takes seconds for a
multi-megabyte List. Run on the event loop, that work held up every `/mutate` behind it past
the API server's timeout. Here it runs in one worker process, started with the first preview
and restarted if it dies (out of memory, or a script that crashes the bash parser), so
admission keeps a core and its own memory to itself; at most
`WAITING` further previews queue behind the running one, and any more are refused (503). A body
the preview cannot take is refused (400, `PreviewRefused`); a preview that fails on a fault of
ours is told in one line (500, `PreviewFailed`), its traceback left in the worker.

Measured with `bench/hardening.py preview` (server and worker sharing one core, 4 MB previews
running all along, /mutate at 200/s): /mutate p50 0.8 ms and p99 2.6 ms with the worker
process, against 5.6 ms and 16 ms with a worker thread, which the GIL hands 5 ms slices of the
interpreter, and 1.0 ms and 1.8 ms with no preview at all. On the event loop, a /mutate waited
for the whole preview: about 5 s.
"""

from __future__ import annotations

import asyncio
import contextlib
import multiprocessing
import os
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from webhook.core.model import Context, Options
from webhook.offline.preview import NEWEST, InputError, formatted, preview_text
from webhook.runtime.sandbox import interrupts_held, leave_interrupts, stop_pool

WAITING: Final = 4
# A failure's message is the exception's, which may quote the input: cut to one short line.
FAILURE_CHARS: Final = 300


class PreviewRefused(Exception):
    """A preview we do not run: its input is bad (400) or the worker is busy or gone (503)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


class PreviewFailed(Exception):
    """A preview that failed on a fault of ours, not its input's (500): `kind` names the
    exception, the message says what it said, in one line."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(f"{kind}: {message}")
        self.kind = kind


@dataclass(frozen=True, slots=True)
class _Failed:
    """A `PreviewFailed` on its way back from the worker."""

    kind: str
    message: str


def formatted_preview(
    text: str, *, context: Context, options: Options, fmt: str, kserve_version: str
) -> str:
    """The preview of `text` in format `fmt`, or a `PreviewRefused(400)` naming the fault,
    in reading the body or in writing it out (a value the format has no way to write), and
    past what the input's readers bound themselves, as the command line says it.

    Runs in the worker process; what crosses back is a string either way.
    """
    try:
        results = preview_text(
            text,
            name="body",
            context=context,
            options=options,
            allow_aliases=False,
            kserve_version=kserve_version,
        )
        return formatted(results, fmt)
    except InputError as error:
        raise PreviewRefused(400, str(error)) from None
    except RecursionError:
        raise PreviewRefused(400, "input is nested too deeply") from None
    except MemoryError:
        raise PreviewRefused(400, "input too large to hold in memory") from None


class PreviewWorker:
    """One worker process for previews, with a bounded queue in front of it."""

    def __init__(self, *, waiting: int = WAITING) -> None:
        self._limit = 1 + waiting
        self._admitted = 0
        self._executor: ProcessPoolExecutor | None = None

    async def preview(
        self,
        text: str,
        *,
        context: Context,
        options: Options,
        fmt: str,
        kserve_version: str = NEWEST,
    ) -> str:
        if self._admitted >= self._limit:
            raise PreviewRefused(503, f"{self._admitted} previews are already queued; retry")
        if self._executor is None:
            # spawn, not fork: the server's process has an event loop and threads to leave be.
            context_ = multiprocessing.get_context("spawn")
            self._executor = ProcessPoolExecutor(
                max_workers=1, mp_context=context_, initializer=_yield_to_admission
            )
        self._admitted += 1
        try:
            with interrupts_held():  # the worker is spawned here, with the first preview
                future = self._executor.submit(
                    _preview_in_worker,
                    text,
                    context=context,
                    options=options,
                    fmt=fmt,
                    kserve_version=kserve_version,
                )
            outcome = await asyncio.wrap_future(future)
        except BrokenProcessPool:
            self.close()  # the next preview starts a fresh worker
            raise PreviewRefused(
                503, "the preview worker stopped (out of memory, or a script crashed the parser)"
            ) from None
        finally:
            self._admitted -= 1
        if isinstance(outcome, _Failed):
            raise PreviewFailed(outcome.kind, outcome.message)
        if isinstance(outcome, tuple):
            raise PreviewRefused(*outcome)
        return outcome

    def close(self, *, wait: bool = False) -> None:
        """Stop the preview worker (`stop_pool`; `wait` at shutdown)."""
        if self._executor is not None:
            stop_pool(self._executor, wait=wait)
            self._executor = None


def _yield_to_admission() -> None:
    """Make the worker the one that gives way, when it shares the container's limits.

    At a lower priority it gets the CPU quota only when admission leaves some; with the
    highest OOM score it is the process the kernel kills when a preview runs out of memory.
    Ctrl-C is the server's to answer, not the worker's.
    """
    leave_interrupts()
    os.nice(10)
    with contextlib.suppress(OSError):
        Path("/proc/self/oom_score_adj").write_text("1000")


def _preview_in_worker(
    text: str, *, context: Context, options: Options, fmt: str, kserve_version: str
) -> str | tuple[int, str] | _Failed:
    """`formatted_preview`, with a refusal returned as (status, message) and any other
    exception as `_Failed`: exceptions with arguments of their own do not survive the trip
    between processes, and one that does brings its whole traceback, which the server then
    logged at length, for each such body sent."""
    # This process is a sandbox already, so it parses here (the offline front ends' default
    # isolation): a script that crashes the parser ends it, and the next preview starts a new
    # one.
    try:
        return formatted_preview(
            text, context=context, options=options, fmt=fmt, kserve_version=kserve_version
        )
    except PreviewRefused as refused:
        return refused.status, str(refused)
    except Exception as error:
        message = " ".join(str(error).split())
        if len(message) > FAILURE_CHARS:
            message = message[: FAILURE_CHARS - 1] + "…"
        return _Failed(type(error).__name__, message)
