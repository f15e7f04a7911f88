"""The README is the front page: short, opening with the two commands that work on a fresh
machine (one starts the webhook, one runs the whole suite), the virtualenv activated before the
first bare command, and everything else in the pages it links to (tests/test_docs.py checks
those)."""

from __future__ import annotations

import re

from tests.support.builders import REPO
from tests.support.markdown import headings

README = (REPO / "README.md").read_text()
# About 150 lines: what it repairs, the two commands, a tour, install in a paragraph, links.
MAX_LINES = 150


def test_the_readme_stays_short() -> None:
    lines = len(README.splitlines())
    assert lines <= MAX_LINES, f"README.md has {lines} lines; move detail into docs/"


def test_the_readme_opens_with_the_two_commands() -> None:
    first = re.search(r"```bash\n(.*?)```", README, re.S)
    assert first is not None
    assert README.index(first[0]) < README.index("\n## "), "the commands come before any section"
    commands = [line for line in first[1].splitlines() if line and not line.startswith("#")]
    setup = "python3 -m venv .venv && .venv/bin/pip install -e "
    assert commands == [
        f"{setup}. && .venv/bin/multinode-webhook serve",
        f"{setup}'.[test]' && .venv/bin/python -m pytest",
    ]


def test_the_sections_are_in_the_order_a_new_user_needs_them() -> None:
    assert [title for level, title in headings(README) if level == 2] == [
        "What it repairs, and why",
        "A two-minute tour",
        "Install",
        "Documentation",
    ]


def test_the_virtualenv_is_activated_before_the_first_bare_command() -> None:
    activation = README.index(". .venv/bin/activate")
    bare = re.search(r"^multinode-webhook ", README, re.M)
    assert bare is not None
    assert activation < bare.start()
