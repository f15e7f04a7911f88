"""The kustomize install: every overlay renders, validates against Kubernetes schemas, says what
the code says (labels, names, paths), and its CEL conditions select exactly the legacy pods."""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

import celpy
import kubernetes_validate
import kubernetes_validate.utils
import pytest
import yaml
from celpy.adapter import json_to_cel

from tests.support import kserve, llmisvc
from tests.support.builders import REPO, TESTDATA, admit
from tests.support.install import DEPLOY, OPTIONAL, OVERLAYS, render, user_overlay, workload_pods
from tests.support.positional import CASES, case_pod
from webhook import __version__
from webhook.adapters import certs
from webhook.adapters.config import Settings
from webhook.core import names
from webhook.core.names import Inject, Mode
from webhook.inspect.selectors import label_selector_matches
from webhook.offline.policy import compile_shapes, policy_objects

# The newest Kubernetes whose schemas the installed kubernetes-validate ships.
KUBERNETES_VERSION = kubernetes_validate.utils.latest_version()
CRD_KINDS = {"Issuer", "Certificate", "ServiceMonitor", "PrometheusRule"}
NAMESPACE = "multinode-webhook"
# How long kube-apiserver's webhook client keeps an idle connection (Go's http.DefaultTransport).
API_SERVER_IDLE_SECONDS = 90

pytestmark = pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl is not installed")


def one(objects: list[dict[str, Any]], kind: str, name: str | None = None) -> dict[str, Any]:
    [found] = [
        o for o in objects if o["kind"] == kind and (name is None or o["metadata"]["name"] == name)
    ]
    return found


@pytest.fixture(scope="module", params=OVERLAYS)
def overlay(request: pytest.FixtureRequest) -> tuple[str, list[dict[str, Any]]]:
    return request.param, render(DEPLOY / "overlays" / request.param)


@pytest.fixture(scope="module")
def with_components(tmp_path_factory: pytest.TempPathFactory) -> list[dict[str, Any]]:
    folder = tmp_path_factory.mktemp("components")
    (folder / "kustomization.yaml").write_text(
        yaml.safe_dump(
            {
                "apiVersion": "kustomize.config.k8s.io/v1beta1",
                "kind": "Kustomization",
                "resources": [os.path.relpath(DEPLOY / "overlays" / "opt-in", folder)],
                "components": [
                    os.path.relpath(DEPLOY / "components" / c, folder) for c in OPTIONAL
                ],
            }
        )
    )
    return render(folder)


def _validate(objects: list[dict[str, Any]]) -> None:
    for obj in objects:
        try:
            kubernetes_validate.validate(obj, KUBERNETES_VERSION, strict=True)
        except kubernetes_validate.SchemaNotFoundError:
            assert obj["kind"] in CRD_KINDS, f"no schema for {obj['kind']}"


def test_every_object_validates(overlay: tuple[str, list[dict[str, Any]]]) -> None:
    _validate(overlay[1])


def test_optional_components_render_and_validate(with_components: list[dict[str, Any]]) -> None:
    _validate(with_components)
    policy = one(with_components, "NetworkPolicy")
    assert {p["port"] for rule in policy["spec"]["ingress"] for p in rule["ports"]} == {8443, 8080}
    # Warm start and Events, on by default, reach the API server (by its address: no DNS).
    egress = {
        (p["protocol"], p["port"]) for rule in policy["spec"]["egress"] for p in rule["ports"]
    }
    assert egress == {("TCP", 443), ("TCP", 6443)}
    assert all("to" not in rule for rule in policy["spec"]["egress"])
    assert one(with_components, "ServiceMonitor")["spec"]["endpoints"][0]["port"] == "metrics"
    images = _images(with_components)
    assert "CronJob/multinode-webhook-audit" in images
    assert all(found == {f"multinode-webhook:{__version__}"} for found in images.values()), images


def test_webhook_entries(overlay: tuple[str, list[dict[str, Any]]]) -> None:
    configuration = one(overlay[1], "MutatingWebhookConfiguration")
    entries = configuration["webhooks"]
    assert [e["clientConfig"]["service"]["path"] for e in entries] == [
        "/mutate",
        "/mutate/shadow",
    ] * 2
    for index, entry in enumerate(entries):
        assert entry["clientConfig"]["service"] == {
            **entry["clientConfig"]["service"],
            "name": "multinode-webhook",
            "namespace": NAMESPACE,
            "port": 443,
        }
        assert "caBundle" not in entry["clientConfig"]
        assert entry["rules"] == [
            {
                "operations": ["CREATE"],
                "apiGroups": [""],
                "apiVersions": ["v1"],
                "resources": ["pods"],
                "scope": "Namespaced",
            }
        ]
        assert (entry["admissionReviewVersions"], entry["sideEffects"], entry["failurePolicy"]) == (
            ["v1"],
            "NoneOnDryRun",
            "Ignore",
        )
        assert (entry["timeoutSeconds"], entry["reinvocationPolicy"], entry["matchPolicy"]) == (
            3,
            "IfNeeded",
            "Equivalent",
        )
        kserve = (
            {"key": names.ISVC_LABEL, "operator": "Exists"}
            if index < 2
            else {"key": names.PART_OF_LABEL, "operator": "In", "values": [names.LLMISVC_PART_OF]}
        )
        assert entry["objectSelector"] == {
            "matchExpressions": [
                kserve,
                {"key": names.INJECT_LABEL, "operator": "NotIn", "values": [names.POD_OPT_OUT]},
            ]
        }


NAMESPACES = {
    "enabled": {names.INJECT_LABEL: Inject.ENABLED},
    "shadow": {names.INJECT_LABEL: Inject.SHADOW},
    "disabled": {names.INJECT_LABEL: Inject.DISABLED},
    "plain": {},
    **{name: {} for name in sorted(names.SYSTEM_NAMESPACES)},
}
EXPECTED = {  # namespace -> (mutated, shadowed), per install mode
    Mode.OPT_IN: {"enabled": (True, False), "shadow": (False, True)},
    Mode.CLUSTER_WIDE: {
        "enabled": (True, False),
        "shadow": (False, True),
        "plain": (True, False),
    },
}


def test_namespace_selection(overlay: tuple[str, list[dict[str, Any]]]) -> None:
    name, objects = overlay
    mode = Mode.CLUSTER_WIDE if name == "cluster-wide" else Mode.OPT_IN
    entries = one(objects, "MutatingWebhookConfiguration")["webhooks"]
    own = one(objects, "Namespace")
    namespaces = {**NAMESPACES, NAMESPACE: own["metadata"].get("labels", {})}
    for namespace, own_labels in namespaces.items():
        labels = {**own_labels, "kubernetes.io/metadata.name": namespace}  # set by the API server
        got = tuple(label_selector_matches(entry["namespaceSelector"], labels) for entry in entries)
        # The same for InferenceService pods (entries 0, 1) and LLMInferenceService pods (2, 3).
        assert got == EXPECTED[mode].get(namespace, (False, False)) * 2, (namespace, got)


def _cel(entry: dict[str, Any]) -> list[Any]:
    env = celpy.Environment()
    return [env.program(env.compile(c["expression"])) for c in entry["matchConditions"]]


def _calls(programs: list[Any], pod: dict[str, Any]) -> bool:
    activation = {"object": json_to_cel(pod)}
    return all(bool(program.evaluate(activation)) for program in programs)


def _pod(
    command: Any, *, name: str = names.HEAD_CONTAINER, annotations: dict[str, str] | None = None
) -> dict[str, Any]:
    container: dict[str, Any] = {"name": name, "image": "i"}
    if command is not None:
        container["command"] = command
    metadata: dict[str, Any] = {"name": "p"}
    if annotations is not None:
        metadata["annotations"] = annotations
    return {
        "metadata": metadata,
        "spec": {"containers": [{"name": "sidecar", "image": "s"}, container]},
    }


CEL_CASES = [
    ("head bash -c", _pod(["bash", "-c"]), True),
    *[(f"{shell} -c", _pod([shell, "-c"]), True) for shell in names.SHELL_PATHS],
    ("worker", _pod(["bash", "-c"], name=names.WORKER_CONTAINER), True),
    ("annotated, not mirror", _pod(["bash", "-c"], annotations={"a": "b"}), True),
    ("script in command", _pod(["bash", "-c", "script"]), True),
    ("script and $0 in command", _pod(["bash", "-c", "script", "--"]), True),
    ("bash -lc", _pod(["bash", "-lc", "script"]), True),
    ("options then -c", _pod(["/bin/sh", "-e", "-o", "pipefail", "-c"]), True),
    ("no command", _pod(None), False),
    ("not a shell", _pod(["vllm", "serve", "-c"]), False),
    ("zsh -c", _pod(["zsh", "-c"]), False),
    ("long option only", _pod(["bash", "--norc"]), False),
    ("no script flag", _pod(["bash", "-e", "script.sh"]), False),
    ("other container name", _pod(["bash", "-c"], name="transformer"), False),
    ("mirror pod", _pod(["bash", "-c"], annotations={names.MIRROR_ANNOTATION: "x"}), False),
    ("already rewritten", _pod(["bash", "-c"], annotations={names.STATUS_ANNOTATION: "{}"}), False),
]


@pytest.mark.parametrize(
    ("pod", "called"), [c[1:] for c in CEL_CASES], ids=[c[0] for c in CEL_CASES]
)
def test_match_conditions(pod: dict[str, Any], called: bool) -> None:
    for entry in _entries()[:2]:
        assert _calls(_cel(entry), pod) is called


LLM_CEL_CASES = [
    ("eval shape", _pod(["/bin/bash", "-c", "script", "--"], name=names.LLM_CONTAINER), True),
    ("script in args", _pod(["/bin/bash", "-c"], name=names.LLM_CONTAINER), True),
    ("exec form", _pod(["vllm", "serve", "/mnt/models"], name=names.LLM_CONTAINER), False),
    ("head name", _pod(["bash", "-c"]), False),
    (
        "already rewritten",
        _pod(["bash", "-c"], name=names.LLM_CONTAINER, annotations={names.STATUS_ANNOTATION: "{}"}),
        False,
    ),
]


@pytest.mark.parametrize(
    ("pod", "called"), [c[1:] for c in LLM_CEL_CASES], ids=[c[0] for c in LLM_CEL_CASES]
)
def test_llm_match_conditions(pod: dict[str, Any], called: bool) -> None:
    for entry in _entries()[2:]:
        assert _calls(_cel(entry), pod) is called


def _entries() -> list[dict[str, Any]]:
    configuration = one(render(DEPLOY / "overlays" / "opt-in"), "MutatingWebhookConfiguration")
    return configuration["webhooks"]  # type: ignore[no-any-return]


def test_match_conditions_let_through_every_pod_the_webhook_changes() -> None:
    entries = _entries()
    isvc_programs, llm_programs = _cel(entries[0]), _cel(entries[2])
    pods = [
        yaml.safe_load(p.read_text())
        for p in (TESTDATA / "pods").glob("*.yaml")
        if not p.name.endswith(".golden.yaml")
    ]
    pods.extend(case_pod(case) for case in CASES)
    if kserve.CORPUS.is_dir():
        pods.extend(pod for _, _, pod in kserve.corpus_pods())
    if llmisvc.CORPUS.is_dir():
        for path in llmisvc.preset_files():
            config = llmisvc.load(path)
            pods.extend(
                llmisvc.build_pod(config, role=role, user_args=["--x=1"])
                for role in llmisvc.roles(config)
            )
    changed = [pod for pod in pods if admit(pod).patch]
    assert len(changed) >= 6 + len(CASES) // 2
    for pod in changed:
        llm = pod["metadata"].get("labels", {}).get(names.PART_OF_LABEL) == names.LLMISVC_PART_OF
        programs = llm_programs if llm else isvc_programs
        assert _calls(programs, pod), pod["spec"]["containers"]


def test_deployment_is_hardened(overlay: tuple[str, list[dict[str, Any]]]) -> None:
    deployment = one(overlay[1], "Deployment", "multinode-webhook")
    spec = deployment["spec"]["template"]["spec"]
    [container] = spec["containers"]
    assert deployment["spec"]["replicas"] == 2
    assert (
        spec["affinity"]["podAntiAffinity"]["preferredDuringSchedulingIgnoredDuringExecution"][0][
            "podAffinityTerm"
        ]["topologyKey"]
        == "kubernetes.io/hostname"
    )
    assert spec["securityContext"]["runAsNonRoot"] is True
    assert spec["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    # A token for warm start's watches and for Events: reads of what pods are made from and
    # of their owners, and writes of Events alone.
    assert spec["automountServiceAccountToken"] is True
    [role] = [
        o
        for o in overlay[1]
        if o["kind"] == "ClusterRole" and o["metadata"]["name"] == "multinode-webhook"
    ]
    granted = {
        (resource, verb)
        for rule in role["rules"]
        for resource in rule["resources"]
        for verb in rule["verbs"]
    }
    watched = ("servingruntimes", "clusterservingruntimes", "leaderworkersets", "deployments")
    assert granted == {
        *((resource, verb) for resource in watched for verb in ("list", "watch")),
        ("events", "create"),
        ("events", "get"),
        ("events", "patch"),
        ("inferenceservices", "get"),
        ("llminferenceservices", "get"),
    }
    assert "priorityClassName" not in spec
    security = container["securityContext"]
    assert (security["readOnlyRootFilesystem"], security["allowPrivilegeEscalation"]) == (
        True,
        False,
    )
    assert security["capabilities"] == {"drop": ["ALL"]}
    assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "http"}
    assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}
    assert {p["name"]: p["containerPort"] for p in container["ports"]} == {
        "https": names.HTTPS_PORT,
        "http": names.HTTP_PORT,
        "preview": names.PREVIEW_PORT,
    }
    # /preview is reached by port-forward only: no Service sends traffic to it.
    service_targets = {p["targetPort"] for p in one(overlay[1], "Service")["spec"]["ports"]}
    assert service_targets == {"https", "http"}
    assert container["lifecycle"]["preStop"]["exec"]["command"][0] == "sleep"
    assert container["resources"]["requests"]
    assert container["resources"]["limits"]
    tls = next(m for m in container["volumeMounts"] if m["name"] == "tls")
    assert tls["readOnly"] is True
    assert f"--cert-dir={tls['mountPath']}" in container["args"]
    secret = next(v for v in spec["volumes"] if v["name"] == "tls")["secret"]["secretName"]
    if overlay[0] == "cert-manager":
        certificate = one(overlay[1], "Certificate")
        assert certificate["spec"]["secretName"] == secret
        assert certificate["spec"]["dnsNames"] == list(
            certs.service_sans("multinode-webhook", NAMESPACE)
        )
        annotation = one(overlay[1], "MutatingWebhookConfiguration")["metadata"]["annotations"]
        assert (
            annotation["cert-manager.io/inject-ca-from"]
            == f"{NAMESPACE}/{certificate['metadata']['name']}"
        )
    elif overlay[0] == "openshift":
        # OpenShift's service CA writes the pair into the Secret the server mounts, and its CA
        # into every entry's caBundle; nothing of ours makes or keeps a certificate.
        service = one(overlay[1], "Service")["metadata"]["annotations"]
        assert service == {"service.beta.openshift.io/serving-cert-secret-name": secret}
        configuration = one(overlay[1], "MutatingWebhookConfiguration")["metadata"]
        assert configuration["annotations"] == {"service.beta.openshift.io/inject-cabundle": "true"}
        assert not [o for o in overlay[1] if o["kind"] in ("Certificate", "Job", "CronJob")]
        assert {o["metadata"]["name"] for o in overlay[1] if o["kind"] == "Deployment"} == {
            "multinode-webhook"
        }
    else:
        # A Deployment keeps the pair: unlike a Job's, its pod template may change on upgrade.
        assert not [o for o in overlay[1] if o["kind"] in ("Job", "CronJob")]
        keeper = one(overlay[1], "Deployment", "multinode-webhook-certs")
        assert keeper["spec"]["replicas"] == 1
        assert keeper["spec"]["strategy"] == {"type": "Recreate"}
        args = keeper["spec"]["template"]["spec"]["containers"][0]["args"]
        assert args[:2] == ["certs", "bootstrap"]
        assert f"--secret={secret}" in args
        assert "--every=10m" in args


def test_bootstrap_rbac_is_scoped_to_our_objects() -> None:
    objects = render(DEPLOY / "overlays" / "opt-in")
    role = one(objects, "Role")
    for rule in role["rules"]:
        if rule["verbs"] != ["create"]:  # a create cannot be narrowed to a name
            assert rule["resourceNames"] == ["multinode-webhook-tls"]
    [cluster_rule] = one(objects, "ClusterRole", "multinode-webhook-certs")["rules"]
    assert cluster_rule["resourceNames"] == ["multinode-webhook"]
    assert set(cluster_rule["verbs"]) == {"get", "patch"}
    bindings = [o for o in objects if o["kind"] in ("RoleBinding", "ClusterRoleBinding")]
    assert all(s["namespace"] == NAMESPACE for b in bindings for s in b["subjects"])


def _images(objects: list[dict[str, Any]]) -> dict[str, set[str]]:
    """Every container image of every workload, by `kind/name`."""
    return {
        where: {
            c["image"] for c in [*pod["spec"].get("initContainers", []), *pod["spec"]["containers"]]
        }
        for where, pod in workload_pods(objects, "any").items()
    }


def test_every_workload_uses_the_configured_image(
    overlay: tuple[str, list[dict[str, Any]]],
) -> None:
    name, objects = overlay
    images = _images(objects)
    expected = {"Deployment/multinode-webhook"} | (
        {"Deployment/multinode-webhook-certs"} if name in ("opt-in", "cluster-wide") else set()
    )
    assert set(images) == expected
    assert all(found == {f"multinode-webhook:{__version__}"} for found in images.values()), images


@pytest.mark.parametrize("name", OVERLAYS)
def test_one_images_entry_in_a_user_overlay_changes_them_all(name: str, tmp_path: Path) -> None:
    mine = tmp_path / "my-install"
    mine.mkdir()
    (mine / "kustomization.yaml").write_text(
        yaml.safe_dump(
            {
                "apiVersion": "kustomize.config.k8s.io/v1beta1",
                "kind": "Kustomization",
                "resources": [os.path.relpath(DEPLOY / "overlays" / name, mine)],
                "images": [
                    {
                        "name": "multinode-webhook",
                        "newName": "registry.example.com/platform/multinode-webhook",
                        "newTag": "9.9.9",
                    }
                ],
            }
        )
    )
    images = _images(render(mine))
    assert images
    wanted = {"registry.example.com/platform/multinode-webhook:9.9.9"}
    assert all(found == wanted for found in images.values()), images


CLUSTER_SCOPED = {"Namespace", "ClusterRole", "ClusterRoleBinding", "MutatingWebhookConfiguration"}


def _names(objects: list[dict[str, Any]], kind: str, namespace: str) -> set[str]:
    return {
        o["metadata"]["name"]
        for o in objects
        if o["kind"] == kind and o["metadata"].get("namespace") == namespace
    }


@pytest.mark.parametrize("namespace", [None, "team-ml"])
@pytest.mark.parametrize("name", OVERLAYS)
def test_every_namespaced_object_and_reference_is_in_the_install_namespace(
    name: str, namespace: str | None, tmp_path: Path
) -> None:
    compositions = [
        (render(DEPLOY / "overlays" / name), NAMESPACE),
        (
            render(user_overlay(tmp_path / "mine", name, namespace=namespace)),
            namespace or NAMESPACE,
        ),
    ]
    for objects, install in compositions:
        for obj in objects:
            where = obj["metadata"].get("namespace")
            expected = None if obj["kind"] in CLUSTER_SCOPED else install
            assert where == expected, f"{obj['kind']}/{obj['metadata']['name']} in {where}"
        assert {o["metadata"]["name"] for o in objects if o["kind"] == "Namespace"} == {install}
        accounts = _names(objects, "ServiceAccount", install)
        for binding in (o for o in objects if o["kind"] in ("RoleBinding", "ClusterRoleBinding")):
            for subject in binding["subjects"]:
                assert (subject["namespace"], subject["name"] in accounts) == (install, True)
        services = _names(objects, "Service", install)
        configuration = one(objects, "MutatingWebhookConfiguration")
        for entry in configuration["webhooks"]:
            service = entry["clientConfig"]["service"]
            assert (service["namespace"], service["name"] in services) == (install, True)
        injected = (
            configuration["metadata"].get("annotations", {}).get("cert-manager.io/inject-ca-from")
        )
        if name == "cert-manager":
            [certificate] = _names(objects, "Certificate", install)
            assert injected == f"{install}/{certificate}"
            dns = one(objects, "Certificate")["spec"]["dnsNames"]
            assert {f"{s}.{install}.svc" for s in services} <= set(dns)
        else:
            assert injected is None


def test_a_rolling_restart_fits_the_termination_grace(
    overlay: tuple[str, list[dict[str, Any]]],
) -> None:
    deployment = one(overlay[1], "Deployment", "multinode-webhook")
    spec = deployment["spec"]["template"]["spec"]
    [container] = spec["containers"]
    flags = dict(arg.split("=", 1) for arg in container["args"] if arg.startswith("--"))
    pause = container["lifecycle"]["preStop"]["exec"]["command"]
    assert pause[0] == "sleep"
    budget = float(pause[1]) + float(flags["--drain-seconds"])
    budget += float(flags["--shutdown-grace-seconds"])
    assert spec["terminationGracePeriodSeconds"] > budget
    # The API server, not the webhook, closes an idle connection: its webhook client keeps one
    # for Go's http.DefaultTransport idle timeout (client-go sets no other), and a server that
    # closes first races the review being written on it.
    keep_alive = flags.get(
        "--keep-alive-seconds", Settings.model_fields["keep_alive_seconds"].default
    )
    assert float(keep_alive) > API_SERVER_IDLE_SECONDS
    budget_pdb = one(overlay[1], "PodDisruptionBudget")["spec"]
    assert budget_pdb["minAvailable"] == 1 < deployment["spec"]["replicas"]


def test_the_policy_overlay_is_the_compiled_example_runtime() -> None:
    objects = render(DEPLOY / "overlays" / "policy")
    runtime = REPO / "examples" / "legacy-servingruntime.yaml"
    compiled = compile_shapes([(runtime.name, yaml.safe_load(runtime.read_text()))])
    # Regenerate with the command the overlay names, when this fails.
    assert objects == policy_objects(compiled, mode=Mode.OPT_IN)
    assert [o["kind"] for o in objects] == [
        "MutatingAdmissionPolicy",
        "MutatingAdmissionPolicyBinding",
    ]
