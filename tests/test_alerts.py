"""The alert rules of `deploy/components/monitoring`, as kustomize renders them: promtool (from
Debian's `prometheus` package, which `.ci/run` installs) checks them and runs their unit tests,
every alert has a test that makes it fire, and every alert says what to do, and its `runbook`
annotation links to its entry in docs/operate.md."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.support.builders import REPO, TESTDATA
from tests.support.install import rendered_alert_rules
from tests.support.markdown import anchor, headings, section

PROMTOOL = shutil.which("promtool")
UNIT_TESTS = TESTDATA / "alerts" / "alerts.test.yaml"

needs_promtool = pytest.mark.skipif(
    PROMTOOL is None,
    reason="promtool not installed (Debian package prometheus; .ci/run installs it)",
)
needs_kubectl = pytest.mark.skipif(
    shutil.which("kubectl") is None, reason="kubectl is not installed"
)


def _alerts(rule: dict[str, Any]) -> list[dict[str, Any]]:
    return [r for group in rule["spec"]["groups"] for r in group["rules"] if "alert" in r]


@pytest.fixture(scope="module")
def rule(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    return rendered_alert_rules(tmp_path_factory.mktemp("alerts"))


def _rules_file(rule: dict[str, Any], folder: Path) -> Path:
    path = folder / "rules.yaml"
    path.write_text(yaml.safe_dump({"groups": rule["spec"]["groups"]}))
    return path


@needs_promtool
@needs_kubectl
def test_promtool_accepts_the_rules(rule: dict[str, Any], tmp_path: Path) -> None:
    done = subprocess.run(
        [str(PROMTOOL), "check", "rules", str(_rules_file(rule, tmp_path))],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr


@needs_promtool
@needs_kubectl
def test_every_alert_passes_its_unit_tests(rule: dict[str, Any], tmp_path: Path) -> None:
    _rules_file(rule, tmp_path)
    shutil.copy(UNIT_TESTS, tmp_path / UNIT_TESTS.name)
    done = subprocess.run(
        [str(PROMTOOL), "test", "rules", str(tmp_path / UNIT_TESTS.name)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr


@needs_kubectl
def test_every_alert_has_a_test_that_makes_it_fire_and_one_that_does_not(
    rule: dict[str, Any],
) -> None:
    tests = yaml.safe_load(UNIT_TESTS.read_text())["tests"]
    checks = [c for test in tests for c in test["alert_rule_test"]]
    for alert in _alerts(rule):
        name = alert["alert"]
        mine = [c for c in checks if c["alertname"] == name]
        assert any(c["exp_alerts"] for c in mine), f"{name}: no test makes it fire"
        assert any(not c["exp_alerts"] for c in mine), f"{name}: no test keeps it quiet"


@needs_kubectl
def test_every_alert_says_what_to_do_and_has_a_runbook_entry(rule: dict[str, Any]) -> None:
    alerts = _alerts(rule)
    assert len(alerts) >= 9
    for alert in alerts:
        name, annotations = alert["alert"], alert["annotations"]
        assert set(annotations) == {"summary", "description", "runbook"}, name
        assert (
            "multinode-webhook" in annotations["description"]
            or "kubectl" in annotations["description"]
        ), name
        _assert_runbook(name, annotations["runbook"])
        assert alert["labels"]["severity"] in ("info", "warning", "critical"), name


OPERATE = REPO / "docs" / "operate.md"
RULES = REPO / "deploy" / "components" / "monitoring" / "prometheusrule.yaml"


def _assert_runbook(name: str, runbook: str) -> None:
    """The runbook is a link, from the repository's root, to the alert's own entry under
    "Alerts" in docs/operate.md."""
    alerts = section(OPERATE.read_text(), "## Alerts")
    entries = {anchor(title): title for level, title in headings(alerts) if level == 3}
    path, _, fragment = runbook.partition("#")
    assert REPO / path == OPERATE, f"{name}: {runbook}"
    assert entries.get(fragment) == name, f"{name}: no runbook entry at {runbook}"


def test_every_runbook_links_to_its_entry() -> None:
    """As written in the component, without kustomize: the entry each `runbook` names exists."""
    [group] = yaml.safe_load(RULES.read_text())["spec"]["groups"]
    alerts = [rule for rule in group["rules"] if "alert" in rule]
    assert len(alerts) >= 9
    for alert in alerts:
        _assert_runbook(alert["alert"], alert["annotations"]["runbook"])
    documented = {title for level, title in headings(section(OPERATE.read_text(), "## Alerts"))}
    assert documented - {"Alerts"} == {alert["alert"] for alert in alerts}, "an entry, no alert"
