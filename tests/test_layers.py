"""The rings of DESIGN §7, enforced: the import-linter contracts in pyproject.toml hold, and each
kind of breach makes them fail."""

from __future__ import annotations

import ast
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.builders import REPO


def lint_imports(*, cwd: Path, package_root: Path) -> subprocess.CompletedProcess[str]:
    """`lint-imports` with the contracts of `cwd/pyproject.toml`, on the package under
    `package_root`."""
    executable = shutil.which("lint-imports", path=str(Path(sys.executable).parent))
    assert executable, "import-linter not installed: pip install -e '.[test]' brings it"
    env = {**os.environ, "PYTHONPATH": str(package_root)}
    return subprocess.run(
        [executable, "--no-cache"], cwd=cwd, env=env, capture_output=True, text=True, check=False
    )


def test_the_contracts_hold() -> None:
    done = lint_imports(cwd=REPO, package_root=REPO)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "7 kept, 0 broken" in done.stdout


@pytest.mark.parametrize(
    ("module", "statement", "contract"),
    [
        ("core/names.py", "import webhook.transport.state", "Rings"),
        ("core/mutate.py", "import webhook.adapters.config", "Rings"),
        ("core/read.py", "import yaml", "The core is pure"),
        ("offline/preview.py", "import webhook.adapters.certs", "Rings"),
        ("offline/migrate.py", "import kubernetes", "Offline front ends"),
        ("adapters/certs.py", "import webhook.transport.metrics", "Rings"),
        ("adapters/config.py", "import fastapi", "Adapters hold no web framework"),
        ("transport/state.py", "import kubernetes", "The Kubernetes client module"),
        ("runtime/parsepool.py", "import webhook.transport.metrics", "Rings"),
        ("offline/policy/shapes.py", "import webhook.runtime.sandbox", "Rings"),
        ("core/mutate.py", "import webhook.runtime.admit", "Rings"),
        ("runtime/events.py", "import kubernetes", "The Kubernetes client module"),
        ("transport/preview_app.py", "import webhook.offline.policy", "The transport takes only"),
        ("runtime/warmup.py", "import fastapi", "The runtime and the inspections"),
        ("inspect/audit.py", "import webhook.runtime.sandbox", "Rings"),
        ("adapters/kube/client.py", "import webhook.inspect.audit", "Rings"),
        ("inspect/installation.py", "import kubernetes", "The Kubernetes client module"),
        ("inspect/installed_policies.py", "import prometheus_client", "The runtime and the"),
        ("cli/common.py", "import kubernetes", "The Kubernetes client module"),
        ("adapters/kube/event_writer.py", "import kubernetes", "The Kubernetes client module"),
        ("transport/state.py", "import webhook.cli.common", "Rings"),
        ("runtime/admit.py", "import webhook.inspect.audit", "Rings"),
        ("adapters/certs.py", "import webhook.offline.documents", "Rings"),
        ("core/names.py", "import urllib3", "The core is pure"),
        ("transport/state.py", "import webhook.offline.report", "The transport takes only"),
    ],
)
def test_a_wrong_import_breaks_a_contract(
    tmp_path: Path, module: str, statement: str, contract: str
) -> None:
    shutil.copytree(REPO / "webhook", tmp_path / "webhook")
    shutil.copy(REPO / "pyproject.toml", tmp_path / "pyproject.toml")
    target = tmp_path / "webhook" / module
    target.write_text(target.read_text() + f"\n{statement}\n")
    done = lint_imports(cwd=tmp_path, package_root=tmp_path)
    assert done.returncode != 0, done.stdout
    # A contract with ignored imports says so after its verdict: "BROKEN (1 ignored import)".
    broken = [line for line in done.stdout.splitlines() if re.search(r" BROKEN( \(|$)", line)]
    assert any(line.startswith(contract) for line in broken), done.stdout


@pytest.mark.parametrize("tree", ["webhook", "tests", "bench"])
def test_no_two_modules_share_a_file_name(tree: str) -> None:
    # One name, one meaning: a reader who meets `events.py` knows which one it is.
    names = [
        path.name
        for path in sorted((REPO / tree).rglob("*.py"))
        if path.name not in ("__init__.py", "conftest.py")
    ]
    assert sorted({n for n in names if names.count(n) > 1}) == []


def test_no_two_classes_share_a_name() -> None:
    # One name, one meaning: `Action` is the admission verdict, not also a Go template's.
    names = [
        node.name
        for path in sorted((REPO / "webhook").rglob("*.py"))
        for node in ast.parse(path.read_text()).body
        if isinstance(node, ast.ClassDef)
    ]
    assert sorted({n for n in names if names.count(n) > 1}) == []


# Past this many lines a module says why it is one job (as `It is long because …`).
LONG_MODULE = 400


def test_a_long_module_says_why_it_is_one_job() -> None:
    unexplained = [
        str(path.relative_to(REPO))
        for path in sorted((REPO / "webhook").rglob("*.py"))
        if len(path.read_text().splitlines()) > LONG_MODULE
        and "It is long because" not in (ast.get_docstring(ast.parse(path.read_text())) or "")
    ]
    assert unexplained == []
