"""The bash parser under fuzz, in subprocesses: a crash fails the test with its input named.

Every way the core hands a script to tree-sitter-bash (`rewrite_script`, and `container_launch`
for preview's argv) runs on generated bash-like text mixing syntax with characters from every
plane. A child process works through a batch and names each input before it parses it, so a
crash (a signal, which no `except` catches) is reported with the input that caused it.
`PARSER_FUZZ_BATCHES` sets the number of batches (each of `BATCH` inputs, seeded by its
number, so a failure replays).
"""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys

import pytest

BATCH = 1000
BATCHES = int(os.environ.get("PARSER_FUZZ_BATCHES", "8"))
# The first input known to crash the parser: `{` then U+C1113.
KNOWN_CRASHERS = ["{\U000c1113", "${\U000c1113", "{\U0010ffff"]
SYNTAX = [
    "{",
    "}",
    "${",
    "$",
    "$(",
    ")",
    "`",
    '"',
    "'",
    "[[",
    "]]",
    "((",
    "))",
    "<<EOF\n",
    "EOF\n",
    "\\\n",
    "#",
    ";",
    "&&",
    "|",
    " ",
    "\n",
    "\t",
    "=",
    "x",
    "python -m huggingfaceserver",
    "vllm serve",
    "exec $CMD",
    'CMD="',
    "$@",
    '"$@"',
    "$0",
    "${@:2}",
    "ray start --block",
]
CHILD = """
import json, sys
from webhook.core.argv import container_launch
from webhook.core.names import Rule
from webhook.core.script import rewrite_script
rules = frozenset(Rule)
for index, script in enumerate(json.load(sys.stdin)):
    print(index, flush=True)
    rewrite_script(script, rules)
    container_launch({"command": ["bash", "-c"], "args": [script, "a b", ""]})
print("done", flush=True)
"""


def _char(rnd: random.Random) -> str:
    plane = rnd.random()
    if plane < 0.4:
        return chr(rnd.randint(0x20, 0x7E))
    if plane < 0.7:
        return chr(rnd.randint(0x80, 0xFFFF))
    return chr(rnd.randint(0x10000, 0x10FFFF))


def inputs(seed: int) -> list[str]:
    rnd = random.Random(seed)
    return [
        "".join(
            rnd.choice(SYNTAX) if rnd.random() < 0.6 else _char(rnd)
            for _ in range(rnd.randint(1, 24))
        )
        for _ in range(BATCH)
    ]


@pytest.mark.parametrize("seed", range(BATCHES))
def test_no_script_crashes_the_parser(seed: int) -> None:
    scripts = (KNOWN_CRASHERS if seed == 0 else []) + inputs(seed)
    done = subprocess.run(
        [sys.executable, "-c", CHILD],
        input=json.dumps(scripts),
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    lines = done.stdout.split()
    if done.returncode != 0:
        last = int(lines[-1]) if lines and lines[-1].isdigit() else 0
        pytest.fail(
            f"exit {done.returncode} on input {last} of seed {seed}: {scripts[last]!r}\n"
            + done.stderr[-2000:]
        )
    assert lines[-1] == "done"
