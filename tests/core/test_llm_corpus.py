"""Every LLMInferenceServiceConfig preset KServe, OpenDataHub and RHOAI shipped, as the pods
KServe builds from them (DESIGN §2.1): the args written on an LLMInferenceService reach
`vllm serve` exactly, a working pod keeps its meaning, and a pod the webhook must not repair
is explained."""

from __future__ import annotations

import copy
import json
from collections import Counter
from pathlib import Path

import jsonpatch
import pytest

from tests.support import llmisvc, shell
from tests.support.builders import admit
from tests.support.proof import HOSTILE_ARGS, launch
from webhook.core.names import LLM_CONTAINER, PROBLEM_ANNOTATION, Action, Reason
from webhook.core.patch import to_json
from webhook.offline import llmrender

if not llmisvc.CORPUS.is_dir():
    pytest.skip(
        f"shared LLM preset corpus not found at {llmisvc.CORPUS} (only CI and developers have it)",
        allow_module_level=True,
    )

FILES = llmisvc.preset_files()
EVAL = [path for path in FILES if llmisvc.shape(path) == "eval"]
CASES = [(path, role) for path in FILES for role in llmisvc.roles(llmisvc.load(path))]
EVAL_CASES = [(path, role) for path, role in CASES if path in EVAL]

# (arg as written on the LLMInferenceService, what `vllm serve` receives once repaired): every
# way eval mangles an arg today, KServe's own single-quoted LoRA module and its tracing flags.
ARGS: list[tuple[str, str]] = [
    ("--served-model-name=my model", "--served-model-name=my model"),
    ("--kv-transfer-config", "--kv-transfer-config"),
    ('{"kv_connector":"NixlConnector","kv_role":"kv_both"}',) * 2,
    ("--x=$(id)", "--x=$(id)"),
    ("--semi=a;b", "--semi=a;b"),
    ("#not-a-comment", "#not-a-comment"),
    ("*", "*"),
    ("", ""),
    ("ünïcødé ✓", "ünïcødé ✓"),
    ("--lora-modules", "--lora-modules"),
    (
        '\'{"name":"adapter","path":"/mnt/lora/adapter"}\'',
        '{"name":"adapter","path":"/mnt/lora/adapter"}',
    ),
    ("--otlp-traces-endpoint=http://otel-collector.observability:4317",) * 2,
    ("--collect-detailed-traces=all", "--collect-detailed-traces=all"),
    ("--quoted='a b'", "--quoted=a b"),
    ("it's", "it's"),
]
WRITTEN = [written for written, _ in ARGS]
RECEIVED = [received for _, received in ARGS]
MARKER = "--marker-where-the-args-go"
KV_FLAG = "--kv-transfer-config"


def _ids(case: tuple[Path, str]) -> str:
    return f"{case[0].name}-{case[1]}"


def test_every_shape_is_in_the_corpus() -> None:
    shapes = Counter(llmisvc.shape(path) for path in FILES)
    assert set(shapes) == {"eval", "script-in-args", "exec"}, shapes


@pytest.mark.parametrize("case", CASES, ids=_ids)
def test_decision_matches_the_preset_shape(case: tuple[Path, str]) -> None:
    path, role = case
    config = llmisvc.load(path)
    pod = llmisvc.build_pod(config, role=role, user_args=["--max-model-len=4096"])
    bare = llmisvc.build_pod(config, role=role)
    decision = admit(pod)
    shape = llmisvc.shape(path)
    if shape == "exec":
        assert (decision.action, decision.reason, decision.patch) == (
            Action.UNCHANGED,
            Reason.ALREADY_MIGRATED,
            (),
        )
        return
    if shape == "script-in-args":
        # Without user args the preset works and is left alone, with no warning.
        quiet = admit(bare)
        assert (quiet.action, quiet.reason, quiet.patch, quiet.warnings) == (
            Action.UNCHANGED,
            Reason.NOT_A_TARGET,
            (),
            (),
        )
        # With them, the container stays as it is; the pod is explained.
        assert (decision.action, decision.reason) == (Action.UNCHANGED, Reason.SCRIPT_REPLACED)
        result = jsonpatch.apply_patch(pod, to_json(decision.patch))
        assert result["spec"] == pod["spec"]
        assert "VLLM_ADDITIONAL_ARGS" in result["metadata"]["annotations"][PROBLEM_ANNOTATION]
        assert any("args replaced the preset's script" in w for w in decision.warnings)
        assert admit(result).patch == ()
        return
    assert decision.action == Action.PATCHED, decision.trace
    result = jsonpatch.apply_patch(pod, to_json(decision.patch))
    again = admit(result)
    assert (again.action, again.reason, again.patch) == (
        Action.UNCHANGED,
        Reason.ALREADY_MIGRATED,
        (),
    )
    # Only `main`'s command (and args, when unwrapped) and the status annotation change.
    others = [c for c in result["spec"]["containers"] if c["name"] != LLM_CONTAINER]
    assert others == [c for c in pod["spec"]["containers"] if c["name"] != LLM_CONTAINER]
    assert {k: v for k, v in result["spec"].items() if k != "containers"} == {
        k: v for k, v in pod["spec"].items() if k != "containers"
    }


def _repaired(pod: dict[str, object]) -> dict[str, object]:
    decision = admit(pod)
    assert decision.action == Action.PATCHED, decision.trace
    return jsonpatch.apply_patch(pod, to_json(decision.patch))  # type: ignore[no-any-return]


@pytest.mark.parametrize("case", EVAL_CASES, ids=_ids)
def test_hostile_args_reach_vllm_exactly(case: tuple[Path, str], tmp_path: Path) -> None:
    path, role = case
    config = llmisvc.load(path)
    env = llmisvc.LWS_ENV
    # Every run carries a `--kv-transfer-config` of the user's, as ARGS does: from v0.21 on, one
    # in the args stops the preset from adding its own (NIXL's), so the preset's flags are
    # those of a run with it. It is a plain word, the same before and after the repair.
    given = launch(
        llmisvc.build_pod(config, role=role, user_args=[KV_FLAG]),
        LLM_CONTAINER,
        tmp_path / "bare",
        added=env,
    )
    assert given.count(KV_FLAG) == 1, given
    flags = [word for word in given if word != KV_FLAG]
    marked = _repaired(llmisvc.build_pod(config, role=role, user_args=[MARKER, KV_FLAG]))
    where = launch(marked, LLM_CONTAINER, tmp_path / "marked", added=env).index(MARKER)

    # Today, leaving out the args that kill the pod (a lone quote; `;` where vllm is not
    # exec'd), the args arrive mangled.
    survivable = [(w, r) for w, r in ARGS if w not in ("it's", "--semi=a;b")]
    mangled = llmisvc.build_pod(config, role=role, user_args=[w for w, _ in survivable])
    before = launch(mangled, LLM_CONTAINER, tmp_path / "before", added=env)
    assert before != [*flags[:where], *(r for _, r in survivable), *flags[where:]]

    loaded = _repaired(llmisvc.build_pod(config, role=role, user_args=WRITTEN))
    after = launch(loaded, LLM_CONTAINER, tmp_path / "after", added=env)
    assert after[:2] == ["vllm", "serve"]
    assert after == [*flags[:where], *RECEIVED, *flags[where:]]
    assert admit(loaded).patch == ()


@pytest.mark.parametrize("case", EVAL_CASES, ids=_ids)
def test_repaired_script_parses_and_adds_no_shellcheck_finding(case: tuple[Path, str]) -> None:
    path, role = case
    pod = llmisvc.build_pod(llmisvc.load(path), role=role, user_args=["--x=1"])
    main = next(c for c in pod["spec"]["containers"] if c["name"] == LLM_CONTAINER)
    after = admit(pod).patch[0].value[2]
    assert shell.parses(after)
    assert shell.new_findings(before=main["command"][2], after=after) == Counter()


# KServe's SGLang preset (PR #5124, not merged): `args=(…); exec "${args[@]}" "$@"`.
SGLANG = sorted((llmisvc.CORPUS / "unmerged").glob("*sglang*.yaml"))
SGLANG_CASES = [(path, role) for path in SGLANG for role in llmisvc.roles(llmisvc.load(path))]


def test_the_unmerged_presets_are_in_the_corpus() -> None:
    assert SGLANG_CASES, f"no SGLang preset under {llmisvc.CORPUS / 'unmerged'}"


@pytest.mark.parametrize("case", SGLANG_CASES, ids=_ids)
def test_an_array_launch_with_a_quoted_forward_is_left_alone_with_no_warning(
    case: tuple[Path, str], tmp_path: Path
) -> None:
    path, role = case
    config = llmisvc.load(path)
    for args in (None, HOSTILE_ARGS):
        decision = admit(llmisvc.build_pod(config, role=role, user_args=args))
        assert (decision.action, decision.reason, decision.patch, decision.warnings) == (
            Action.UNCHANGED,
            Reason.ALREADY_MIGRATED,
            (),
            (),
        ), decision.trace
    bare = launch(llmisvc.build_pod(config, role=role), LLM_CONTAINER, tmp_path / "bare")
    loaded = llmisvc.build_pod(config, role=role, user_args=HOSTILE_ARGS)
    assert launch(loaded, LLM_CONTAINER, tmp_path / "loaded") == [*bare, *HOSTILE_ARGS]


@pytest.mark.parametrize("case", SGLANG_CASES, ids=_ids)
def test_an_array_launch_with_an_unquoted_forward_is_repaired_exactly(
    case: tuple[Path, str], tmp_path: Path
) -> None:
    path, role = case
    config = copy.deepcopy(llmisvc.load(path))
    main = next(c for c in config["spec"]["template"]["containers"] if c["name"] == LLM_CONTAINER)
    assert main["command"][2].endswith('"$@"')
    main["command"][2] = main["command"][2][: -len('"$@"')] + "$@"
    bare = launch(llmisvc.build_pod(config, role=role), LLM_CONTAINER, tmp_path / "bare")
    loaded = llmisvc.build_pod(config, role=role, user_args=HOSTILE_ARGS)
    assert launch(loaded, LLM_CONTAINER, tmp_path / "before") != [*bare, *HOSTILE_ARGS]
    repaired = _repaired(loaded)
    assert launch(repaired, LLM_CONTAINER, tmp_path / "after") == [*bare, *HOSTILE_ARGS]
    assert admit(repaired).patch == ()


# KServe's user-side LLMInferenceServiceConfig samples (docs/samples/llmisvc).
SAMPLES = sorted((llmisvc.CORPUS / "samples").glob("*.yaml"))
SCRIPT_SAMPLES = [p for p in SAMPLES if "command" in str(llmisvc.load(p)["spec"])]
PD_SAMPLES = [p for p in SAMPLES if p not in SCRIPT_SAMPLES]


def test_the_samples_are_in_the_corpus() -> None:
    assert SCRIPT_SAMPLES, f"no sample with a script of its own under {llmisvc.CORPUS}/samples"
    assert PD_SAMPLES, f"no prefill/decode sample under {llmisvc.CORPUS}/samples"


@pytest.mark.parametrize("path", SCRIPT_SAMPLES, ids=lambda p: p.name)
def test_a_sample_whose_script_the_args_replace_is_explained(path: Path) -> None:
    config = llmisvc.load(path)
    quiet = admit(llmisvc.build_pod(config, role="leader"))
    assert (quiet.action, quiet.reason, quiet.patch, quiet.warnings) == (
        Action.UNCHANGED,
        Reason.NOT_A_TARGET,
        (),
        (),
    )
    pod = llmisvc.build_pod(config, role="leader", user_args=["--max-model-len=4096"])
    decision = admit(pod)
    assert (decision.action, decision.reason) == (Action.UNCHANGED, Reason.SCRIPT_REPLACED)
    assert jsonpatch.apply_patch(pod, to_json(decision.patch))["spec"] == pod["spec"]
    assert any("args replaced the preset's script" in w for w in decision.warnings)


def _release(prefix: str) -> list[dict[str, object]]:
    return [llmisvc.load(p) for p in FILES if p.name.startswith(prefix)]


@pytest.mark.parametrize("path", PD_SAMPLES, ids=lambda p: p.name)
def test_a_prefill_decode_sample_on_v0_21_hands_nixl_and_the_args_over_exactly(
    path: Path, tmp_path: Path
) -> None:
    sample = llmisvc.load(path)
    service = {
        "apiVersion": "serving.kserve.io/v1alpha2",
        "kind": "LLMInferenceService",
        "metadata": {"name": "gpt-oss", "namespace": "models"},
        "spec": {
            "baseRefs": [{"name": sample["metadata"]["name"]}],
            "template": {"containers": [{"name": LLM_CONTAINER, "args": WRITTEN}]},
        },
    }
    presets = [*_release("kserve-v0.21.0-rc0-release-manifest-"), sample]
    pods = {p.role: p.pod for p in llmrender.render(service, presets)}
    assert set(pods) == {"single", "prefill"}, set(pods)
    for role, pod in pods.items():
        after = launch(_repaired(pod), LLM_CONTAINER, tmp_path / role)
        consumer = "kv_producer" if role == "prefill" else "kv_consumer"
        nixl = json.dumps(
            {"kv_connector": "NixlConnector", "kv_role": consumer}, separators=(",", ":")
        )
        assert after[after.index("--kv_transfer_config") + 1] == nixl, after
        assert after.count("--kv_transfer_config") == 1
        if role == "single":
            assert after[-len(RECEIVED) :] == RECEIVED
