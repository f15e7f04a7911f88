"""Where the offline front ends have scripts parsed: the `Isolation` a command runs them under.

tree-sitter-bash is C code, and a script can crash it with a signal no `except` catches. The
command line runs preview, migrate, policy and check under an isolation that parses in a
sandbox process and keeps the results (`webhook.runtime.sandbox.Isolated`); a process that is
itself a sandbox (the `/preview` worker), a test or a benchmark runs them here, uncached, which
is the default. The isolation is set for a run with `isolated(...)`, in a context variable, so
the front ends need not carry it through every call, and no run sees another's.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from contextvars import ContextVar
from typing import Any, Final, Protocol, TypeVar

from webhook.core.model import Decision
from webhook.core.names import Reason, Rule
from webhook.core.parsed import ParsedScripts
from webhook.core.script import ScriptRewrite, rewrite_script
from webhook.offline.documents import InputError

T = TypeVar("T")

PARSER_FAILED_MESSAGE: Final = "the bash parser crashed on its script"


class ParserFailed(InputError):
    """The bash parser failed on a script: it crashed the process that ran it (a sandbox
    worker), or, under `--on-error deny`, crashed or overran its budget in admission. From a
    front end, the message is one line naming where."""


class Isolation(Protocol):
    """How scripts are parsed: `rewrite` answers `parser-failed` for a script that crashes the
    parser; `call` runs a function that parses, raising `ParserFailed` if the parser crashed."""

    def rewrite(self, script: str, rules: frozenset[Rule]) -> ScriptRewrite: ...

    def call(self, fn: Callable[..., T], /, *args: Any) -> T: ...


class InProcess:
    """Parse in this process, keeping the results in `scripts` when given."""

    def __init__(self, scripts: ParsedScripts | None = None) -> None:
        self._scripts = scripts

    def rewrite(self, script: str, rules: frozenset[Rule]) -> ScriptRewrite:
        if self._scripts is None:
            return rewrite_script(script, rules)
        return self._scripts.rewrite(script, rules)

    def call(self, fn: Callable[..., T], /, *args: Any) -> T:
        return fn(*args)


_CURRENT: Final[ContextVar[Isolation | None]] = ContextVar("isolation", default=None)


def current() -> Isolation:
    """The isolation of this run: parsing here, keeping nothing, unless one was set."""
    return _CURRENT.get() or InProcess()


@contextlib.contextmanager
def isolated(isolation: Isolation) -> Iterator[None]:
    """Run the front ends called inside under `isolation`."""
    token = _CURRENT.set(isolation)
    try:
        yield
    finally:
        _CURRENT.reset(token)


def crashed_container(decision: Decision) -> str | None:
    """The first container whose script crashed the parser, or None."""
    for step in decision.trace:
        if step.verdict is Reason.PARSER_FAILED:
            return step.step.removeprefix("container/")
    return None
