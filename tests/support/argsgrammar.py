"""A grammar of shell-significant pieces that random args are drawn from, for the
differential tests that hold a report (`test_argv_differential`) or a compiled policy
(`test_policy_differential`) against what really happens to an arg."""

from __future__ import annotations

import random
from typing import Final

# What a user might write, and what bash reads as syntax. Left out: `&` (alone, or in `|&`, as
# `&&` would make next to `|`), which runs the server in the background, past the end of its
# case; redirections, which would leave files that later cases glob; `$1`, which eval reads as
# the arg itself.
PIECES: Final = [
    "'",
    '"',
    "$",
    "$'",
    '$"',
    "\\",
    "\\\\",
    "{",
    "}",
    ",",
    "..",
    "{1..3}",
    "{a..c..2}",
    "{0..10..5}",
    "{x,y}",
    "~",
    "~/",
    "~root",
    "~+",
    "~-",
    "~nobody-here",
    "/",
    "*",
    "?",
    "[",
    "]",
    "[ab]",
    ";",
    "#",
    "\n",
    " ",
    "\t",
    "ü",
    "✓",
    "=",
    "--x=",
    "a",
    "1",
    "-",
    ":",
    "@",
    "%",
    "+",
    "(",
    ")",
    "`",
    "$(python3 -c ran)",
    "$HOME",
    "${X}",
    "|",
    "||",
    "\\n",
    "\\x41",
    "\\101",
    "\\u00e9",
    "\\e",
    "!",
    "^",
    "=~",
]


def drawn_arg(rnd: random.Random, *, pieces: tuple[str, ...] | list[str] = PIECES) -> str:
    """One arg: one to six pieces, drawn with `rnd`."""
    return "".join(rnd.choice(pieces) for _ in range(rnd.randint(1, 6)))
