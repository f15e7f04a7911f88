"""A line of the `check` report (`Finding`): a pass, a problem, or what could not be verified
from where the command ran; and how its lines count things (`counted`)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Finding:
    """One line of the check report: `ok` False marks a problem, `verified` False what could
    not be verified from here (neither a problem nor a pass)."""

    text: str
    ok: bool = True
    verified: bool = True


def counted(number: int, noun: str) -> str:
    """`1 endpoint`, `2 endpoints`: a count with its noun."""
    return f"{number} {noun}{'' if number == 1 else 's'}"
