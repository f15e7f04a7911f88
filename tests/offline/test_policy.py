"""The compiled MutatingAdmissionPolicy against the core (DESIGN §7.3), its CEL run
with cel-python: every pod it changes equals the webhook's result byte for byte, and every pod
the webhook leaves alone it leaves alone. The whole runtime corpus, every LLM preset's pods,
every golden and the positional-parameter table, with hostile args."""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator, Mapping
from functools import cache
from pathlib import Path
from typing import Any

import jsonpatch
import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.support import kserve, llmisvc
from tests.support.builders import TESTDATA, admit, data_pod
from tests.support.celpolicy import Policy
from tests.support.cli import cli, one_line_error
from tests.support.positional import CASES, case_pod
from tests.support.proof import HOSTILE_ARGS
from webhook.core import names
from webhook.core.model import Context
from webhook.core.names import Mode
from webhook.core.patch import to_json
from webhook.offline.policy import (
    POSITIONS,
    PRESETS_ANNOTATION,
    SHAPES_ANNOTATION,
    binding,
    compile_shapes,
    jsonpatch_map,
    policy_objects,
    policy_spec,
    split,
)

NAMESPACE = "models"
LLM_ARGS = ["--served-model-name=my model", "$(id)", "a;b", "*", "", "ünï ✓", "#x"]
# Eval args that are only quoting around literal text, which the core unwraps to the word eval
# makes of them: double-quoted, single-quoted, and both in one arg.
# What vLLM users write: JSON-valued flags, and a LoRA module quoted as KServe v0.19+ quotes it.
JSON_ARGS = [
    "--kv-transfer-config",
    '{"kv_connector":"NixlConnector","kv_role":"kv_both"}',
    '--override-generation-config={"temperature": 0.5}',
    "--lora-modules",
    '\'{"name": "sql", "path": "/mnt/lora/sql"}\'',
]
QUOTED_ARGS = [
    ['"--served-model-name=llama"'],
    ["'--max-model-len=4096'", "--dtype=half"],
    ["--x='a'\"b\"c", '"my model"', "'{\"k\": 1}'"],
]


def judged(policy: Policy, pod: Mapping[str, Any]) -> str:
    """ "covered" when the policy makes the webhook's pod of it, "left" when it leaves the pod
    alone; anything else fails."""
    decision = admit(pod, context=Context(namespace=NAMESPACE))
    webhook = jsonpatch.apply_patch(dict(pod), to_json(decision.patch)) if decision.patch else pod
    stored = policy.apply(pod, namespace=NAMESPACE)
    if stored == pod:
        return "left"
    assert stored == webhook, json.dumps(policy.patch(pod, namespace=NAMESPACE))[:2000]
    return "covered"


@cache
def _runtimes() -> list[tuple[str, Any]]:
    return [(p.name, r) for p in kserve.corpus_files() for r in kserve.load_runtimes(p)]


def _runtime_pods() -> Iterator[dict[str, Any]]:
    for _, runtime in _runtimes():
        for role in ("head", "worker"):
            if role == "worker" and not runtime["spec"].get("workerSpec"):
                continue
            for args in ((), ["--max-model-len=4096"], HOSTILE_ARGS):
                yield kserve.build_pod(runtime, role=role, user_args=args)


def test_every_corpus_pod_is_repaired_as_the_webhook_repairs_it_or_left_alone() -> None:
    if not kserve.CORPUS.is_dir():
        pytest.skip(f"shared runtime corpus not found at {kserve.CORPUS}")
    policy = Policy(policy_spec(compile_shapes(_runtimes()).shapes, patch=jsonpatch_map))
    verdicts = [judged(policy, pod) for pod in _runtime_pods()]
    # Every runtime the webhook repairs is in the policy: only the exact ones are left.
    exact = sum(
        1 for pod in _runtime_pods() if not admit(pod, context=Context(namespace=NAMESPACE)).patch
    )
    assert verdicts.count("left") == exact, verdicts.count("left")
    assert verdicts.count("covered") == len(verdicts) - exact > 300


def _distinct_presets() -> list[Path]:
    """The corpus's preset files, each preset once: releases that ship one unchanged (byte
    for byte) make the same pods of it."""
    seen: set[bytes] = set()
    found = []
    for path in llmisvc.preset_files():
        spec = path.read_bytes()
        if spec not in seen:
            seen.add(spec)
            found.append(path)
    return found


def _llm_pods(paths: list[Path]) -> Iterator[tuple[dict[str, Any], list[dict[str, Any]]]]:
    """For each role of each preset: a pod with no user args, and the pods with each list of
    hostile args."""
    for path in paths:
        config = llmisvc.load(path)
        for role in llmisvc.roles(config):
            bare = llmisvc.build_pod(config, role=role)
            loaded = [
                llmisvc.build_pod(config, role=role, user_args=args)
                for args in (
                    LLM_ARGS,
                    [arg for quoted in QUOTED_ARGS for arg in quoted],
                    ["'x'", *JSON_ARGS],
                )
            ]
            yield bare, loaded


def _presets_by_name() -> dict[str, list[Path]]:
    """The distinct presets, by file name (one test each, so that they spread over workers)."""
    found: dict[str, list[Path]] = {}
    for path in _distinct_presets() if llmisvc.CORPUS.is_dir() else []:
        found.setdefault(path.name, []).append(path)
    return found


_NO_PRESETS = pytest.param(
    None, marks=pytest.mark.skip(reason=f"shared LLM preset corpus not found at {llmisvc.CORPUS}")
)


@pytest.mark.parametrize("name", sorted(_presets_by_name()) or [_NO_PRESETS])
def test_every_llm_workload_pod_is_repaired_as_the_webhook_repairs_it_or_left_alone(
    name: str,
) -> None:
    paths = _presets_by_name()[name]
    pods = list(_llm_pods(paths))
    # Compiled from the workloads' pods, as --from-cluster does: presets are templates.
    compiled = compile_shapes([(name, bare) for bare, _ in pods])
    policy = Policy(policy_spec(compiled.shapes, patch=jsonpatch_map))
    # Every loaded pod is judged: one the policy changes must equal the webhook's.
    verdicts = {judged(policy, pod) for _, loaded in pods for pod in loaded}
    # The eval presets are covered whole; the others are left to the webhook.
    assert (verdicts == {"covered"}) == any(llmisvc.shape(p) == "eval" for p in paths), verdicts
    if verdicts == {"covered"}:
        # Args eval would unwrap (JSON in quotes, KServe's pre-quoted LoRA modules) are
        # unwrapped as the webhook unwraps them (above); an arg with a newline is left to it.
        config = llmisvc.load(paths[0])
        role = llmisvc.roles(config)[0]
        newline = llmisvc.build_pod(config, role=role, user_args=["a\nb"])
        assert policy.apply(newline, namespace=NAMESPACE) == newline


def _leader(args: list[str]) -> dict[str, Any]:
    pod = data_pod("llm-eval-leader")
    [main] = [c for c in pod["spec"]["containers"] if c["name"] == names.DEFAULT_LLM_CONTAINERS[0]]
    main["args"] = args
    return pod


_LITERAL_TEXT = st.text(alphabet="ab_./:=@%+,-0 {}\"'*;#$", max_size=8)
# Quoting around literal text (what the core unwraps), and args that are anything else.
_QUOTED = st.one_of(
    _LITERAL_TEXT.filter(lambda t: "'" not in t).map(lambda t: f"'{t}'"),
    _LITERAL_TEXT.filter(lambda t: not set(t) & set('"$`\\')).map(lambda t: f'"{t}"'),
    st.lists(st.sampled_from(["'a b'", '"c"', "--d=", "'{\"e\": 1}'"]), min_size=2, max_size=4).map(
        "".join
    ),
    _LITERAL_TEXT,
)


@settings(max_examples=150, deadline=None)
@given(st.lists(_QUOTED, max_size=5))
def test_eval_args_with_quotes_are_repaired_as_the_webhook_repairs_them_or_left_alone(
    args: list[str],
) -> None:
    policy = _leader_policy()
    # No arg holds a newline: the policy makes exactly the webhook's pod.
    assert judged(policy, _leader(args)) == "covered"


@cache
def _leader_policy() -> Policy:
    return Policy(policy_spec(compile_shapes([("l", _leader([]))]).shapes, patch=jsonpatch_map))


def _golden_inputs() -> list[tuple[str, dict[str, Any]]]:
    return [
        (p.name, data_pod(p.name.removesuffix(".yaml")))
        for p in sorted((TESTDATA / "pods").glob("*.yaml"))
        if not p.name.endswith(".golden.yaml")
    ]


def test_every_golden_is_repaired_as_the_webhook_repairs_it_or_left_alone() -> None:
    inputs = _golden_inputs()
    policy = Policy(policy_spec(compile_shapes(inputs).shapes, patch=jsonpatch_map))
    verdicts = {name: judged(policy, pod) for name, pod in inputs}
    patched = {name for name, pod in inputs if admit(pod).action == names.Action.PATCHED}
    # The eval pod whose LoRA arg is quoted for the eval included.
    assert {name for name, v in verdicts.items() if v == "covered"} == patched


def test_the_positional_table_is_repaired_as_the_webhook_repairs_it_or_left_alone() -> None:
    pods = [case_pod(case) for case in CASES]
    policy = Policy(
        policy_spec(compile_shapes([("t", p) for p in pods]).shapes, patch=jsonpatch_map)
    )
    for case, pod in zip(CASES, pods, strict=True):
        verdict = judged(policy, pod)
        if case.action is not names.Action.PATCHED:
            assert verdict == "left", case.name


def test_a_pod_the_webhook_skips_is_left_alone() -> None:
    head = data_pod("legacy-head-pod")
    policy = Policy(policy_spec(compile_shapes([("h", head)]).shapes, patch=jsonpatch_map))
    assert judged(policy, head) == "covered"
    for namespace in ("kube-system", names.DEFAULT_OWN_NAMESPACE):
        assert policy.apply(head, namespace=namespace) == head
    mirror = {
        **head,
        "metadata": {**head["metadata"], "annotations": {names.MIRROR_ANNOTATION: "x"}},
    }
    assert policy.apply(mirror, namespace=NAMESPACE) == mirror
    unlabelled = {**head, "metadata": {**head["metadata"], "labels": {}}}
    assert policy.apply(unlabelled, namespace=NAMESPACE) == unlabelled
    twice = policy.apply(head, namespace=NAMESPACE)
    assert policy.apply(twice, namespace=NAMESPACE) == twice


@pytest.mark.parametrize("position", [0, 3, POSITIONS - 1, POSITIONS])
def test_the_container_may_stand_anywhere_among_its_positions(position: int) -> None:
    head = data_pod("legacy-head-pod")
    pads = [{"name": f"side-{i}", "image": "i"} for i in range(position)]
    moved = {**head, "spec": {**head["spec"], "containers": [*pads, *head["spec"]["containers"]]}}
    policy = Policy(policy_spec(compile_shapes([("h", head)]).shapes, patch=jsonpatch_map))
    assert judged(policy, moved) == ("covered" if position < POSITIONS else "left")


def test_the_binding_selects_as_the_overlays_do() -> None:
    opt_in = binding(Mode.OPT_IN)["spec"]["matchResources"]
    assert opt_in["namespaceSelector"] == {"matchLabels": {names.INJECT_LABEL: "enabled"}}
    wide = binding(Mode.CLUSTER_WIDE)["spec"]["matchResources"]["namespaceSelector"]
    assert {"key": names.INJECT_LABEL, "operator": "NotIn", "values": ["disabled", "shadow"]} in (
        wide["matchExpressions"]
    )
    assert opt_in["objectSelector"]["matchExpressions"] == [
        {"key": names.INJECT_LABEL, "operator": "NotIn", "values": [names.POD_OPT_OUT]}
    ]


def test_the_command_prints_what_kubectl_applies_and_explains_what_it_leaves(
    tmp_path: Path,
) -> None:
    runtime = Path(__file__).parents[2] / "examples" / "legacy-servingruntime.yaml"
    done = cli("policy", str(runtime), "--explain")
    assert done.returncode == 0, done.stderr
    policy, bound = yaml.safe_load_all(done.stdout)
    assert (policy["kind"], bound["kind"]) == (
        "MutatingAdmissionPolicy",
        "MutatingAdmissionPolicyBinding",
    )
    assert policy["spec"]["failurePolicy"] == "Ignore"
    assert policy["spec"]["reinvocationPolicy"] == "IfNeeded"
    assert len(json.loads(policy["metadata"]["annotations"][SHAPES_ANNOTATION])) == 2
    assert "covered: " in done.stderr
    assert "policy multinode-webhook: 2 scripts; largest CEL expression " in done.stderr
    assert "estimated CEL cost per pod" in done.stderr
    compiled = compile_shapes([("r", yaml.safe_load(runtime.read_text()))])
    assert list(yaml.safe_load_all(done.stdout)) == policy_objects(compiled, mode=Mode.OPT_IN)


def test_explain_names_the_presets_covered_and_the_action_that_leaves_one(
    tmp_path: Path,
) -> None:
    unknown = copy.deepcopy(llmisvc.EVAL_PRESET)
    unknown["metadata"]["name"] = "custom"
    main = unknown["spec"]["template"]["containers"][0]
    main["command"][2] = main["command"][2].replace(".Spec.Model.Name", ".Spec.Model.URI")
    path = tmp_path / "presets.yaml"
    path.write_text(yaml.safe_dump_all([llmisvc.EVAL_PRESET, unknown]))
    done = cli("policy", str(path), "--explain")
    assert done.returncode == 1, done.stderr
    [covered] = [line for line in done.stderr.splitlines() if line.startswith("covered: ")]
    assert "LLMInferenceServiceConfig/kserve-config-llm-template template main" in covered
    assert "(the pods of every LLMInferenceService rendered from it)" in covered
    [left] = [line for line in done.stderr.splitlines() if line.startswith("left to the webhook")]
    assert "LLMInferenceServiceConfig/custom template main" in left
    assert "its script holds the action {{ .Spec.Model.URI }}" in left
    [policy, _] = yaml.safe_load_all(done.stdout)
    [source] = json.loads(policy["metadata"]["annotations"][PRESETS_ANNOTATION])
    assert source.endswith("LLMInferenceServiceConfig/kserve-config-llm-template template main")
    empty = tmp_path / "empty.yaml"
    empty.write_text(
        yaml.safe_dump({"kind": "LLMInferenceServiceConfig", "metadata": {"name": "p"}, "spec": {}})
    )
    nothing = cli("policy", str(empty))
    assert nothing.returncode == 2
    assert nothing.stdout == ""
    assert "error: nothing to compile" in one_line_error(nothing)


def test_a_pod_past_the_covered_positions_is_explained() -> None:
    head = data_pod("legacy-head-pod")
    crowded = copy.deepcopy(head)
    crowded["spec"]["containers"] += [{"name": f"side-{i}", "image": "i"} for i in range(POSITIONS)]
    compiled = compile_shapes([("crowded.yaml", crowded)])
    assert compiled.shapes == []
    [line] = compiled.uncovered
    assert line.startswith("crowded.yaml: Pod/")
    assert "past the 8 the policy covers" in line


def test_an_input_with_nothing_to_compile_is_one_line_and_exit_2(tmp_path: Path) -> None:
    isvc = tmp_path / "isvc.yaml"
    isvc.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "serving.kserve.io/v1beta1",
                "kind": "InferenceService",
                "metadata": {"name": "llama"},
                "spec": {"predictor": {"model": {"runtime": "kserve-huggingfaceserver"}}},
            }
        )
    )
    done = cli("policy", str(isvc))
    assert done.stdout == ""
    assert "error: nothing to compile: the inputs hold no " in one_line_error(done)


def test_explain_calls_a_workload_whose_args_the_policy_skips_left_not_covered(
    tmp_path: Path,
) -> None:
    leader = data_pod("llm-eval-leader")
    leader["spec"]["containers"][0]["args"].append("--chat-template=a\nb")
    worker = copy.deepcopy(leader)
    worker["spec"]["containers"][0]["args"] = ["--enforce-eager"]

    def template(pod: dict[str, Any]) -> dict[str, Any]:
        return {"metadata": {"labels": pod["metadata"]["labels"]}, "spec": pod["spec"]}

    lws = {
        "apiVersion": "leaderworkerset.x-k8s.io/v1",
        "kind": "LeaderWorkerSet",
        "metadata": {"name": "granite-kserve-mn", "namespace": NAMESPACE},
        "spec": {
            "leaderWorkerTemplate": {
                "leaderTemplate": template(leader),
                "workerTemplate": template(worker),
            }
        },
    }
    path = tmp_path / "lws.yaml"
    path.write_text(yaml.safe_dump(lws))
    done = cli("policy", str(path), "--explain")
    assert done.returncode == 1, done.stderr
    [_covered] = [line for line in done.stderr.splitlines() if line.startswith("covered: ")]
    [left] = [line for line in done.stderr.splitlines() if line.startswith("left to the webhook")]
    assert "an arg holds a newline" in left
    # What --explain says holds: the policy leaves the leader's pods and repairs the worker's.
    policy = Policy(policy_spec(compile_shapes([("lws", lws)]).shapes, patch=jsonpatch_map))
    for pod, verdict in ((leader, "left"), (worker, "covered")):
        assert judged(policy, pod) == verdict
        if verdict == "left":
            assert admit(pod, context=Context(namespace=NAMESPACE)).patch  # the webhook would


def _long_runtime(serial: int, size: int) -> tuple[str, Any]:
    """The example runtime, its head's script grown by a comment of `size` characters."""
    runtime = yaml.safe_load(
        (Path(__file__).parents[2] / "examples" / "legacy-servingruntime.yaml").read_text()
    )
    head = runtime["spec"]["containers"][0]
    head["args"][0] = f"# {serial} {'x' * size}\n{head['args'][0]}"
    return f"runtime-{serial}", runtime


def test_scripts_past_one_policy_are_split_and_each_part_repairs_its_own() -> None:
    runtimes = [_long_runtime(serial, 20_000) for serial in range(6)]
    compiled = compile_shapes(runtimes)
    policies = split(compiled)
    assert len(policies) > 1
    for _, found in policies:
        assert found.over() is None
    assert [policy["metadata"]["name"] for policy, _ in policies][:2] == [
        "multinode-webhook",
        "multinode-webhook-2",
    ]
    objects = policy_objects(compiled, mode=Mode.OPT_IN)
    assert [o["spec"]["policyName"] for o in objects[1::2]] == [
        policy["metadata"]["name"] for policy, _ in policies
    ]
    # Each shape is in one part, and exactly that part repairs its pods as the webhook does.
    parts = [
        [
            s
            for s in compiled.shapes
            if s.digest in json.loads(policy["metadata"]["annotations"][SHAPES_ANNOTATION])
        ]
        for policy, _ in policies
    ]
    assert sorted(s.digest for part in parts for s in part) == sorted(
        s.digest for s in compiled.shapes
    )
    evaluators = [Policy(policy_spec(part, patch=jsonpatch_map)) for part in parts]
    for _, runtime in runtimes:
        pod = kserve.build_pod(runtime, role="head", user_args=["--x", "a b"])
        verdicts = sorted(judged(evaluator, pod) for evaluator in evaluators)
        assert verdicts == ["covered", *["left"] * (len(evaluators) - 1)]


def test_a_script_too_large_for_any_policy_is_refused_in_one_line(tmp_path: Path) -> None:
    _, runtime = _long_runtime(0, 110_000)
    path = tmp_path / "runtime.yaml"
    path.write_text(yaml.safe_dump(runtime))
    # The webhook leaves a script over its limit alone, and so does the policy: as a server
    # with a larger --max-script-bytes would repair it, the policy tries to.
    done = cli("policy", "--max-script-bytes", "131072", str(path))
    assert done.returncode == 2
    assert done.stdout == ""
    message = one_line_error(done)
    assert "kube-apiserver would refuse the policy" in message
    assert "code points, over kube-apiserver's limit of 100000" in message
