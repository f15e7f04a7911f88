"""Golden files: each input pod and the pod admission makes of it.

Inputs are `examples/*-pod.yaml` and `tests/fixtures/pods/*.yaml`; goldens sit in
`tests/golden/` under the input's name. `UPDATE_GOLDEN=1 pytest tests/test_golden.py` rewrites
them; a golden with no input fails as stale.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import jsonpatch
import pytest
import yaml

from tests.support.kserve import EXAMPLES
from webhook.core.mutate import mutate
from webhook.core.names import Action
from webhook.core.patch import to_json
from webhook.offline import documents

HERE = Path(__file__).parent
GOLDEN = HERE / "golden"
INPUTS = sorted([*EXAMPLES.glob("*-pod.yaml"), *(HERE / "fixtures" / "pods").glob("*.yaml")])
UPDATE = os.environ.get("UPDATE_GOLDEN") == "1"


def outcome(pod: Any) -> dict[str, Any]:
    decision = mutate(pod)
    return {
        "decision": decision.action,
        "reason": decision.reason,
        "warnings": list(decision.warnings),
        "object": jsonpatch.apply_patch(pod, to_json(decision.patch)),
    }


@pytest.mark.parametrize("source", INPUTS, ids=lambda p: p.name)
def test_golden(source: Path) -> None:
    golden = GOLDEN / source.name
    actual = outcome(yaml.safe_load(source.read_text()))
    if UPDATE:
        golden.write_text(documents.dump(actual))
    assert golden.exists(), f"no golden for {source.name}: run with UPDATE_GOLDEN=1"
    assert yaml.safe_load(golden.read_text()) == actual


@pytest.mark.parametrize("source", INPUTS, ids=lambda p: p.name)
def test_golden_is_a_fixed_point(source: Path) -> None:
    """Feeding the expected pod back in changes nothing."""
    expected = yaml.safe_load((GOLDEN / source.name).read_text())
    again = mutate(expected["object"])
    assert again.patch == ()
    assert again.action == Action.UNCHANGED or expected["decision"] == Action.SKIPPED


def test_no_stale_goldens() -> None:
    stale = {p.name for p in GOLDEN.glob("*.yaml")} - {p.name for p in INPUTS}
    assert not stale, f"goldens without an input: {sorted(stale)}"
