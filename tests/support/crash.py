"""A parse that dies by SIGSEGV on a marker, as the bash parser does on the inputs it cannot
read (the screen keeps every known one away from it, so tests of the sandbox need their own),
and one made slow on purpose."""

from __future__ import annotations

import os
import signal
import time
from typing import Final

from webhook.core.names import Rule
from webhook.core.script import ScriptRewrite, rewrite_script

MARKER: Final = "# this line crashes the parser"


def rewrite_or_crash(script: str, rules: frozenset[Rule]) -> ScriptRewrite:
    """`rewrite_script`, except that a script holding `MARKER` kills the process."""
    if MARKER in script:
        os.kill(os.getpid(), signal.SIGSEGV)
    return rewrite_script(script, rules)


def crashing_script(serial: int = 0) -> str:
    """A legacy head script that crashes `rewrite_or_crash`, unlike any other of `serial`."""
    return f"{MARKER} {serial}\npython -m huggingfaceserver --model_dir=/mnt/models\n"


SLOW: Final = "# this line makes the parse take seconds:"


def rewrite_slowly(script: str, rules: frozenset[Rule]) -> ScriptRewrite:
    """`rewrite_script`, after sleeping the seconds a `SLOW` line names."""
    for line in script.splitlines():
        if line.startswith(SLOW):
            time.sleep(float(line.removeprefix(SLOW)))
    return rewrite_script(script, rules)


def slow_script(seconds: float, serial: int = 0) -> str:
    """A legacy head script whose parse by `rewrite_slowly` takes `seconds`, unlike any other of
    `serial`."""
    return f"{SLOW} {seconds}\n# {serial}\npython -m huggingfaceserver --model_dir=/mnt/models\n"
