"""What `eval` makes of a container's args today, and what changes once they reach `"$@"`.

KServe's LLM presets launch `eval "vllm serve … $@"`: every arg is re-parsed as shell code.
The repair hands eval `"$@"` instead, so each `args` element arrives as written. A working pod
must not change meaning (DESIGN §2.1), so an arg that is only quoting around literal text is
replaced by the one word eval makes of it today: KServe's own `--lora-modules '<json>'` (v0.19+)
and the args of users who worked around the eval stay as they were. Every other arg now arrives
exactly, and the warnings name it.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Final

# Single-quoted text, double-quoted text without `$`, `` ` `` or `\`, and characters eval
# leaves alone: such an arg is one word under eval, its quotes removed.
_LITERAL: Final = re.compile(r"""(?:'[^']*'|"[^"$`\\]*"|[A-Za-z0-9_./:=@%+,-])+""")
_SEGMENT: Final = re.compile(r"""'([^']*)'|"([^"]*)"|(.)""", re.DOTALL)
# What the kubelet expands in args (`$(VAR)`, `$$`): unwrapping must leave it as it was.
_KUBELET: Final = re.compile(r"\$\$|\$\([^)]*\)")
# What makes eval end the command line, or run it into the next arg: the args after it were
# cut off (an unbalanced quote is told by counting).
_CUTS: Final = re.compile(r"[;&|<>\n]|(?:^|\s)#")
_BLANK: Final = re.compile(r"\s")
# At most this many args are named one by one; a warning sums up the rest.
NAMED_LIMIT: Final = 8
# The patterns `eval_word` reads an arg with, for a compiled policy to read it alike in CEL
# (RE2, where `matches` finds a match anywhere: the policy anchors it).
LITERAL_PATTERN: Final = _LITERAL.pattern
SEGMENT_PATTERN: Final = _SEGMENT.pattern
KUBELET_PATTERN: Final = _KUBELET.pattern
# A compiled policy leaves to the webhook an eval launch with this in an arg: RE2's `$` and
# Python's disagree before a final newline, so the tests could not prove the CEL alike.
POLICY_LEAVES: Final = "\n"


def policy_leaves(args: Sequence[str]) -> bool:
    """Whether a compiled policy leaves an eval launch given these args to the webhook."""
    return any(POLICY_LEAVES in arg for arg in args)


def eval_word(arg: str) -> str | None:
    """The one word eval makes of `arg` when it is only literal text and quoting, else None."""
    if not _LITERAL.fullmatch(arg):
        return None
    word = "".join(
        next(group for group in match.groups() if group is not None)
        for match in _SEGMENT.finditer(arg)
    )
    if _KUBELET.findall(word) != _KUBELET.findall(arg):
        return None
    return word


def _cuts(arg: str) -> bool:
    return bool(_CUTS.search(arg)) or arg.count("'") % 2 == 1 or arg.count('"') % 2 == 1


def _how(arg: str) -> str:
    if not arg:
        return "now reaches the server (eval dropped the empty arg)"
    if _BLANK.search(arg):
        return "now reaches the server as one word (eval split it)"
    return "now reaches the server as written (eval re-parsed it as shell code)"


def unwrap(args: Sequence[str], *, first_position: int) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(the args with each literal one replaced by its eval word, a note for every arg whose
    delivery changes); positions count from `first_position`."""
    unwrapped: list[str] = []
    notes: list[str] = []
    cut = False
    for position, arg in enumerate(args, start=first_position):
        word = eval_word(arg)
        if word is None:
            notes.append(f"arg {position} {arg!r} {_how(arg)}")
            cut = cut or _cuts(arg)
            unwrapped.append(arg)
            continue
        if cut:
            notes.append(
                f"arg {position} {word!r} now reaches the server (an earlier arg cut it off)"
            )
        unwrapped.append(word)
    return tuple(unwrapped), named(notes)


def named(notes: Sequence[str]) -> tuple[str, ...]:
    """The first `NAMED_LIMIT` notes, and one that counts the rest."""
    if len(notes) <= NAMED_LIMIT:
        return tuple(notes)
    rest = f"and {len(notes) - NAMED_LIMIT} more args now reach it as written"
    return (*notes[:NAMED_LIMIT], rest)
