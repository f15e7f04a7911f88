"""`migrate` of KServe's LLM API at its source: an LLMInferenceServiceConfig preset's script,
its Go template actions kept byte for byte, and a multi-node LLMInferenceService's args moved
into VLLM_ADDITIONAL_ARGS for the releases whose args replace the preset's script."""

from __future__ import annotations

import copy
import re
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.support import llmisvc
from tests.support.builders import EXAMPLES, TESTDATA, admit, refresh_golden
from tests.support.cli import cli, in_process
from tests.support.proof import launch
from webhook.core.names import LLM_CONTAINER, LLM_EXTRA_ARGS_ENV, Action, Reason
from webhook.offline.migrate import ARGS_TO_ENV, migrate_document, migrate_text

ACTION = re.compile(r"\{\{.*?\}\}", re.DOTALL)
ARGS = ["--served-model-name=my model", '{"a": [1, 2]}', "--x=$(id)", "a;b", "it's", "", "*"]


def _presets() -> list[Path]:
    return llmisvc.preset_files() if llmisvc.CORPUS.is_dir() else []


@pytest.mark.parametrize("path", _presets(), ids=lambda p: p.name)
def test_migrate_changes_exactly_the_eval_presets(path: Path) -> None:
    _, changes = migrate_text(path.read_text(), name=path.name)
    assert bool(changes) is (llmisvc.shape(path) == "eval"), changes


@pytest.mark.parametrize(
    ("preset", "code"),
    [
        ("kserve-v0.17.0-config-llm-worker-data-parallel", 1),
        ("kserve-v0.17.0-config-llm-template", 0),
    ],
)
def test_migrate_check_fails_on_an_eval_preset_and_not_on_exec_form(preset: str, code: int) -> None:
    if not llmisvc.CORPUS.is_dir():
        pytest.skip(f"shared LLM preset corpus not found at {llmisvc.CORPUS}")
    done = cli("migrate", "--check", str(llmisvc.CORPUS / f"{preset}.yaml"))
    assert done.returncode == code, done.stdout + done.stderr


@pytest.mark.parametrize(
    "path", [p for p in _presets() if llmisvc.shape(p) == "eval"], ids=lambda p: p.name
)
def test_a_migrated_preset_keeps_its_template_and_passes_args_exactly(
    path: Path, tmp_path: Path
) -> None:
    text = path.read_text()
    migrated, changes = migrate_text(text, name=path.name)
    assert changes
    assert ACTION.findall(migrated) == ACTION.findall(text)
    config = yaml.safe_load(migrated)
    for role in llmisvc.roles(config):
        pod = llmisvc.build_pod(config, role=role, user_args=ARGS)
        decision = admit(pod)
        assert (decision.action, decision.reason) == (Action.UNCHANGED, Reason.ALREADY_MIGRATED)
        bare = llmisvc.build_pod(config, role=role)
        env = llmisvc.LWS_ENV
        flags = launch(bare, LLM_CONTAINER, tmp_path / f"{role}-bare", added=env)
        got = launch(pod, LLM_CONTAINER, tmp_path / role, added=env)
        start = got.index(ARGS[0])
        assert got[start : start + len(ARGS)] == ARGS
        assert got[:start] + got[start + len(ARGS) :] == flags
    assert migrate_text(migrated, name=path.name)[1] == []


def _service(template_args: list[str], *, worker: bool) -> dict[str, Any]:
    main: dict[str, Any] = {"name": LLM_CONTAINER, "args": template_args}
    spec: dict[str, Any] = {
        "model": {"uri": "hf://ibm/granite"},
        "template": {"containers": [main]},
    }
    if worker:
        spec["worker"] = {"containers": [copy.deepcopy(main)]}
    return {
        "apiVersion": "serving.kserve.io/v1alpha2",
        "kind": "LLMInferenceService",
        "metadata": {"name": "granite", "namespace": "models"},
        "spec": spec,
    }


def test_a_multi_node_service_gets_its_args_moved_into_vllm_additional_args(
    tmp_path: Path,
) -> None:
    text = yaml.safe_dump(_service(ARGS, worker=True))
    migrated, changes = migrate_text(text)
    assert [c.rules for c in changes] == [(ARGS_TO_ENV,), (ARGS_TO_ENV,)]
    service = yaml.safe_load(migrated)
    main = service["spec"]["template"]["containers"][0]
    assert "args" not in main
    [variable] = main["env"]
    assert variable["name"] == LLM_EXTRA_ARGS_ENV
    if not llmisvc.CORPUS.is_dir():
        return
    # On a v0.16 data-parallel preset, the eval of ${VLLM_ADDITIONAL_ARGS} yields each arg.
    config = llmisvc.load(llmisvc.CORPUS / "kserve-v0.16.0-config-llm-worker-data-parallel.yaml")
    pod = llmisvc.build_pod(config, role="leader")
    added = {**llmisvc.LWS_ENV, LLM_EXTRA_ARGS_ENV: variable["value"]}
    got = launch(pod, LLM_CONTAINER, tmp_path, added=added)
    start = got.index(ARGS[0])
    assert got[start : start + len(ARGS)] == ARGS


def test_a_single_node_service_and_one_without_args_are_left_alone() -> None:
    for service in (_service(ARGS, worker=False), _service([], worker=True)):
        assert migrate_text(yaml.safe_dump(service))[1] == []


def test_existing_vllm_additional_args_are_kept_first() -> None:
    service = _service(["--b=2"], worker=True)
    service["spec"]["template"]["containers"][0]["env"] = [
        {"name": LLM_EXTRA_ARGS_ENV, "value": "--a=1"}
    ]
    migrated, _ = migrate_text(yaml.safe_dump(service))
    env = yaml.safe_load(migrated)["spec"]["template"]["containers"][0]["env"]
    assert env == [{"name": LLM_EXTRA_ARGS_ENV, "value": "--a=1 --b=2"}]


@pytest.mark.parametrize(
    ("entry", "why"),
    [
        (
            {
                "name": LLM_EXTRA_ARGS_ENV,
                "valueFrom": {"configMapKeyRef": {"name": "f", "key": "k"}},
            },
            "comes from valueFrom",
        ),
        ({"name": LLM_EXTRA_ARGS_ENV}, "has no value"),
    ],
    ids=["value-from", "no-value"],
)
@pytest.mark.parametrize("flow", [False, True], ids=["in-place", "whole"])
def test_a_variable_that_cannot_take_the_args_leaves_them_and_says_why(
    entry: dict[str, Any], why: str, flow: bool
) -> None:
    """The template's variable cannot take its args: they stay, and its change says why; the
    worker's are moved all the same, whether its document is edited in place or (all flow
    style) written out again whole."""
    service = _service(["--b=2"], worker=True)
    service["spec"]["template"]["containers"][0]["env"] = [entry]
    dumped = yaml.safe_dump(service, default_flow_style=flow, sort_keys=False, width=10_000)
    text = "# a service\n" + dumped
    migrated, changes = migrate_text(text)
    [left, moved] = changes
    assert (left.role, moved.role) == ("template", "worker")
    assert why in left.left
    assert moved.left == ""
    assert [left.rewritten, moved.rewritten] == [False, flow]
    assert str(left) == f"{left.runtime} {left.where}: {ARGS_TO_ENV}: {left.left}"
    document = migrate_document(yaml.safe_load(text))
    assert yaml.safe_load(migrated) == document.document
    assert document.document["spec"]["template"] == service["spec"]["template"]
    assert [c.left for c in document.changes] == [c.left for c in changes]
    # Left alone, it is not a change migrate makes, but --check still fails on it.
    service["spec"]["worker"]["containers"][0].pop("args")
    only = yaml.safe_dump(service, sort_keys=False)
    assert migrate_text(only) == (only, [replace(left, rewritten=False)])
    done = cli("migrate", "--check", stdin=only)
    assert done.returncode == 1, done.stdout + done.stderr
    assert done.stdout == "no runtime would change\n"
    assert done.stderr == f"not migrated <stdin>: {left}\n"


MIGRATE_DATA = TESTDATA / "migrate"
GOLDEN_SUFFIX = ".golden.yaml"
SERVICES = sorted(
    p for p in MIGRATE_DATA.glob("llmisvc-*.yaml") if not p.name.endswith(GOLDEN_SUFFIX)
)


def _golden_of(source: Path) -> Path:
    return source.with_name(source.name.removesuffix(".yaml") + GOLDEN_SUFFIX)


@pytest.mark.parametrize("source", SERVICES, ids=lambda p: p.name)
def test_a_service_is_edited_in_place_into_its_golden(source: Path) -> None:
    """Each service of `tests/testdata/migrate` (`UPDATE_GOLDEN=1` writes a stale golden
    anew): edited in place, never written out again whole, into the values the document
    migration makes, every comment line kept."""
    text = source.read_text()
    migrated, changes = migrate_text(text, name=source.name)
    golden = _golden_of(source)
    refresh_golden(golden, migrated, stale=not golden.exists() or golden.read_text() != migrated)
    assert migrated == golden.read_text()
    assert changes
    assert not any(change.rewritten or change.left for change in changes)
    assert yaml.safe_load(migrated) == migrate_document(yaml.safe_load(text)).document
    comments = [line for line in text.splitlines() if line.lstrip().startswith("#")]
    assert [line for line in comments if line not in migrated.splitlines()] == []


def test_a_commented_service_keeps_its_text_but_for_the_lines_that_change() -> None:
    """Comments, quoting and each list's indentation stay as written: the golden differs from
    the input only where `args` left and VLLM_ADDITIONAL_ARGS was set (added to the template's
    place of `args`, appended to the worker's `env`, extended in prefill's)."""
    source = MIGRATE_DATA / "llmisvc-multinode.yaml"
    text = source.read_text()
    migrated, changes = migrate_text(text, name=source.name)
    assert [c.rules for c in changes] == [(ARGS_TO_ENV,)] * 3
    kept = [line for line in text.splitlines() if "args" not in line.split("#")[0]]
    changed = [line for line in kept if line not in migrated.splitlines()]
    assert changed == [
        '      - "--served-model-name=my model"',
        "      - --max-model-len=4096",
        '              value: "--enforce-eager"   # kept, the args go after it',
        "            - --kv-cache-dtype=fp8",
    ]


@pytest.mark.parametrize(
    ("value", "written"),
    [
        ("|\n          --enforce-eager\n", "--enforce-eager --a\n"),
        ("|-   # flags\n          --enforce-eager\n", "--enforce-eager --a   # flags\n"),
        (">\n          --enforce-eager\n          --x=1\n\n", "--enforce-eager --x=1 --a\n\n"),
        ("--enforce-eager\n          --x=1   # flags\n", "--enforce-eager --x=1 --a   # flags\n"),
        ("'--enforce-eager\n          --x=1'\n", "--enforce-eager --x=1 --a\n"),
    ],
    ids=["literal", "literal-commented", "folded", "plain", "quoted"],
)
def test_a_value_over_several_lines_is_written_again_on_one(value: str, written: str) -> None:
    """Only the value's own lines and those of `args` change (a block scalar's last line
    break goes, else eval would end the command before the args); the lines after it stay."""
    head = (
        "kind: LLMInferenceService\nmetadata: {name: s}\nspec:\n  template:\n    containers:\n"
        "    - name: main\n      env:\n      - name: VLLM_ADDITIONAL_ARGS\n        value: "
    )
    rest = "      - name: B   # kept\n        value: b\n"
    worker = "  worker: {containers: [{name: main}]}\n"
    text = f"{head}{value}{rest}      args: [--a]\n{worker}"
    migrated, [change] = migrate_text(text, name="s.yaml")
    assert not change.rewritten
    assert migrated == f"{head}{written}{rest}{worker}"
    assert yaml.safe_load(migrated) == migrate_document(yaml.safe_load(text)).document


def test_a_document_not_editable_in_place_is_rewritten_alone_and_said_so() -> None:
    """A flow-style `env` list cannot take a new entry in place: that service's document is
    written out again whole (its values kept), and the other documents of the file keep every
    line, comments included."""
    other = (
        "# kept as written\nkind: ConfigMap   # a comment\napiVersion: v1\nmetadata: {name: c}\n"
    )
    service = (
        "apiVersion: serving.kserve.io/v1alpha1\n"
        "kind: LLMInferenceService\n"
        "metadata: {name: s}\n"
        "spec:\n"
        "  parallelism: {tensor: 1, data: 2, dataLocal: 1}\n"
        "  template:\n"
        "    containers:\n"
        "    - name: main\n"
        "      env: [{name: A, value: '1'}]   # flow style\n"
        "      args: ['--max-model-len=4096']\n"
        "  worker:\n"
        "    containers:\n"
        "    - name: main\n"
    )
    migrated, changes = migrate_text(other + "---\n" + service, name="both.yaml")
    assert changes
    assert all(change.rewritten for change in changes)
    assert migrated.startswith(other + "---\n")
    [kept, rewritten] = list(yaml.safe_load_all(migrated))
    assert kept == yaml.safe_load(other)
    [main] = rewritten["spec"]["template"]["containers"]
    assert "args" not in main
    assert main["env"][0] == {"name": "A", "value": "1"}
    result = cli("migrate", stdin=other + "---\n" + service)
    assert "written out again whole" in result.stderr


def test_the_summary_names_a_service_an_object_not_a_runtime() -> None:
    done = in_process("migrate", "--check", str(EXAMPLES / "llminferenceservice.yaml"))
    assert done.returncode == 1, done.stderr
    assert done.stdout.splitlines()[-1] == "1 container in 1 object would change"
