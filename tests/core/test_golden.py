"""Golden files: each input pod and the pod admission makes of it.

Every `tests/testdata/pods/NAME.yaml` is a case (the example pods are linked in from
`examples/`); its golden is `NAME.golden.yaml` beside it. `UPDATE_GOLDEN=1 pytest
tests/core/test_golden.py` rewrites them; a golden with no input fails as stale.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import jsonpatch
import pytest
import yaml

from tests.support.builders import TESTDATA
from webhook.core.mutate import mutate
from webhook.core.names import Action
from webhook.core.patch import to_json
from webhook.offline import documents

PODS = TESTDATA / "pods"
SUFFIX = ".golden.yaml"
INPUTS = sorted(p for p in PODS.glob("*.yaml") if not p.name.endswith(SUFFIX))
UPDATE = os.environ.get("UPDATE_GOLDEN") == "1"


def golden_of(source: Path) -> Path:
    return source.with_name(source.name.removesuffix(".yaml") + SUFFIX)


def outcome(pod: Any) -> dict[str, Any]:
    decision = mutate(pod)
    return {
        "decision": str(decision.action),
        "reason": str(decision.reason),
        "warnings": list(decision.warnings),
        "object": jsonpatch.apply_patch(pod, to_json(decision.patch)),
    }


@pytest.mark.parametrize("source", INPUTS, ids=lambda p: p.name)
def test_golden(source: Path) -> None:
    golden = golden_of(source)
    actual = outcome(yaml.safe_load(source.read_text()))
    if UPDATE:
        golden.write_text(documents.dump(actual))
    assert golden.exists(), f"no golden for {source.name}: run with UPDATE_GOLDEN=1"
    assert yaml.safe_load(golden.read_text()) == actual


@pytest.mark.parametrize("source", INPUTS, ids=lambda p: p.name)
def test_golden_is_a_fixed_point(source: Path) -> None:
    """Feeding the expected pod back in changes nothing."""
    expected = yaml.safe_load(golden_of(source).read_text())
    again = mutate(expected["object"])
    assert again.patch == ()
    assert again.action == Action.UNCHANGED or expected["decision"] == Action.SKIPPED


def test_no_stale_goldens() -> None:
    stale = {p.name for p in PODS.glob("*" + SUFFIX)} - {golden_of(p).name for p in INPUTS}
    assert not stale, f"goldens without an input: {sorted(stale)}"
