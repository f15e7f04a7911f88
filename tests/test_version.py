"""One version everywhere: package metadata, the code, the image label and the install's tag."""

from __future__ import annotations

import importlib.metadata
import re

import yaml

from tests.support.builders import REPO
from webhook import __version__


def test_version_agrees_everywhere() -> None:
    assert importlib.metadata.version("multinode-webhook") == __version__
    assert f"ARG VERSION={__version__}" in (REPO / "Dockerfile").read_text()
    image = REPO / "deploy" / "components" / "image" / "kustomization.yaml"
    kustomization = yaml.safe_load(image.read_text())
    assert kustomization["images"][0]["newTag"] == __version__
    assert re.search(
        rf'^version = "{re.escape(__version__)}"$', (REPO / "pyproject.toml").read_text(), re.M
    )
