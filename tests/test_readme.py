"""The README's tables say what the code does: every selection reason in "Which pods", every
metric the server exposes in the metrics table."""

from __future__ import annotations

import re

from prometheus_client.parser import text_string_to_metric_families

from tests.support.builders import REPO
from webhook.core.names import Reason
from webhook.transport.metrics import Metrics

README = (REPO / "README.md").read_text()


def _section(heading: str) -> str:
    start = README.index(heading)
    following = README.find("\n## ", start + len(heading))
    return README[start : following if following != -1 else None]


def test_which_pods_names_every_reason() -> None:
    table = _section("## Which pods")
    named = set(re.findall(r"`([a-z-]+)`", table))
    missing = {str(reason) for reason in Reason if reason != Reason.NAMESPACE_NOT_SELECTED} - named
    assert not missing, f"not in the Which pods table: {sorted(missing)}"


def test_the_metrics_table_names_every_metric() -> None:
    families = text_string_to_metric_families(Metrics().render().decode())
    # The classic text format shows each counter's creation time as a family of its own.
    exposed = {f.name for f in families if not f.name.endswith("_created")}
    documented = set(re.findall(r"^\| `(multinode_webhook_\w+?)(?:_total)?` \|", README, re.M))
    assert exposed == documented
