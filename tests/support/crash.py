"""A parse that dies by SIGSEGV on a marker, as the bash parser does on the inputs it cannot
read: the screen keeps every known one away from it, so tests of the sandbox need their own."""

from __future__ import annotations

import os
import signal
from typing import Final

from webhook.core.names import Rule
from webhook.core.script import ScriptRewrite, rewrite_script

MARKER: Final = "# this line crashes the parser"


def parse_or_crash(script: str, rules: frozenset[Rule]) -> ScriptRewrite:
    """`rewrite_script`, except that a script holding `MARKER` kills the process."""
    if MARKER in script:
        os.kill(os.getpid(), signal.SIGSEGV)
    return rewrite_script(script, rules)


def crashing_script(serial: int = 0) -> str:
    """A legacy head script that crashes `parse_or_crash`, unlike any other of `serial`."""
    return f"{MARKER} {serial}\npython -m huggingfaceserver --model_dir=/mnt/models\n"
