"""The parsed-script store: rewrites by (script, rules), owned by whoever parses.

One runtime's script repeats across every pod it creates, so its rewrite is kept. The store is
an object its owner makes (the server, one run of a command, a test) and hands to the core: two
stores never see each other's scripts, and nothing of it lives in the core's modules.

The core reads a script's rewrite through a `Rewrites` function. A process that may parse (a
test, a benchmark) passes `ParsedScripts.rewrite`, which parses what it has not seen. One that
must not (the server, the command line: tree-sitter-bash is C code fed with untrusted text)
asks `scripts_needed` which scripts a pod needs, has the missing ones parsed in a sandbox
process, `put`s the results, and passes `known(...)`: the core then runs once and never parses.
"""

from __future__ import annotations

import math
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from typing import Final, NamedTuple

from webhook.core.names import Rule
from webhook.core.script import ScriptRewrite, rewrite_script

Rewrites = Callable[[str, frozenset[Rule]], ScriptRewrite]
"""What the core reads a script's rewrite through: (script, rules) to its rewrite."""

# Runtime scripts are a few KiB: 8 Mi characters hold thousands of them, and bound a store
# near 16 MiB (2 bytes a character for text beyond Latin-1).
DEFAULT_BUDGET: Final = 8 * 1024 * 1024


class Needed(NamedTuple):
    """A script a container runs, with the rules it is to be rewritten by."""

    script: str
    rules: frozenset[Rule]
    container: str

    @property
    def key(self) -> tuple[str, frozenset[Rule]]:
        return (self.script, self.rules)


class NotParsed(LookupError):
    """A script the caller did not have parsed before asking the core: a bug of the caller's."""


class ParsedScripts:
    """Rewrites by (script, rules), the least recently used dropped first once the scripts and
    their rewrites together pass `budget` characters; the newest entry always stays.

    Not functools.lru_cache: a server must ask whether a script is known without parsing it,
    and store a result parsed in another process, and lru_cache offers neither. Locked: a
    command may decide on several threads.
    """

    def __init__(self, budget: int = DEFAULT_BUDGET) -> None:
        self._budget = budget
        self._chars = 0
        self._entries: OrderedDict[tuple[str, frozenset[Rule]], ScriptRewrite] = OrderedDict()
        # The monotonic time past which an entry that does not last is forgotten.
        self._until: dict[tuple[str, frozenset[Rule]], float] = {}
        self._lock = threading.Lock()

    def get(self, script: str, rules: frozenset[Rule]) -> ScriptRewrite | None:
        """The known rewrite, or None (never parses); an expired one is forgotten."""
        key = (script, rules)
        with self._lock:
            found = self._entries.get(key)
            if found is None:
                return None
            if self._until.get(key, math.inf) <= time.monotonic():
                self._drop(key)
                return None
            self._entries.move_to_end(key)
            return found

    def put(
        self,
        script: str,
        rules: frozenset[Rule],
        rewrite: ScriptRewrite,
        *,
        until: float | None = None,
    ) -> None:
        """Keep a rewrite, for good or until the monotonic time `until` (an outcome that may
        change: a parse that overran its budget)."""
        key = (script, rules)
        with self._lock:
            if key in self._entries:
                self._drop(key)
            self._entries[key] = rewrite
            if until is not None:
                self._until[key] = until
            self._chars += _cost(key, rewrite)
            while self._chars > self._budget and len(self._entries) > 1:
                self._drop(next(iter(self._entries)))

    def rewrite(self, script: str, rules: frozenset[Rule]) -> ScriptRewrite:
        """The rewrite, parsed in this process when not known (`Rewrites` for a process that
        may parse)."""
        found = self.get(script, rules)
        if found is None:
            found = rewrite_script(script, rules)
            self.put(script, rules, found)
        return found

    def __len__(self) -> int:
        return len(self._entries)

    def clear(self) -> None:
        """Forget every script, as a new process would."""
        with self._lock:
            self._entries.clear()
            self._until.clear()
            self._chars = 0

    def _drop(self, key: tuple[str, frozenset[Rule]]) -> None:
        self._chars -= _cost(key, self._entries.pop(key))
        self._until.pop(key, None)


def _cost(key: tuple[str, frozenset[Rule]], value: ScriptRewrite) -> int:
    return len(key[0]) + len(value.script or "")


def known(rewrites: Mapping[tuple[str, frozenset[Rule]], ScriptRewrite]) -> Rewrites:
    """`Rewrites` over the rewrites a caller has in hand for one pass; asking for any other
    script is `NotParsed`."""

    def lookup(script: str, rules: frozenset[Rule]) -> ScriptRewrite:
        try:
            return rewrites[(script, rules)]
        except KeyError:
            raise NotParsed("a script was asked for that was not parsed first") from None

    return lookup
