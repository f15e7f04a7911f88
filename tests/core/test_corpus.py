"""Every multi-node runtime KServe and OpenDataHub ever shipped, as the pods KServe builds:
args written on an InferenceService reach the model server exactly, on every release."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import jsonpatch
import pytest

from tests.support import kserve, shell
from tests.support.builders import admit
from tests.support.proof import HOSTILE_ARGS, launch
from webhook.core import names
from webhook.core.names import Action, Reason
from webhook.core.patch import to_json
from webhook.offline.migrate import migrate_document

if not kserve.CORPUS.is_dir():
    pytest.skip(
        f"shared runtime corpus not found at {kserve.CORPUS} (only CI and developers have it)",
        allow_module_level=True,
    )

FILES = kserve.corpus_files()
EXACT = [path for path in FILES if path.name.startswith(kserve.EXACT_PREFIXES)]
REPAIRED = [path for path in FILES if path not in EXACT]
TARGET = {"head": names.HEAD_CONTAINER, "worker": names.WORKER_CONTAINER}


def roles(runtime: Any) -> list[str]:
    return ["head", "worker"] if runtime["spec"].get("workerSpec") else ["head"]


def test_every_prefix_names_a_file() -> None:
    for prefix in (*kserve.LEGACY_PREFIXES, *kserve.EXACT_PREFIXES):
        assert any(path.name.startswith(prefix) for path in FILES), prefix


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.name)
def test_decision_matches_the_runtime_shape(path: Path) -> None:
    runtimes = kserve.load_runtimes(path)
    assert runtimes, f"no runtime in {path.name}"
    for runtime in runtimes:
        for role in roles(runtime):
            pod = kserve.build_pod(runtime, role=role, user_args=["--max-model-len=4096"])
            decision = admit(pod)
            if path in EXACT:
                assert (decision.action, decision.reason) == (
                    Action.UNCHANGED,
                    Reason.ALREADY_MIGRATED,
                ), (role, decision.trace)
                assert decision.patch == ()
                continue
            assert decision.action == Action.PATCHED, (role, decision.reason, decision.trace)
            result = jsonpatch.apply_patch(pod, to_json(decision.patch))
            again = admit(result)
            assert (again.action, again.reason, again.patch) == (
                Action.UNCHANGED,
                Reason.ALREADY_MIGRATED,
                (),
            )


@pytest.mark.parametrize("role", ["head", "worker"])
@pytest.mark.parametrize("path", REPAIRED, ids=lambda p: p.name)
def test_hostile_args_reach_the_launcher_exactly(path: Path, role: str, tmp_path: Path) -> None:
    name = TARGET[role]
    for index, runtime in enumerate(kserve.load_runtimes(path)):
        bare = kserve.build_pod(runtime, role=role)
        loaded = kserve.build_pod(runtime, role=role, user_args=HOSTILE_ARGS)
        flags = launch(bare, name, tmp_path / f"{index}-bare")
        before = launch(loaded, name, tmp_path / f"{index}-before")
        assert before != [*flags, *HOSTILE_ARGS], "the shipped runtime should mangle these args"
        decision = admit(loaded)
        assert decision.action == Action.PATCHED, decision.trace
        rewritten = jsonpatch.apply_patch(loaded, to_json(decision.patch))
        assert launch(rewritten, name, tmp_path / f"{index}-after") == [*flags, *HOSTILE_ARGS]


@pytest.mark.parametrize("role", ["head", "worker"])
@pytest.mark.parametrize("path", REPAIRED, ids=lambda p: p.name)
def test_rewritten_script_parses_and_adds_no_shellcheck_finding(path: Path, role: str) -> None:
    for runtime in kserve.load_runtimes(path):
        pod = kserve.build_pod(runtime, role=role, user_args=["--x=1"])
        container = next(c for c in pod["spec"]["containers"] if c["name"] == TARGET[role])
        before = container["command"][2] if len(container["command"]) > 2 else container["args"][0]
        decision = admit(pod)
        after = decision.patch[0].value[2]
        assert shell.parses(after)
        assert shell.new_findings(before=before, after=after) == Counter()


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.name)
def test_migrate_repairs_exactly_the_runtimes_that_need_it(path: Path) -> None:
    for runtime in kserve.load_runtimes(path):
        migrated = migrate_document(runtime)
        assert bool(migrated.changes) is (path not in EXACT), migrated.changes


def test_tally() -> None:
    tally: Counter[tuple[str, str]] = Counter()
    for path, _, pod in kserve.corpus_pods():
        tally[kserve.family(path), admit(pod).action] += 1
    unchanged = sum(n for (_, d), n in tally.items() if d == Action.UNCHANGED)
    exact_pods = sum(len(roles(r)) for path in EXACT for r in kserve.load_runtimes(path))
    assert unchanged == exact_pods
    assert not any(d == Action.SKIPPED for _, d in tally)


# Single-node runtimes (`single-node/`): their args already arrive exactly, one way or another.
SINGLE_NODE = sorted((kserve.CORPUS / "single-node").glob("*.yaml"))


def test_the_single_node_runtimes_are_in_the_corpus() -> None:
    assert SINGLE_NODE, f"no single-node runtime under {kserve.CORPUS / 'single-node'}"


@pytest.mark.parametrize("path", SINGLE_NODE, ids=lambda p: p.name)
def test_a_single_node_runtime_is_left_alone_with_no_warning(path: Path) -> None:
    runtimes = kserve.load_runtimes(path)
    assert runtimes, f"no runtime in {path.name}"
    for runtime in runtimes:
        pod = kserve.build_pod(runtime, role="head", user_args=HOSTILE_ARGS)
        decision = admit(pod)
        assert (decision.action, decision.patch, decision.warnings) == (
            Action.UNCHANGED,
            (),
            (),
        ), decision.trace
        assert not migrate_document(runtime).changes


def test_an_exec_form_single_node_runtime_hands_the_args_over_exactly(tmp_path: Path) -> None:
    [path] = [p for p in SINGLE_NODE if p.name.endswith("-kserve-vllmserver.yaml")]
    [runtime] = kserve.load_runtimes(path)
    bare = launch(kserve.build_pod(runtime, role="head"), names.HEAD_CONTAINER, tmp_path / "a")
    loaded = kserve.build_pod(runtime, role="head", user_args=HOSTILE_ARGS)
    assert launch(loaded, names.HEAD_CONTAINER, tmp_path / "b") == [*bare, *HOSTILE_ARGS]
