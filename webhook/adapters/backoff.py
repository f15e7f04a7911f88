"""`Backoff`: how long the server's background parts wait before trying again (a watch that
broke, parse workers that would not start), as client-go's reflector does: exponential, capped,
with jitter so that replicas do not return together."""

from __future__ import annotations

import random


class Backoff:
    """Waits that grow from `first`, doubling to `most`, each with up to half again at random
    (so that replicas do not return together), until `reset`."""

    def __init__(self, first: float, most: float) -> None:
        self._first = first
        self._most = most
        self._next = first

    def next(self) -> float:
        wait = self._next
        self._next = min(self._next * 2, self._most)
        return wait * (1 + random.random() / 2)

    def reset(self) -> None:
        self._next = self._first
