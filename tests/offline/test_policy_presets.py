"""The policy compiled from LLMInferenceServiceConfig presets (DESIGN §7.3), its CEL
run with cel-python against the core: for every preset of every release in the shared corpus,
each role's pods rendered for two LLMInferenceServices the policy was not compiled from (other
names, namespaces, models, parallelism and addresses, TLS on and off), with hostile args.
Every pod the policy changes equals the webhook's result byte for byte, every pod the webhook
leaves alone it leaves alone, and every pod the webhook repairs it covers."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from functools import cache
from pathlib import Path
from typing import Any

import jsonpatch
import pytest
import yaml

from tests.support import llmisvc
from tests.support.builders import admit
from tests.support.celpolicy import Policy
from tests.support.cli import in_process
from webhook.core.model import Context
from webhook.core.names import Action, Reason
from webhook.core.parsed import ParsedScripts
from webhook.core.patch import to_json
from webhook.offline.isolation import InProcess, isolated
from webhook.offline.policy import (
    PRESETS_ANNOTATION,
    SHAPES_ANNOTATION,
    Compiled,
    compile_shapes,
    jsonpatch_map,
    policy_spec,
    split,
)

# Every kind of arg eval would damage: words with spaces, globs, substitutions, separators,
# comments, empty and non-ASCII words, JSON-valued flags, and a LoRA module pre-quoted as
# KServe v0.19+ writes it.
HOSTILE = [
    "--served-model-name=my model",
    "*",
    "$(id)",
    "`id`",
    "a;b",
    "#x",
    "",
    "ünï ✓",
    '--kv-transfer-config={"kv_connector":"NixlConnector","kv_role":"kv_both"}',
    '\'{"name": "sql", "path": "/mnt/lora/sql"}\'',
]
IDENTITIES = (llmisvc.GRANITE, llmisvc.LLAMA)


def _release(path: Path) -> str:
    return path.name.split("-config-llm-")[0]


def _releases() -> list[tuple[str, ...]]:
    """The corpus's releases, those whose presets are alike (byte for byte, but for the
    file names) together: their pods are the same pods."""
    if not llmisvc.CORPUS.is_dir():
        return []
    specs: dict[str, list[bytes]] = {}
    for path in sorted(llmisvc.CORPUS.glob("*.yaml")):
        specs.setdefault(_release(path), []).append(path.read_bytes())
    alike: dict[tuple[bytes, ...], list[str]] = {}
    for release, found in specs.items():
        alike.setdefault(tuple(sorted(found)), []).append(release)
    return [tuple(releases) for releases in alike.values()]


def _presets(release: str) -> list[tuple[str, dict[str, Any]]]:
    return [
        (path.name, llmisvc.load(path))
        for path in llmisvc.preset_files()
        if _release(path) == release
    ]


def _evaluators(compiled: Compiled) -> list[Policy]:
    """Each policy `split` makes, with plain maps for patches, in the order it prints them."""
    parts = []
    for policy, found in split(compiled):
        assert found.over() is None, found
        digests = set(json.loads(policy["metadata"]["annotations"][SHAPES_ANNOTATION]))
        part = [shape for shape in compiled.shapes if shape.digest in digests]
        parts.append(Policy(policy_spec(part, patch=jsonpatch_map)))
    return parts


def verdict(policies: Sequence[Policy], pod: Mapping[str, Any], *, namespace: str) -> str:
    """ "covered" when the policies, applied in turn as the API server does, make the
    webhook's pod of it; "left" when the webhook does not repair it (it may still note a
    problem on it) and they leave it alone; else it fails."""
    decision = admit(pod, context=Context(namespace=namespace))
    stored = dict(pod)
    for policy in policies:
        stored = policy.apply(stored, namespace=namespace)
    if decision.action is not Action.PATCHED:
        assert stored == pod, json.dumps(stored)[:2000]
        return "left"
    webhook = jsonpatch.apply_patch(dict(pod), to_json(decision.patch))
    assert stored == webhook, json.dumps(stored)[:2000]
    return "covered"


@pytest.mark.parametrize("releases", _releases() or [("(no corpus)",)], ids="+".join)
def test_every_preset_pod_of_a_release_is_repaired_as_the_webhook_repairs_it(
    releases: tuple[str, ...],
) -> None:
    release, *alike = releases
    presets = _presets(release)
    compiled = compile_shapes(presets)
    # Releases with the same presets compile to the same scripts, so one release's pods stand
    # for theirs.
    for other in alike:
        again = compile_shapes(_presets(other))
        assert [s.digest for s in again.shapes] == [s.digest for s in compiled.shapes]
    policies = _evaluators(compiled) if compiled.shapes else []
    verdicts = {}
    for name, config in presets:
        for role in llmisvc.roles(config):
            for identity in IDENTITIES:
                pod = llmisvc.build_pod(config, role=role, user_args=HOSTILE, identity=identity)
                key = (name, role, identity.name)
                verdicts[key] = verdict(policies, pod, namespace=identity.namespace)
    # Every preset of the eval shape is covered for both services; the others are left.
    eval_presets = {name for name, _ in presets if llmisvc.shape(llmisvc.CORPUS / name) == "eval"}
    covered = {key[0] for key, found in verdicts.items() if found == "covered"}
    assert covered == eval_presets
    assert all(verdicts[key] == "covered" for key in verdicts if key[0] in eval_presets)
    if not eval_presets:
        return
    # What the policy leaves to the webhook: an arg with a newline.
    name = sorted(eval_presets)[0]
    config = dict(presets)[name]
    pod = llmisvc.build_pod(config, role=llmisvc.roles(config)[0], user_args=["--x", "a\nb"])
    stored = pod
    for policy in policies:
        stored = policy.apply(stored, namespace=llmisvc.NAMESPACE)
    assert stored == pod
    assert admit(pod, context=Context(namespace=llmisvc.NAMESPACE)).patch


@cache
def _everything() -> Compiled:
    return compile_shapes([(p.name, llmisvc.load(p)) for p in llmisvc.preset_files()])


def test_the_presets_of_every_release_split_across_policies_that_each_fit() -> None:
    if not llmisvc.CORPUS.is_dir():
        pytest.skip(f"shared LLM preset corpus not found at {llmisvc.CORPUS}")
    compiled = _everything()
    # Left to the webhook: the pods of the script-in-args presets, which it only annotates.
    script_in_args = {
        p.name for p in llmisvc.preset_files() if llmisvc.shape(p) == "script-in-args"
    }
    assert {line.split(": ")[0] for line in compiled.uncovered} == script_in_args
    assert all(f" {Reason.SCRIPT_REPLACED} " in line for line in compiled.uncovered)
    policies = split(compiled)
    assert len(policies) > 1
    # Each policy names the presets it repairs; together, every eval preset's every role.
    named = {
        source.split(": ")[0]
        for policy, _ in policies
        for source in json.loads(policy["metadata"]["annotations"][PRESETS_ANNOTATION])
    }
    eval_presets = {p.name for p in llmisvc.preset_files() if llmisvc.shape(p) == "eval"}
    assert named == eval_presets
    # The last policy alone repairs the pods of its presets as the webhook does.
    last, _ = policies[-1]
    digests = set(json.loads(last["metadata"]["annotations"][SHAPES_ANNOTATION]))
    evaluator = Policy(
        policy_spec([s for s in compiled.shapes if s.digest in digests], patch=jsonpatch_map)
    )
    sources = json.loads(last["metadata"]["annotations"][PRESETS_ANNOTATION])
    for source in sources:
        where, role, _ = source.rsplit(" ", 2)
        path = llmisvc.CORPUS / where.split(": ")[0]
        role = next(r for r, (at, _) in llmisvc.ROLES.items() if ".".join(at) == role)
        pod = llmisvc.build_pod(
            llmisvc.load(path), role=role, user_args=HOSTILE, identity=llmisvc.LLAMA
        )
        assert verdict([evaluator], pod, namespace=llmisvc.LLAMA.namespace) == "covered"


def test_explain_names_a_script_in_args_preset_as_left_to_the_webhook_and_why(
    tmp_path: Path,
) -> None:
    """The webhook's one change to such a preset's pods is its problem annotation: the policy
    leaves them, and `--explain` says so by the webhook's reason, for each role."""
    config = llmisvc.SCRIPT_IN_ARGS_PRESET
    path = tmp_path / "preset.yaml"
    path.write_text(yaml.safe_dump(config))
    done = in_process("policy", "--explain", str(path))
    assert done.returncode == 2, done.stderr
    *left, error = done.stderr.splitlines()
    assert "error: nothing to compile" in error
    assert len(left) == len(llmisvc.roles(config))
    for role, line in zip(llmisvc.roles(config), left, strict=True):
        decision = admit(llmisvc.build_pod(config, role=role, user_args=["--x=1"]))
        assert decision.patch
        assert line.startswith(f"left to the webhook: {path}: {config['kind']}/")
        assert f" {decision.reason} " in line


def test_a_workload_rendered_from_a_compiled_preset_adds_no_script() -> None:
    config = llmisvc.EVAL_PRESET
    pod = llmisvc.build_pod(config, role="leader")
    workload = {**pod, "kind": "Pod"}
    alone = compile_shapes([("preset.yaml", config)])
    both = compile_shapes([("preset.yaml", config), ("pod.yaml", workload)])
    assert [s.digest for s in both.shapes] == [s.digest for s in alone.shapes]
    [shape] = both.shapes
    assert both.sources(shape) == [
        "preset.yaml: LLMInferenceServiceConfig/kserve-config-llm-template template main",
        "pod.yaml: Pod/granite-leader-0 main",
    ]


@pytest.mark.parametrize("identity", IDENTITIES, ids=lambda identity: identity.name)
def test_a_small_preset_covers_services_it_was_not_compiled_from(
    identity: llmisvc.Identity,
) -> None:
    compiled = compile_shapes([("preset.yaml", llmisvc.EVAL_PRESET)])
    [shape] = compiled.shapes
    assert shape.pattern is not None
    pod = llmisvc.build_pod(
        llmisvc.EVAL_PRESET, role="leader", user_args=HOSTILE, identity=identity
    )
    assert verdict(_evaluators(compiled), pod, namespace=identity.namespace) == "covered"


def test_a_preset_compiles_alike_whatever_its_isolation_kept() -> None:
    # A second compile under one isolation reads every script from its store.
    isolation = InProcess(ParsedScripts())
    with isolated(isolation):
        first = compile_shapes([("preset.yaml", llmisvc.EVAL_PRESET)])
        again = compile_shapes([("preset.yaml", llmisvc.EVAL_PRESET)])
    assert [(s.evaluated, s.digest) for s in again.shapes] == [
        (s.evaluated, s.digest) for s in first.shapes
    ]
    assert all(s.evaluated for s in again.shapes)
