"""Golden files: each input pod and the pod admission makes of it.

Every `tests/testdata/pods/NAME.yaml` is a case (the example pods are linked in from
`examples/`); its golden is `NAME.golden.yaml` beside it. `UPDATE_GOLDEN=1 pytest
tests/core/test_golden.py` rewrites those that changed, and each one rewritten fails its test,
naming it, so that the change is reviewed and never passes by comparing a golden with itself;
it is refused under CI. A golden with no input fails as stale. The webhook's version in the
status annotation is masked, so that a release does not touch every golden.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jsonpatch
import pytest
import yaml

from tests.support.builders import TESTDATA, VERSION_MASK, admit, golden, refresh_golden
from webhook import __version__
from webhook.core.names import STATUS_ANNOTATION, Action
from webhook.core.patch import to_json
from webhook.offline import documents

PODS = TESTDATA / "pods"
SUFFIX = ".golden.yaml"
INPUTS = sorted(p for p in PODS.glob("*.yaml") if not p.name.endswith(SUFFIX))


def golden_of(source: Path) -> Path:
    return source.with_name(source.name.removesuffix(".yaml") + SUFFIX)


def outcome(pod: Any) -> dict[str, Any]:
    decision = admit(pod)
    return {
        "decision": str(decision.action),
        "reason": str(decision.reason),
        "warnings": list(decision.warnings),
        "object": _version_masked(jsonpatch.apply_patch(pod, to_json(decision.patch))),
    }


def _version_masked(pod: dict[str, Any]) -> dict[str, Any]:
    """The pod with the status annotation's version (checked to be ours) masked."""
    annotations = pod.get("metadata", {}).get("annotations", {})
    if STATUS_ANNOTATION in annotations:
        status = json.loads(annotations[STATUS_ANNOTATION])
        assert status["version"] == __version__
        status["version"] = VERSION_MASK
        annotations[STATUS_ANNOTATION] = json.dumps(status, sort_keys=True, separators=(",", ":"))
    return pod


@pytest.mark.parametrize("source", INPUTS, ids=lambda p: p.name)
def test_golden(source: Path) -> None:
    golden = golden_of(source)
    actual = outcome(yaml.safe_load(source.read_text()))
    stored = yaml.safe_load(golden.read_text()) if golden.exists() else None
    refresh_golden(golden, documents.dump(actual), stale=stored != actual)
    assert stored == actual


@pytest.mark.parametrize("source", INPUTS, ids=lambda p: p.name)
def test_golden_is_a_fixed_point(source: Path) -> None:
    """Feeding the expected pod back in changes nothing."""
    expected = golden(source.name.removesuffix(".yaml"))
    again = admit(expected["object"])
    assert again.patch == ()
    assert again.action == Action.UNCHANGED or expected["decision"] == Action.SKIPPED


def test_no_stale_goldens() -> None:
    stale = {p.name for p in PODS.glob("*" + SUFFIX)} - {golden_of(p).name for p in INPUTS}
    assert not stale, f"goldens without an input: {sorted(stale)}"
