"""The README says what the code does and reads in order: every selection reason in "Which
pods", every metric in the metrics table, every webhook entry in the sentence on which pods
reach the server; its contents in the order a new user needs them, and the virtualenv
activated before the first bare command."""

from __future__ import annotations

import re

import yaml
from prometheus_client.parser import text_string_to_metric_families

from tests.support.builders import REPO
from webhook.core.names import Reason
from webhook.transport.metrics import Metrics

README = (REPO / "README.md").read_text()


def _section(heading: str) -> str:
    """From `heading` to the next heading of its level or above."""
    start = README.index(f"\n{heading}\n")
    level = heading.split(" ", 1)[0]
    following = re.search(rf"\n#{{1,{len(level)}}} ", README[start + len(heading) + 1 :])
    return README[start : start + len(heading) + 1 + following.start() if following else None]


def _headings() -> list[tuple[int, str]]:
    """(level, title) of every heading outside code blocks."""
    found, fenced = [], False
    for line in README.splitlines():
        if line.startswith("```"):
            fenced = not fenced
        elif not fenced and (match := re.match(r"(#{1,6}) (.+)", line)):
            found.append((len(match[1]), match[2]))
    return found


def _anchor(title: str) -> str:
    """The anchor GitHub gives a heading."""
    return re.sub(r"[^\w\- ]", "", title.lower()).replace(" ", "-")


def test_the_contents_are_in_the_order_a_new_user_needs_them() -> None:
    top = [title for level, title in _headings() if level == 2]
    assert top == [
        "Contents",
        "Quick start",
        "Preview",
        "Install on a cluster",
        "Upgrade",
        "Operate",
        "Reference",
    ]
    anchors = {_anchor(title) for _, title in _headings()}
    linked = re.findall(r"\]\(#([^)]+)\)", _section("## Contents"))
    assert set(top[1:]) <= {t for _, t in _headings() if _anchor(t) in linked}
    assert not set(linked) - anchors, "links to no heading"


def test_the_virtualenv_is_activated_before_the_first_bare_command() -> None:
    activation = README.index(". .venv/bin/activate")
    bare = re.search(r"^multinode-webhook ", README, re.M)
    assert bare is not None
    assert activation < bare.start()


def test_the_sentence_on_which_pods_reach_the_server_names_every_entry() -> None:
    configuration = yaml.safe_load(
        (REPO / "deploy" / "base" / "mutatingwebhookconfiguration.yaml").read_text()
    )
    sentence = re.search(r"It is called only for pod CREATEs.*?mirror pods never\.", README, re.S)
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
    table = _section("### Which pods")
    named = set(re.findall(r"`([a-z-]+)`", table))
    missing = {str(reason) for reason in Reason if reason != Reason.NAMESPACE_NOT_SELECTED} - named
    assert not missing, f"not in the Which pods table: {sorted(missing)}"


def test_the_metrics_table_names_every_metric() -> None:
    families = text_string_to_metric_families(Metrics().render().decode())
    # The classic text format shows each counter's creation time as a family of its own.
    exposed = {f.name for f in families if not f.name.endswith("_created")}
    documented = set(re.findall(r"^\| `(multinode_webhook_\w+?)(?:_total)?` \|", README, re.M))
    assert exposed == documented
