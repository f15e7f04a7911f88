"""Every multi-node runtime KServe and OpenDataHub ever shipped, as the pods KServe builds."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import jsonpatch
import pytest

from tests.support import kserve, shell
from tests.support.proof import assert_args_forwarded
from webhook.core import names
from webhook.core.mutate import mutate
from webhook.core.names import Action, Reason
from webhook.core.patch import to_json

if not kserve.CORPUS.is_dir():
    pytest.skip(
        f"shared runtime corpus not found at {kserve.CORPUS} (only CI and developers have it)",
        allow_module_level=True,
    )

FILES = kserve.corpus_files()
LEGACY = [path for path in FILES if path.name.startswith(kserve.LEGACY_PREFIXES)]
TARGET = {"head": names.HEAD_CONTAINER, "worker": names.WORKER_CONTAINER}


def test_every_legacy_prefix_names_a_file() -> None:
    for prefix in kserve.LEGACY_PREFIXES:
        assert any(path.name.startswith(prefix) for path in FILES), prefix


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.name)
def test_decision_matches_the_runtime_shape(path: Path) -> None:
    runtimes = kserve.load_runtimes(path)
    assert runtimes, f"no runtime in {path.name}"
    expected = Action.PATCHED if path in LEGACY else Action.UNCHANGED
    for runtime in runtimes:
        for role in ("head", "worker"):
            pod = kserve.build_pod(runtime, role=role, user_args=["--max-model-len=4096"])
            decision = mutate(pod)
            assert decision.action == expected, (role, decision.reason, decision.trace)
            if expected == Action.UNCHANGED:
                assert decision.reason == Reason.ALREADY_MIGRATED
                assert decision.patch == ()
                continue
            result = jsonpatch.apply_patch(pod, to_json(decision.patch))
            again = mutate(result)
            assert (again.action, again.reason, again.patch) == (
                Action.UNCHANGED,
                Reason.ALREADY_MIGRATED,
                (),
            )


@pytest.mark.parametrize("role", ["head", "worker"])
@pytest.mark.parametrize("path", LEGACY, ids=lambda p: p.name)
def test_legacy_runtime_forwards_user_args_under_bash(
    path: Path, role: str, tmp_path: Path
) -> None:
    for runtime in kserve.load_runtimes(path):
        assert_args_forwarded(kserve.build_pod(runtime, role=role), TARGET[role], tmp_path)


@pytest.mark.parametrize("role", ["head", "worker"])
@pytest.mark.parametrize("path", LEGACY, ids=lambda p: p.name)
def test_rewritten_script_parses_and_adds_no_shellcheck_finding(path: Path, role: str) -> None:
    for runtime in kserve.load_runtimes(path):
        pod = kserve.build_pod(runtime, role=role)
        container = next(c for c in pod["spec"]["containers"] if c["name"] == TARGET[role])
        decision = mutate(pod)
        script = decision.patch[0].value[2]
        assert shell.parses(script)
        assert shell.new_findings(before=container["args"][0], after=script) == Counter()


def test_tally(capsys: pytest.CaptureFixture[str]) -> None:
    tally: Counter[tuple[str, str]] = Counter()
    for path, _, pod in kserve.corpus_pods():
        tally[kserve.family(path), mutate(pod).action] += 1
    line = "; ".join(
        f"{fam}: "
        + "/".join(f"{tally[fam, d]}" for d in (Action.PATCHED, Action.UNCHANGED, Action.SKIPPED))
        for fam in sorted({fam for fam, _ in tally})
    )
    with capsys.disabled():
        print(f"\ncorpus tally (patched/unchanged/skipped): {line}")
    assert sum(n for (_, d), n in tally.items() if d == Action.PATCHED) == 2 * len(LEGACY)
    assert tally.keys() <= {
        (fam, d) for fam, _ in tally for d in (Action.PATCHED, Action.UNCHANGED)
    }
