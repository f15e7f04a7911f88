"""The documents say what the code does, and hold together: every relative link and anchor
resolves, every "DESIGN §N" the code cites is a section of docs/design.md, every selection
reason is in "Which pods", every metric in the metrics table, and every webhook entry in the
sentence on which pods reach the server."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from tests.support.builders import REPO
from tests.support.markdown import PAGES, anchor, broken_links, headings, section
from webhook.core.names import Reason
from webhook.transport.metrics import Metrics

DOCS = REPO / "docs"
DESIGN = DOCS / "design.md"
REFERENCE = (DOCS / "reference.md").read_text()


@pytest.mark.parametrize("page", PAGES, ids=lambda page: str(page.relative_to(REPO)))
def test_every_relative_link_and_anchor_resolves(page: Path) -> None:
    assert not broken_links(page)


def test_a_broken_link_or_anchor_is_found(tmp_path: Path) -> None:
    (tmp_path / "other.md").write_text("# Other\n\n## A section: `with code`\n")
    page = tmp_path / "page.md"
    page.write_text(
        "# Page\n\n## Here\n\n[fine](other.md#a-section-with-code), [here](#here),\n"
        "[a missing\nfile](missing.md), [a missing anchor](other.md#nowhere),\n"
        "[web](https://example.com/x.md#y), `[code](missing.md)`\n\n"
        "```\n[in a block](missing.md)\n```\n"
    )
    assert broken_links(page) == [
        "missing.md: no such file",
        "other.md#nowhere: no such heading",
    ]


def test_every_page_of_docs_is_linked_from_the_readme() -> None:
    readme = (REPO / "README.md").read_text()
    for page in [*DOCS.glob("*.md"), REPO / "DEVELOPMENT.md", REPO / "bench" / "README.md"]:
        assert f"]({page.relative_to(REPO)}" in readme, page


def _design_sections() -> set[str]:
    """The numbers of docs/design.md's sections: `2` for `## 2. What…`, `2.1` for `### 2.1 …`."""
    numbers = set()
    for _, title in headings(DESIGN.read_text()):
        if match := re.match(r"(\d+(?:\.\d+)*)\.? ", title):
            numbers.add(match[1])
    return numbers


def _citations() -> list[tuple[str, str]]:
    """(where, section number) of every "DESIGN §N" in the code, tests and project file."""
    found = []
    files = [REPO / "pyproject.toml", *REPO.glob("webhook/**/*.py"), *REPO.glob("tests/**/*.py")]
    files += [*REPO.glob("bench/**/*.py")]
    for file in files:
        for number, line in enumerate(file.read_text().splitlines(), 1):
            for cited in re.findall(r"DESIGN §(\d+(?:\.\d+)*)", line):
                found.append((f"{file.relative_to(REPO)}:{number}", cited))
    return found


def test_every_design_citation_is_a_section_of_the_design() -> None:
    citations = _citations()
    assert len(citations) > 20
    sections = _design_sections()
    assert {"1", "2", "2.1", "3", "4", "5", "6", "7", "7.1"} <= sections
    missing = [f"{where}: §{cited}" for where, cited in citations if cited not in sections]
    assert not missing, "cited, but not a section of docs/design.md"


def test_the_design_says_how_the_code_cites_it() -> None:
    text = DESIGN.read_text()
    assert "**DESIGN §N**" in text.split("\n## ", 1)[0]
    assert anchor("2.1 LLMInferenceService pods") == "21-llminferenceservice-pods"


def test_the_design_names_every_ring() -> None:
    rings = section(DESIGN.read_text(), "## 7. Code layout: the rings")
    packages = {p.name for p in (REPO / "webhook").iterdir() if (p / "__init__.py").exists()}
    assert packages == set(re.findall(r"^\| `(\w+)/` \|", rings, re.M))
    layers = re.search(r"layers = \[(.*?)\]", (REPO / "pyproject.toml").read_text(), re.S)
    assert layers is not None
    assert set(re.findall(r"webhook\.(\w+)", layers[1])) == packages


def test_the_sentence_on_which_pods_reach_the_server_names_every_entry() -> None:
    configuration = yaml.safe_load(
        (REPO / "deploy" / "base" / "mutatingwebhookconfiguration.yaml").read_text()
    )
    install = (DOCS / "install.md").read_text()
    sentence = re.search(r"It is called only for pod CREATEs.*?mirror pods never\.", install, re.S)
    assert sentence is not None
    said = " ".join(sentence[0].split())
    for entry in configuration["webhooks"]:
        for expression in entry["objectSelector"]["matchExpressions"]:
            if expression["operator"] == "Exists":
                assert f"`{expression['key']}`" in said, expression
            elif expression["operator"] == "In":
                [value] = expression["values"]
                assert f"`{expression['key']}: {value}`" in said, expression
        for condition in entry["matchConditions"]:
            for names in re.findall(r"\.name in \[([^\]]*)\]", condition["expression"]):
                for name in re.findall(r"'([^']+)'", names):
                    assert f"`{name}`" in said, name


def test_which_pods_names_every_reason() -> None:
    table = section(REFERENCE, "## Which pods")
    named = set(re.findall(r"`([a-z-]+)`", table))
    missing = {str(reason) for reason in Reason if reason != Reason.NAMESPACE_NOT_SELECTED} - named
    assert not missing, f"not in the Which pods table: {sorted(missing)}"


def test_the_metrics_table_names_every_metric() -> None:
    families = text_string_to_metric_families(Metrics().exposition().decode())
    # The classic text format shows each counter's creation time as a family of its own.
    exposed = {f.name for f in families if not f.name.endswith("_created")}
    table = section(REFERENCE, "## Logs and metrics")
    documented = set(re.findall(r"^\| `(multinode_webhook_\w+?)(?:_total)?` \|", table, re.M))
    assert exposed == documented
