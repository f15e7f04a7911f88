"""The LLMInferenceService renderer (webhook/offline/llmrender.py) and `preview` of an
LLMInferenceService with its presets: which presets the controller chooses, how it merges them,
what its template rendering gives (against KServe's own controller test data), and for every
preset of every release, what `vllm serve` receives under the real bash, before admission as
the launch report says and after it exactly."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import jsonpatch
import pytest

from tests.support import kubelet, llmisvc
from tests.support.builders import admit
from tests.support.proof import bash_agrees
from webhook.core import kinds, names
from webhook.core.patch import to_json
from webhook.offline import gotemplate, llmrender
from webhook.offline.preview import preview_llm_service


def _preset(name: str, spec: dict[str, Any] | None = None) -> dict[str, Any]:
    return {
        "apiVersion": "serving.kserve.io/v1alpha2",
        "kind": kinds.PRESET_KIND,
        "metadata": {"name": name},
        "spec": spec or {},
    }


def _service(spec: dict[str, Any], name: str = "granite") -> dict[str, Any]:
    return {
        "apiVersion": "serving.kserve.io/v1alpha2",
        "kind": kinds.LLMISVC_KIND,
        "metadata": {"name": name, "namespace": "models"},
        "spec": spec,
    }


DP = {"parallelism": {"data": 2, "dataLocal": 1}}
PRESETS = [
    _preset(f"kserve-config-llm-{suffix}")
    for suffix in (
        "template",
        "worker-data-parallel",
        "decode-template",
        "decode-worker-data-parallel",
        "prefill-template",
        "prefill-worker-data-parallel",
    )
] + [_preset("team-gpu-defaults"), _preset("v0-20-0-kserve-config-llm-template")]


@pytest.mark.parametrize(
    ("spec", "chosen"),
    [
        ({}, ["kserve-config-llm-template"]),
        ({"worker": None}, ["kserve-config-llm-template"]),
        ({"worker": {}, **DP}, ["kserve-config-llm-worker-data-parallel"]),
        (
            {"worker": {}, "parallelism": {"dataLocal": 4}},
            ["kserve-config-llm-worker-data-parallel"],
        ),
        (
            {"prefill": {}},
            ["kserve-config-llm-prefill-template", "kserve-config-llm-decode-template"],
        ),
        (
            {"prefill": {"worker": {}, **DP}, "worker": {}, **DP},
            [
                "kserve-config-llm-prefill-worker-data-parallel",
                "kserve-config-llm-decode-worker-data-parallel",
            ],
        ),
        (
            {"prefill": {"worker": {}, **DP}},
            ["kserve-config-llm-prefill-worker-data-parallel", "kserve-config-llm-decode-template"],
        ),
        (
            {"baseRefs": [{"name": "team-gpu-defaults"}]},
            ["kserve-config-llm-template", "team-gpu-defaults"],
        ),
    ],
)
def test_the_well_known_preset_of_the_shape_then_the_base_refs(
    spec: dict[str, Any], chosen: list[str]
) -> None:
    found = llmrender.chosen_presets(_service(spec), PRESETS)
    assert [p["metadata"]["name"] for p in found] == chosen


def test_a_base_ref_that_adds_a_worker_changes_the_shape() -> None:
    workers = _preset("multi-node", {"worker": {"containers": []}, **DP})
    found = llmrender.chosen_presets(
        _service({"baseRefs": [{"name": "multi-node"}]}), [*PRESETS, workers]
    )
    assert [p["metadata"]["name"] for p in found] == [
        "kserve-config-llm-worker-data-parallel",
        "multi-node",
    ]


def test_a_versioned_preset_name_is_chosen_by_its_suffix() -> None:
    [found] = llmrender.chosen_presets(_service({}), PRESETS[-1:])
    assert found["metadata"]["name"] == "v0-20-0-kserve-config-llm-template"


@pytest.mark.parametrize(
    ("spec", "presets", "error"),
    [
        ({"worker": {}}, PRESETS, "pipeline-parallel preset, which KServe does not ship"),
        ({}, PRESETS[1:2], "takes the preset 'config-llm-template'"),
        ({"baseRefs": [{"name": "nowhere"}]}, PRESETS, "baseRefs names 'nowhere'"),
    ],
)
def test_what_cannot_be_rendered_says_why(
    spec: dict[str, Any], presets: list[dict[str, Any]], error: str
) -> None:
    with pytest.raises(llmrender.LLMRenderError, match=error):
        llmrender.chosen_presets(_service(spec), presets)


@pytest.mark.parametrize(
    ("base", "override", "merged"),
    [
        # Containers merge by name; args and command are replaced whole.
        (
            {"containers": [{"name": "main", "args": ["a", "b"], "image": "i"}]},
            {"containers": [{"name": "main", "args": ["c"]}]},
            {"containers": [{"name": "main", "args": ["c"], "image": "i"}]},
        ),
        (
            {"containers": [{"name": "main"}]},
            {"containers": [{"name": "side", "image": "s"}]},
            {"containers": [{"name": "main"}, {"name": "side", "image": "s"}]},
        ),
        # env merges by name, volumeMounts by mountPath, ports by containerPort.
        (
            {"env": [{"name": "A", "value": "1"}, {"name": "B", "value": "2"}]},
            {"env": [{"name": "B", "value": "3"}]},
            {"env": [{"name": "A", "value": "1"}, {"name": "B", "value": "3"}]},
        ),
        (
            {"volumeMounts": [{"name": "x", "mountPath": "/m"}]},
            {"volumeMounts": [{"name": "y", "mountPath": "/m"}]},
            {"volumeMounts": [{"name": "y", "mountPath": "/m"}]},
        ),
        # Any other list is replaced; maps merge key by key.
        (
            {"tolerations": [{"key": "a"}]},
            {"tolerations": [{"key": "b"}]},
            {"tolerations": [{"key": "b"}]},
        ),
        (
            {"model": {"uri": "u", "name": "n"}},
            {"model": {"name": "m"}},
            {"model": {"uri": "u", "name": "m"}},
        ),
    ],
)
def test_the_merge_is_kubernetes_strategic_merge(
    base: dict[str, Any], override: dict[str, Any], merged: dict[str, Any]
) -> None:
    assert llmrender.merge(base, override) == merged
    assert llmrender.merge(base, {}) == base


def test_the_template_sees_the_service_by_its_go_field_names() -> None:
    service = _service({"parallelism": {"data": 4, "dataLocal": 2, "dataRPCPort": 5555}})
    data = llmrender.template_data(service, tls=True)
    text = "{{ .ObjectMeta.Name }} {{ .Spec.Model.Name }} {{ .Spec.Parallelism.DataRPCPort }}"
    assert gotemplate.render(text, data) == "granite granite 5555"  # the model name defaulted
    assert gotemplate.render("{{ ChildName .ObjectMeta.Name `-x` }}", data) == "granite-x"
    long = llmrender.template_data(_service({}, name="n" * 60), tls=True)
    named = gotemplate.render("{{ ChildName .ObjectMeta.Name `-kserve-self-signed-certs` }}", long)
    assert len(named) == 63
    assert named.endswith("-kserve-self-signed-certs")


# KServe's controller test data (pkg/controller/v1alpha2/llmisvc/config_presets_test.go at each
# release): its LLMInferenceServiceSample, its test config, and what ReplaceVariables renders.
SAMPLE = {
    "apiVersion": "serving.kserve.io/v1alpha2",
    "kind": kinds.LLMISVC_KIND,
    "metadata": {"name": "test-llm-preset", "namespace": "test-llm-preset-test"},
    "spec": {
        "model": {"name": "llama", "uri": "llama"},
        "replicas": 2,
        "parallelism": {"data": 4, "dataLocal": 2, "tensor": 1, "expert": True},
    },
}
KSERVE_TEST_CONFIG = {
    "SystemNamespace": "kserve",
    "IngressGatewayName": "kserve-ingress-gateway",
    "IngressGatewayNamespace": "kserve",
    "ModelBasedRoutingHeaderName": "",
}


def _replace_variables(service: dict[str, Any], preset: str) -> dict[str, Any]:
    """KServe's ReplaceVariables of one preset of the corpus over `service`."""
    import json  # noqa: PLC0415

    config = llmisvc.load(llmisvc.CORPUS / preset)
    data = llmrender.template_data(service, tls=False, global_config=KSERVE_TEST_CONFIG)
    spec: dict[str, Any] = json.loads(gotemplate.render(json.dumps(config["spec"]), data))
    return spec


def _container(pod: dict[str, Any], name: str, field: str = "containers") -> dict[str, Any]:
    found: list[dict[str, Any]] = [c for c in pod[field] if c["name"] == name]
    assert len(found) == 1, name
    return found[0]


def test_kserve_v0_20_0_renders_the_routing_sidecar_of_the_decode_workers_as_its_tests_say() -> (
    None
):
    llmisvc.preset_files()  # a skip naming the corpus when it is missing
    spec = _replace_variables(SAMPLE, "kserve-v0.20.0-config-llm-decode-worker-data-parallel.yaml")
    sidecar = _container(spec["template"], "llm-d-routing-sidecar", "initContainers")
    assert sidecar["command"] == [
        "/app/pd-sidecar",
        "--port=8000",
        "--vllm-port=8001",
        "--kv-connector=nixlv2",
        "--enable-ssrf-protection=true",
        "--pool-group=inference.networking.x-k8s.io",
        "--inference-pool=test-llm-preset-test/test-llm-preset-inference-pool",
        "--secure-proxy=false",
        "",
        "",
        "",
    ]
    [tls] = [v for v in spec["template"]["volumes"] if v["name"] == "tls-certs"]
    assert tls["secret"]["secretName"] == "test-llm-preset-kserve-self-signed-certs"


def test_kserve_v0_17_0_renders_the_single_node_preset_as_its_tests_say() -> None:
    llmisvc.preset_files()
    spec = _replace_variables(SAMPLE, "kserve-v0.17.0-config-llm-template.yaml")
    main = _container(spec["template"], names.LLM_CONTAINER)
    # Its expectation is checked with DeepDerivative, for which a list given is a prefix.
    assert main["command"][:3] == ["vllm", "serve", "/mnt/models"]
    assert "--served-model-name" in main["command"]
    assert main["image"] == "ghcr.io/llm-d/llm-d-cuda:v0.4.0"
    [tls] = [v for v in spec["template"]["volumes"] if v["name"] == "tls-certs"]
    assert tls["secret"]["secretName"] == "test-llm-preset-kserve-self-signed-certs"


@pytest.mark.parametrize(
    ("preset", "spec", "flag"),
    [
        ("config-llm-template", {"parallelism": {"tensor": 2}}, "--tensor-parallel-size 2"),
        ("config-llm-decode-template", {"parallelism": {"tensor": 4}}, "--tensor-parallel-size 4"),
        (
            "config-llm-prefill-template",
            {"prefill": {"parallelism": {"tensor": 2}}},
            "--tensor-parallel-size 2",
        ),
        ("config-llm-template", {}, None),
    ],
)
def test_kserve_v0_20_0_renders_tensor_parallelism_on_a_single_node_as_its_tests_say(
    preset: str, spec: dict[str, Any], flag: str | None
) -> None:
    llmisvc.preset_files()
    service = _service({"model": {"name": "model"}, **spec}, name="test")
    rendered = _replace_variables(service, f"kserve-v0.20.0-{preset}.yaml")
    workload = rendered["prefill"] if "prefill" in spec else rendered
    command = " ".join(workload["template"]["containers"][0]["command"])
    if flag is None:
        assert "--tensor-parallel-size" not in command
    else:
        assert flag in command


# Every preset of a release is chosen by one of these shapes.
SHAPES: dict[str, dict[str, Any]] = {
    "single": {},
    "multi-node": {"worker": {}},
    "prefill-decode": {"prefill": {}},
    "prefill-decode-multi-node": {"prefill": {"worker": {}}, "worker": {}},
}
LEADER_ARGS = [
    "--served-model-name=my model",
    "--kv-transfer-config",
    '{"kv_connector":"NixlConnector","kv_role":"kv_both"}',
    '\'{"name":"adapter","path":"/mnt/lora/adapter"}\'',
    "--x=$(python3 -c ran)",
    "*",
    "",
    "ünïcødé ✓",
    "--semi=a;b",
    "#not-a-comment",
]
WORKER_ARGS = ["--enforce-eager", "a b"]


def _releases() -> list[str]:
    if not llmisvc.CORPUS.is_dir():
        return []
    return sorted({p.name.split("-config-llm-")[0] for p in llmisvc.preset_files()})


# A service with parallelism, and one with none but what a worker needs to be data-parallel
# (the controller chooses no shipped preset for a worker without it).
PARALLELISM: dict[str, dict[str, Any] | None] = {
    "parallel": {"data": 2, "dataLocal": 1, "tensor": 1},
    "least": None,
}


def _shaped(shape: str, parallelism: dict[str, Any] | None) -> dict[str, Any]:
    """A service of the shape, its leaders given LEADER_ARGS and its workers WORKER_ARGS."""
    spec = copy.deepcopy(SHAPES[shape])
    for workload in (spec, spec.get("prefill")):
        if workload is None:
            continue
        if parallelism is not None:
            workload["parallelism"] = dict(parallelism)
        elif "worker" in workload:
            workload["parallelism"] = {"data": 2}
        workload["template"] = {"containers": [{"name": names.LLM_CONTAINER, "args": LEADER_ARGS}]}
        if "worker" in workload:
            workload["worker"] = {
                "containers": [{"name": names.LLM_CONTAINER, "args": WORKER_ARGS}]
            }
    return _service(spec)


@pytest.mark.parametrize("parallelism", PARALLELISM)
@pytest.mark.parametrize("release", _releases())
def test_every_preset_of_a_release_renders_and_delivers_what_the_report_says(
    release: str, parallelism: str, tmp_path: Path
) -> None:
    presets = [llmisvc.load(p) for p in llmisvc.preset_files() if p.name.startswith(release + "-")]
    used: set[str] = set()
    for shape in SHAPES:
        service = _shaped(shape, PARALLELISM[parallelism])
        results = preview_llm_service(service, presets)
        pods = {p.role: p for p in llmrender.render(service, presets)}
        assert [r["rendered_from"] for r in results] == [
            f"LLMInferenceService/granite ({role})" for role in pods
        ]
        for result, (role, rendered) in zip(results, pods.items(), strict=True):
            used.update(rendered.presets)
            given = WORKER_ARGS if role.endswith("worker") else LEADER_ARGS
            [launch] = result["launch"]
            assert [a["arg"] for a in launch["args"]] == given, role
            work = tmp_path / shape / role
            before = kubelet.run(
                rendered.pod,
                names.LLM_CONTAINER,
                work / "before",
                check=False,
                added=llmisvc.LWS_ENV,
            )
            for arg in launch["args"]:
                assert bash_agrees(arg["before"], arg["arg"], before), (shape, role, arg, before)
            decision = admit(rendered.pod)
            after = (
                jsonpatch.apply_patch(rendered.pod, to_json(decision.patch))
                if decision.patch
                else rendered.pod
            )
            assert after == result["object"]
            if result["reason"] == "script-replaced":
                continue  # never rewritten: the fix is at the source (the warning says how)
            calls = kubelet.run(after, names.LLM_CONTAINER, work / "after", added=llmisvc.LWS_ENV)
            [server] = [call for call in calls if call[:2] == ["vllm", "serve"]]
            delivered = _container(after["spec"], names.LLM_CONTAINER).get("args", [])
            assert any(server[i : i + len(delivered)] == delivered for i in range(len(server))), (
                shape,
                role,
                server,
            )
            assert {a["after"] for a in launch["args"]} == {"exact"}, (shape, role)
    assert len(used) == 6, sorted(used)  # every preset of the release was chosen once at least
