"""Policy mode end to end: `multinode-webhook policy` applied to a real kube-apiserver with no
webhook registered; the pods it repairs stored as the webhook would make them, argv exact
under bash; the others stored unchanged; `check` and `check --audit` reporting it."""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path
from typing import Any

import httpx
import jsonpatch
import pytest
import yaml

from tests.support import kserve, llmisvc
from tests.support.builders import EXAMPLES, admit
from tests.support.cli import cli
from tests.support.envtest import ENVTEST, Cluster, kubeconfig_for, stand_in_crd, started
from tests.support.poll import wait
from tests.support.proof import launch
from webhook.core import names
from webhook.core.model import Context
from webhook.core.names import Inject
from webhook.core.patch import to_json
from webhook.inspect.installed_policies import pod_shapes

pytestmark = ENVTEST

ADMISSION = "/apis/admissionregistration.k8s.io/v1"
ARGS = ["--served-model-name=my model", "*", "", "$(id)", "a;b"]
LORA = '{"name": "sql", "path": "/mnt/lora/sql"}'
JSON_ARGS = [
    "--kv-transfer-config",
    '{"kv_connector":"NixlConnector","kv_role":"kv_both"}',
    "--lora-modules",
    f"'{LORA}'",
]
# What vLLM receives: the JSON as written, the LoRA module without the quotes eval removed.
JSON_DELIVERED = [*JSON_ARGS[:3], LORA]


def _namespace(client: httpx.Client, name: str, labels: dict[str, str]) -> None:
    body = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name, "labels": labels}}
    assert client.post("/api/v1/namespaces", json=body).status_code in (201, 409)


def _create(
    client: httpx.Client, namespace: str, pod: dict[str, Any], name: str, *, dry_run: bool = False
) -> dict[str, Any]:
    body = copy.deepcopy(pod)
    body["metadata"] = {**body["metadata"], "name": name, "namespace": namespace}
    reply = client.post(
        f"/api/v1/namespaces/{namespace}/pods",
        json=body,
        params={"dryRun": "All"} if dry_run else {},
    )
    assert reply.status_code == 201, reply.text
    created: dict[str, Any] = reply.json()
    return created


def _install(
    client: httpx.Client, objects: list[dict[str, Any]], namespace: str, probe: dict[str, Any]
) -> None:
    """The policy objects in place of the webhook, in force once `probe` is repaired in the
    (opted-in) namespace."""
    client.delete(f"{ADMISSION}/mutatingwebhookconfigurations/multinode-webhook")
    _namespace(client, namespace, {names.INJECT_LABEL: Inject.ENABLED})
    for item in objects:
        if item["kind"] == "MutatingAdmissionPolicy":
            # Fail, not Ignore, while tested: a CEL error would otherwise pass silently.
            item["spec"]["failurePolicy"] = "Fail"
        client.delete(f"{ADMISSION}/{PLURALS[item['kind']]}/{item['metadata']['name']}")
        reply = client.post(f"{ADMISSION}/{PLURALS[item['kind']]}", json=item)
        assert reply.status_code == 201, reply.text[:500]

    def repaired() -> bool:
        stored = _create(client, namespace, probe, "probe", dry_run=True)
        return names.STATUS_ANNOTATION in stored["metadata"].get("annotations", {})

    wait(repaired, "the policies to be in force")


def _wait_repaired(client: httpx.Client, namespace: str, pod: dict[str, Any], name: str) -> None:
    """Until a dry run of the pod's create comes back repaired."""

    def repaired() -> bool:
        stored = _create(client, namespace, pod, name, dry_run=True)
        return names.STATUS_ANNOTATION in stored["metadata"].get("annotations", {})

    wait(repaired, f"the policy of {name} to be in force")


def _uninstall(client: httpx.Client, objects: list[dict[str, Any]]) -> None:
    for item in objects:
        client.delete(f"{ADMISSION}/{PLURALS[item['kind']]}/{item['metadata']['name']}")


def _pods() -> dict[str, tuple[dict[str, Any], str]]:
    """The pods of the test, by what they stand for, with their target container."""
    legacy = yaml.safe_load((EXAMPLES / "legacy-servingruntime.yaml").read_text())
    [postfix] = kserve.load_runtimes(
        kserve.CORPUS / "v0.20.0-kserve-huggingfaceserver-multinode.yaml"
    )
    preset = llmisvc.load(llmisvc.CORPUS / "kserve-v0.20.0-config-llm-worker-data-parallel.yaml")
    return {
        "legacy": (kserve.build_pod(legacy, role="head", user_args=ARGS), names.HEAD_CONTAINER),
        "postfix": (kserve.build_pod(postfix, role="head", user_args=ARGS), names.HEAD_CONTAINER),
        "leader": (llmisvc.build_pod(preset, role="leader", user_args=ARGS), names.LLM_CONTAINER),
    }


def test_a_compiled_policy_repairs_known_pods_with_no_webhook(
    cluster: Cluster, tmp_path: Path
) -> None:
    if not kserve.CORPUS.is_dir() or not llmisvc.CORPUS.is_dir():
        pytest.skip("the shared corpus is needed for the runtimes of this test")
    pods = _pods()
    policy, binding = _compiled(pods, tmp_path)
    kubeconfig = kubeconfig_for(cluster, tmp_path / "kubeconfig")
    with cluster.client() as client:
        client.delete(f"{ADMISSION}/mutatingwebhookconfigurations/multinode-webhook")
        _namespace(client, "pol", {names.INJECT_LABEL: Inject.ENABLED})
        _namespace(client, "pol-plain", {})
        # Fail, not Ignore, while tested: a CEL error would otherwise pass silently.
        policy["spec"]["failurePolicy"] = "Fail"
        for plural, body in (
            ("mutatingadmissionpolicies", policy),
            ("mutatingadmissionpolicybindings", binding),
        ):
            client.delete(f"{ADMISSION}/{plural}/{body['metadata']['name']}")
            reply = client.post(f"{ADMISSION}/{plural}", json=body)
            assert reply.status_code == 201, reply.text
        try:
            probe, _ = pods["legacy"]
            wait(
                lambda: (
                    names.STATUS_ANNOTATION
                    in _create(client, "pol", probe, "probe", dry_run=True)["metadata"].get(
                        "annotations", {}
                    )
                ),
                "the policy to be applied",
            )
            for what, (pod, container) in pods.items():
                stored = _create(client, "pol", pod, what)
                decision = admit(pod, context=Context(namespace="pol"))
                expected = jsonpatch.apply_patch(pod, to_json(decision.patch))
                for field in ("command", "args"):
                    assert [c.get(field) for c in stored["spec"]["containers"]] == [
                        c.get(field) for c in expected["spec"]["containers"]
                    ], (what, field)
                assert (
                    stored["metadata"]["annotations"][names.STATUS_ANNOTATION]
                    == (expected["metadata"]["annotations"][names.STATUS_ANNOTATION])
                )
                argv = launch(stored, container, tmp_path / what, added=llmisvc.LWS_ENV)
                assert argv[-len(ARGS) :] == ARGS, (what, argv)
                plain = _create(client, "pol-plain", pod, what)
                assert plain["spec"]["containers"] == _defaulted(stored, pod)
            opted = copy.deepcopy(pods["legacy"][0])
            opted["metadata"]["labels"][names.INJECT_LABEL] = names.POD_OPT_OUT
            kept = _create(client, "pol", opted, "opted-out")
            assert names.STATUS_ANNOTATION not in kept["metadata"].get("annotations", {})

            # A runtime changed after the policy was compiled: its pods slip through.
            edited = copy.deepcopy(pods["legacy"][0])
            edited["spec"]["containers"][0]["args"][0] += "# edited\n"
            slipped = _create(client, "pol", edited, "edited")
            assert names.STATUS_ANNOTATION not in slipped["metadata"].get("annotations", {})
            # JSON args and a LoRA module quoted for eval, as KServe v0.19+ writes it: unwrapped
            # by kube-apiserver's CEL as the webhook unwraps them, every arg exact under bash.
            quoted = copy.deepcopy(pods["leader"][0])
            quoted["spec"]["containers"][0]["args"] = JSON_ARGS
            stored = _create(client, "pol", quoted, "quoted")
            expected = jsonpatch.apply_patch(
                quoted, to_json(admit(quoted, context=Context(namespace="pol")).patch)
            )
            assert (
                stored["spec"]["containers"][0]["args"]
                == (expected["spec"]["containers"][0]["args"])
            )
            assert (
                stored["metadata"]["annotations"][names.STATUS_ANNOTATION]
                == (expected["metadata"]["annotations"][names.STATUS_ANNOTATION])
            )
            argv = launch(stored, names.LLM_CONTAINER, tmp_path / "quoted", added=llmisvc.LWS_ENV)
            assert argv[-len(JSON_DELIVERED) :] == JSON_DELIVERED, argv
            # A leader with a newline in an arg: the policy leaves it to the (absent) webhook.
            newline = copy.deepcopy(pods["leader"][0])
            newline["spec"]["containers"][0]["args"] = ["--chat-template=a\nb"]
            skipped = _create(client, "pol", newline, "newline")
            assert names.STATUS_ANNOTATION not in skipped["metadata"].get("annotations", {})

            _check_reports_the_policy(kubeconfig)
            _compiled_from_the_cluster(client, pods["leader"][0], kubeconfig)
        finally:
            for plural, body in (
                ("mutatingadmissionpolicybindings", binding),
                ("mutatingadmissionpolicies", policy),
            ):
                client.delete(f"{ADMISSION}/{plural}/{body['metadata']['name']}")


def _compiled(pods: dict[str, tuple[dict[str, Any], str]], tmp_path: Path) -> list[Any]:
    """`multinode-webhook policy` of the pods as their runtimes make them, with no user args."""
    sources = []
    for what, (pod, _) in pods.items():
        bare = copy.deepcopy(pod)
        for container in bare["spec"]["containers"]:
            container["args"] = container.get("args", [])[: 1 if what == "legacy" else 0]
        path = tmp_path / f"{what}.yaml"
        path.write_text(yaml.safe_dump(bare))
        sources.append(str(path))
    compiled = cli("policy", *sources, "--explain")
    assert compiled.returncode == 0, compiled.stderr
    objects: list[Any] = list(yaml.safe_load_all(compiled.stdout))
    return objects


def _compiled_from_the_cluster(
    client: httpx.Client, leader: dict[str, Any], kubeconfig: Path
) -> None:
    """`policy --from-cluster` reads the Deployment KServe made for a single-node
    LLMInferenceService (the runtimes' and LeaderWorkerSets' kinds are not served here)."""
    selector = {"app.kubernetes.io/name": "granite"}
    labels = {**leader["metadata"]["labels"], **selector}
    deployment = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "granite-kserve", "labels": labels},
        "spec": {
            "selector": {"matchLabels": selector},
            "template": {"metadata": {"labels": labels}, "spec": leader["spec"]},
        },
    }
    reply = client.post("/apis/apps/v1/namespaces/pol-plain/deployments", json=deployment)
    assert reply.status_code == 201, reply.text
    done = cli("policy", "--from-cluster", "--kubeconfig", str(kubeconfig), "--explain")
    assert done.returncode == 0, done.stderr
    assert "covered: cluster pol-plain/granite-kserve: Deployment/granite-kserve main" in (
        done.stderr
    )
    # Other tests may have left runtimes in the shared API server: their scripts count too.
    assert re.search(r"policy multinode-webhook: \d+ scripts?; largest CEL expression", done.stderr)


def _check_reports_the_policy(kubeconfig: Path) -> None:
    report = cli("check", "--kubeconfig", str(kubeconfig), "--namespace", "pol")
    assert report.returncode == 0, report.stdout
    assert "the compiled policies alone repair pods" in report.stdout
    assert "MutatingAdmissionPolicy multinode-webhook: 3 scripts" in report.stdout
    assert "namespaces the policy repairs: pol" in report.stdout
    flags = ["--kubeconfig", str(kubeconfig), "--namespace", "pol", "-o", "json"]
    found = cli("check", "--audit", *flags)
    assert found.returncode == 1, found.stdout + found.stderr
    audit = json.loads(found.stdout)
    assert audit["uncoveredScripts"] == [{"namespace": "pol", "pod": "edited"}]
    # Recreating the newline leader would make the same pod: no restart is offered for it.
    assert audit["policySkipped"] == [{"namespace": "pol", "pod": "newline"}]
    assert audit["owners"] == []
    text = cli("check", "--audit", *flags[:-2])
    assert "!! Pod pol/newline: the installed policy leaves it to the webhook" in text.stdout
    assert "delete pod newline" not in text.stdout


def _defaulted(stored: dict[str, Any], pod: dict[str, Any]) -> list[dict[str, Any]]:
    """The containers of `pod` as the API server stored them, before any repair: `stored`'s
    defaults, `pod`'s command and args."""
    containers: list[dict[str, Any]] = copy.deepcopy(stored["spec"]["containers"])
    for container, original in zip(containers, pod["spec"]["containers"], strict=True):
        for field in ("command", "args"):
            container.pop(field, None)
            if field in original:
                container[field] = original[field]
    return containers


PLURALS = {
    "MutatingAdmissionPolicy": "mutatingadmissionpolicies",
    "MutatingAdmissionPolicyBinding": "mutatingadmissionpolicybindings",
}


def test_a_policy_too_large_for_one_object_is_split_and_every_part_is_accepted(
    cluster: Cluster, tmp_path: Path
) -> None:
    """Every shipped preset's workload pods compiled at once: one policy would hold a CEL
    expression several times kube-apiserver's limit; split, every part is accepted, and a
    script of the last part still repairs its pod as the webhook does."""
    if not llmisvc.CORPUS.is_dir():
        pytest.skip(f"shared LLM preset corpus not found at {llmisvc.CORPUS}")
    workloads = [
        (config, role, llmisvc.build_pod(config, role=role))
        for config in map(llmisvc.load, llmisvc.preset_files())
        for role in llmisvc.roles(config)
    ]
    source = tmp_path / "pods.yaml"
    source.write_text(yaml.safe_dump_all([pod for _, _, pod in workloads]))
    compiled = cli("policy", str(source), "--explain")
    assert compiled.returncode in (0, 1), compiled.stderr
    objects = list(yaml.safe_load_all(compiled.stdout))
    policies = [o for o in objects if o["kind"] == "MutatingAdmissionPolicy"]
    explained = [line for line in compiled.stderr.splitlines() if line.startswith("policy ")]
    assert len(policies) == len(explained) > 1
    last = set(json.loads(policies[-1]["metadata"]["annotations"][names.POLICY_SHAPES_ANNOTATION]))
    config, role, _ = next(w for w in workloads if set(pod_shapes(w[2])) & last)
    pod = llmisvc.build_pod(config, role=role, user_args=ARGS)
    expected = jsonpatch.apply_patch(
        pod, to_json(admit(pod, context=Context(namespace="split")).patch)
    )
    with cluster.client() as client:
        _namespace(client, "split", {names.INJECT_LABEL: Inject.ENABLED})
        try:
            for item in objects:
                reply = client.post(f"{ADMISSION}/{PLURALS[item['kind']]}", json=item)
                assert reply.status_code == 201, reply.text[:500]

            def repaired() -> bool:
                stored = _create(client, "split", pod, "probe", dry_run=True)
                return names.STATUS_ANNOTATION in stored["metadata"].get("annotations", {})

            wait(repaired, "the last policy to be in force")
            stored = _create(client, "split", pod, "leader")
        finally:
            for item in objects:
                client.delete(f"{ADMISSION}/{PLURALS[item['kind']]}/{item['metadata']['name']}")
    [target] = [c for c in stored["spec"]["containers"] if c["name"] == names.LLM_CONTAINER]
    [wanted] = [c for c in expected["spec"]["containers"] if c["name"] == names.LLM_CONTAINER]
    assert (target["command"], target.get("args")) == (wanted["command"], wanted.get("args"))
    annotations = stored["metadata"]["annotations"]
    assert (
        annotations[names.STATUS_ANNOTATION]
        == expected["metadata"]["annotations"][names.STATUS_ANNOTATION]
    )


# Two services no policy was compiled from: every value the presets write differs.
NEW_SERVICES = (
    llmisvc.LLAMA,
    llmisvc.Identity(
        name="qwen-coder",
        namespace="pol-presets",
        model="Qwen/Qwen2.5-Coder-7B",
        parallelism={"data": 4, "dataLocal": 2, "tensor": 1, "expert": False, "dataRPCPort": 0},
    ),
)
RELEASE = "kserve-master-aaac4e294"


def test_a_policy_compiled_from_a_release_presets_repairs_services_made_after_it(
    cluster: Cluster, tmp_path: Path
) -> None:
    """Every preset of one release compiled into policies kube-apiserver accepts; the leader
    and worker pods of two LLMInferenceServices that did not exist then are stored as the
    webhook makes them, and every JSON and pre-quoted LoRA arg reaches `vllm serve` exactly
    under bash; `check` names the presets, and `check --audit` knows the pods."""
    if not llmisvc.CORPUS.is_dir():
        pytest.skip(f"shared LLM preset corpus not found at {llmisvc.CORPUS}")
    files = [p for p in llmisvc.preset_files() if p.name.startswith(RELEASE)]
    compiled = cli("policy", *map(str, files), "--explain")
    assert compiled.returncode == 0, compiled.stderr
    objects = list(yaml.safe_load_all(compiled.stdout))
    kubeconfig = kubeconfig_for(cluster, tmp_path / "kubeconfig")
    config = llmisvc.load(llmisvc.CORPUS / f"{RELEASE}-config-llm-worker-data-parallel.yaml")
    with cluster.client() as client:
        probe = llmisvc.build_pod(config, role="leader", user_args=JSON_ARGS)
        _install(client, objects, "pol-presets", probe)
        try:
            for identity in NEW_SERVICES:
                for role in ("leader", "worker"):
                    pod = llmisvc.build_pod(
                        config, role=role, user_args=[*ARGS, *JSON_ARGS], identity=identity
                    )
                    name = f"{identity.name}-{role}"
                    # Each of the split policies comes into force on its own: the probe's
                    # being in force says nothing of the one that holds this pod's preset.
                    _wait_repaired(client, "pol-presets", pod, name)
                    stored = _create(client, "pol-presets", pod, name)
                    expected = jsonpatch.apply_patch(
                        pod, to_json(admit(pod, context=Context(namespace="pol-presets")).patch)
                    )
                    [main] = stored["spec"]["containers"]
                    [wanted] = expected["spec"]["containers"]
                    assert (main["command"], main.get("args")) == (
                        wanted["command"],
                        wanted.get("args"),
                    ), name
                    assert (
                        stored["metadata"]["annotations"][names.STATUS_ANNOTATION]
                        == expected["metadata"]["annotations"][names.STATUS_ANNOTATION]
                    )
                    argv = launch(
                        stored, names.LLM_CONTAINER, tmp_path / name, added=llmisvc.LWS_ENV
                    )
                    delivered = [*ARGS, *JSON_DELIVERED]
                    assert argv[-len(delivered) :] == delivered, (name, argv)
            report = cli("check", "--kubeconfig", str(kubeconfig), "--namespace", "pol-presets")
            assert report.returncode == 0, report.stdout
            assert ": 9 preset scripts (compiled by " in report.stdout
            assert (
                f"{files[-1].name}: LLMInferenceServiceConfig/kserve-config-llm-worker-data-"
                "parallel: its spec.template, spec.worker pods, for every LLMInferenceService"
            ) in report.stdout
            found = cli(
                "check",
                "--audit",
                "--kubeconfig",
                str(kubeconfig),
                "--namespace",
                "pol-presets",
                "-o",
                "json",
            )
            audit = json.loads(found.stdout)
            assert audit["uncoveredScripts"] == [], audit
            _presets_compiled_from_the_cluster(client, files, objects, kubeconfig)
        finally:
            _uninstall(client, objects)


def test_policy_from_a_cluster_with_nothing_to_compile_says_so(tmp_path: Path) -> None:
    """A fresh API server of its own: the shared one holds what earlier tests left."""
    (tmp_path / "envtest").mkdir()
    for cluster in started(tmp_path / "envtest"):
        kubeconfig = kubeconfig_for(cluster, tmp_path / "kubeconfig")
        empty = cli("policy", "--from-cluster", "--kubeconfig", str(kubeconfig))
        assert empty.returncode == 2, empty.stderr
        assert "are KServe's CRDs installed?" in empty.stderr


V0_21 = "kserve-v0.21.0-rc0-release-manifest"


def test_a_policy_compiled_from_v0_21_stores_a_decode_leader_with_nixl_in_one_word(
    cluster: Cluster, tmp_path: Path
) -> None:
    """KServe v0.21's presets (guarded `and` values, NIXL's `--kv-transfer-config` JSON added
    by the decode script) compile; a decode leader stored through the policy alone gets the
    user's args exactly and the NIXL JSON as one word under bash."""
    if not llmisvc.CORPUS.is_dir():
        pytest.skip(f"shared LLM preset corpus not found at {llmisvc.CORPUS}")
    files = [p for p in llmisvc.preset_files() if p.name.startswith(V0_21)]
    compiled = cli("policy", *map(str, files))
    assert compiled.returncode == 0, compiled.stderr
    objects = list(yaml.safe_load_all(compiled.stdout))
    config = llmisvc.load(llmisvc.CORPUS / f"{V0_21}-config-llm-decode-worker-data-parallel.yaml")
    with cluster.client() as client:
        probe = llmisvc.build_pod(config, role="leader", user_args=ARGS)
        _install(client, objects, "pol-v021", probe)
        try:
            pod = llmisvc.build_pod(config, role="leader", user_args=ARGS)
            stored = _create(client, "pol-v021", pod, "decode-leader")
            expected = jsonpatch.apply_patch(
                pod, to_json(admit(pod, context=Context(namespace="pol-v021")).patch)
            )
            [main] = stored["spec"]["containers"]
            [wanted] = expected["spec"]["containers"]
            assert (main["command"], main.get("args")) == (wanted["command"], wanted.get("args"))
            argv = launch(stored, names.LLM_CONTAINER, tmp_path / "leader", added=llmisvc.LWS_ENV)
            assert argv[-len(ARGS) :] == ARGS, argv
            nixl = '{"kv_connector":"NixlConnector","kv_role":"kv_consumer"}'
            assert argv[argv.index("--kv-transfer-config") + 1] == nixl, argv
        finally:
            _uninstall(client, objects)


def _digests(objects: list[Any]) -> set[str]:
    return {
        digest
        for item in objects
        if item["kind"] == "MutatingAdmissionPolicy"
        for digest in json.loads(item["metadata"]["annotations"][names.POLICY_SHAPES_ANNOTATION])
    }


def _presets_compiled_from_the_cluster(
    client: httpx.Client, files: list[Path], objects: list[Any], kubeconfig: Path
) -> None:
    """`policy --from-cluster` reads the presets the cluster holds and compiles (among the
    rest of the cluster's scripts) those the files compiled into."""
    stand_in_crd(
        client,
        group="serving.kserve.io",
        kind="LLMInferenceServiceConfig",
        plural="llminferenceserviceconfigs",
        version="v1alpha2",
    )
    path = "/apis/serving.kserve.io/v1alpha2/namespaces/pol-presets/llminferenceserviceconfigs"
    created = []
    try:
        for file in files:
            preset = llmisvc.load(file)
            preset["apiVersion"] = "serving.kserve.io/v1alpha2"
            reply = client.post(path, json=preset)
            assert reply.status_code == 201, reply.text[:500]
            created.append(preset["metadata"]["name"])
        done = cli("policy", "--from-cluster", "--kubeconfig", str(kubeconfig), "--explain")
        assert done.returncode == 0, done.stderr
        # The cluster may hold other tests' runtimes and workloads too.
        assert _digests(objects) <= _digests(list(yaml.safe_load_all(done.stdout)))
        assert (
            "covered: cluster pol-presets/kserve-config-llm-template: LLMInferenceServiceConfig/"
            "kserve-config-llm-template template main"
        ) in done.stderr
    finally:
        for name in created:
            client.delete(f"{path}/{name}")
