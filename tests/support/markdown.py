"""Reading the project's Markdown as GitHub renders it: headings outside code blocks, the
anchors GitHub gives them, a heading's section, and the relative links of a page."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Final

from tests.support.builders import REPO

# The pages a reader is sent to, and that link to each other.
PAGES: Final = (
    REPO / "README.md",
    REPO / "DEVELOPMENT.md",
    REPO / "bench" / "README.md",
    *sorted((REPO / "docs").glob("*.md")),
)

_FENCE = re.compile(r"^\s*(```|~~~)")
_LINK = re.compile(r"(?<!!)\[(?:[^\]\\]|\\.)*\]\(([^)\s]+)\)")


def _outside_code(text: str) -> Iterator[str]:
    """The lines of `text` that are not inside a fenced code block."""
    fenced = False
    for line in text.splitlines():
        if _FENCE.match(line):
            fenced = not fenced
        elif not fenced:
            yield line


def headings(text: str) -> list[tuple[int, str]]:
    """(level, title) of every heading outside code blocks."""
    found = []
    for line in _outside_code(text):
        if match := re.match(r"(#{1,6}) (.+?)\s*#*\s*$", line):
            found.append((len(match[1]), match[2]))
    return found


def anchor(title: str) -> str:
    """The anchor GitHub gives a heading: its text without markup, lower case, punctuation
    dropped, spaces as hyphens."""
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", title).replace("`", "")
    return re.sub(r"[^\w\- ]", "", text.lower()).replace(" ", "-")


def anchors(text: str) -> set[str]:
    """Every anchor a page has; a repeated heading gets `-1`, `-2`, ... as on GitHub."""
    seen: dict[str, int] = {}
    found = set()
    for _, title in headings(text):
        base = anchor(title)
        count = seen.get(base, 0)
        seen[base] = count + 1
        found.add(base if count == 0 else f"{base}-{count}")
    return found


def section(text: str, heading: str) -> str:
    """From `heading` (a whole line, such as `## Which pods`) to the next heading of its level
    or above."""
    start = text.index(f"\n{heading}\n")
    level = len(heading.split(" ", 1)[0])
    body = text[start + len(heading) + 1 :]
    following = re.search(rf"\n#{{1,{level}}} ", body)
    return text[start : start + len(heading) + 1 + (following.start() if following else len(body))]


def links(text: str) -> list[str]:
    """Every link target of a page outside code blocks and inline code."""
    prose = "\n".join(re.sub(r"`[^`]*`", "", line) for line in _outside_code(text))
    return _LINK.findall(prose)


def broken_links(page: Path) -> list[str]:
    """The relative links of `page` whose file, or whose anchor in that file, does not exist."""
    broken = []
    for target in links(page.read_text()):
        if re.match(r"[a-z][a-z0-9+.-]*:", target):
            continue  # an absolute URL: not ours to check
        path, _, fragment = target.partition("#")
        linked = (page.parent / path).resolve() if path else page
        if not linked.exists():
            broken.append(f"{target}: no such file")
        elif fragment and (linked.suffix != ".md" or fragment not in anchors(linked.read_text())):
            broken.append(f"{target}: no such heading")
    return broken
