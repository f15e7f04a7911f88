"""Settings: flag over environment over default, every setting documented, bad values named."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.support.builders import REPO
from tests.support.cli import cli, one_line_error
from tests.support.markdown import section
from webhook.adapters.config import Settings
from webhook.cli import parser
from webhook.core.names import Rule


def test_environment_overrides_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MULTINODE_WEBHOOK_HTTPS_PORT", "9443")
    monkeypatch.setenv("MULTINODE_WEBHOOK_CONTAINERS", '["a", "b"]')
    monkeypatch.setenv("MULTINODE_WEBHOOK_RULES", '["forward-args", "exact-args"]')
    settings = Settings()
    assert (settings.https_port, settings.containers, settings.http_port) == (
        9443,
        ("a", "b"),
        8080,
    )
    assert settings.options().containers == ("a", "b")
    assert settings.options().rules == {Rule.FORWARD_ARGS, Rule.EXACT_ARGS}
    assert Settings.model_construct().rules == tuple(Rule)


def test_flags_reach_every_setting() -> None:
    args = parser().parse_args(
        ["serve", "--https-port", "1", "--san", "a", "--san", "b", "--on-error", "deny"]
    )
    assert (args.https_port, args.san, args.on_error) == ("1", ["a", "b"], "deny")
    assert all(hasattr(args, name) for name in Settings.model_fields)


def test_every_setting_is_documented() -> None:
    flags = section((REPO / "docs" / "reference.md").read_text(), "### Flags")
    for name in Settings.model_fields:
        assert f"| `--{name.replace('_', '-')}`" in flags, name
        assert f"`MULTINODE_WEBHOOK_{name.upper()}`" in flags, name


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--https-port", "70000"], "--https-port: Input should be less than or equal to 65535"),
        (["--workers", "zero"], "--workers: Input should be a valid integer"),
        (["--body-limit", "0"], "--body-limit: Input should be greater than 0"),
        (["--rules", "all"], "--rules: Input should be 'script-to-command', 'forward-args'"),
        (
            ["--san", "localhost", "--san", "Bad Name!"],
            "--san: 'Bad Name!' is neither an IP address nor a DNS name (RFC 1123)",
        ),
        (["--san", "fe80::1%eth0"], "--san: 'fe80::1%eth0' has a zone (%eth0)"),
        (
            ["--parse-budget-seconds", "2"],
            "--parse-budget-seconds (2) must be under --deadline-seconds (1)",
        ),
    ],
)
def test_bad_values_exit_2_with_one_line(args: list[str], message: str) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "webhook", "serve", *args],
        capture_output=True,
        text=True,
        check=False,
        timeout=30,
    )
    assert done.returncode == 2
    [line] = done.stderr.strip().splitlines()
    assert line.startswith(f"multinode-webhook: error: {message}")


def test_an_environment_san_that_is_no_name_names_the_variable() -> None:
    line = one_line_error(cli("serve", env={"MULTINODE_WEBHOOK_SAN": '["a b"]'}))
    assert line.startswith("multinode-webhook: error: MULTINODE_WEBHOOK_SAN: 'a b' is neither")


def test_a_malformed_environment_list_names_the_variable() -> None:
    line = one_line_error(cli("serve", env={"MULTINODE_WEBHOOK_SAN": "foo"}))
    expected = 'MULTINODE_WEBHOOK_SAN: expected a JSON list, e.g. ["a", "b"]'
    assert line == f"multinode-webhook: error: {expected}"
