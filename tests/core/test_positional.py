"""Scripts that read or forward the positional parameters: each pattern's decision, and under
the real /bin/bash the exact argv of the launcher: no arg lost, duplicated or added; for a
script left alone, what it gives the launcher as it stands."""

from __future__ import annotations

import copy
from pathlib import Path

import jsonpatch
import pytest

from tests.support.builders import admit
from tests.support.positional import CASES, Case, case_pod
from tests.support.proof import launch
from webhook.core import names
from webhook.core.names import Action
from webhook.core.patch import to_json


@pytest.mark.parametrize("case", CASES, ids=[case.name for case in CASES])
def test_positional_pattern(case: Case, tmp_path: Path) -> None:
    original = case_pod(case)
    untouched = copy.deepcopy(original)
    decision = admit(original)
    assert (decision.action, decision.reason) == (case.action, case.reason), decision.trace
    if case.action is not Action.PATCHED:
        assert decision.patch == ()
        assert original == untouched
        if case.argv is not None:
            assert launch(original, names.HEAD_CONTAINER, tmp_path) == case.argv
        return
    rewritten = jsonpatch.apply_patch(original, to_json(decision.patch))
    assert launch(rewritten, names.HEAD_CONTAINER, tmp_path) == case.argv
    assert admit(rewritten).action is Action.UNCHANGED
