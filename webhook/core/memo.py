"""`Memo`: a bounded map of the answers a process has computed, its least recently used entry
dropped first, made by its owner and handed to the code that reads it.

The core computes the same answer for every pod of one runtime (its decision, the response
fields, the Events it calls for), so the server keeps them. A memo is an object, never a
function's cache: two owners (two servers in one test, two commands) never see each other's.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Hashable
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class Memo(Generic[K, V]):
    """At most `size` answers by key. Locked: a command may decide on several threads."""

    def __init__(self, size: int) -> None:
        self._size = size
        self._entries: OrderedDict[K, V] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: K) -> V | None:
        with self._lock:
            found = self._entries.get(key)
            if found is not None:
                self._entries.move_to_end(key)
            return found

    def put(self, key: K, value: V) -> V:
        """Keep `value` under `key`, and give it back."""
        with self._lock:
            self._entries[key] = value
            self._entries.move_to_end(key)
            if len(self._entries) > self._size:
                self._entries.popitem(last=False)
        return value

    def __len__(self) -> int:
        return len(self._entries)
