"""`certs bootstrap` and `check` against a fake Kubernetes API served over real HTTP."""

from __future__ import annotations

import base64
import copy
import datetime as dt
import json
import signal
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from tests.support import fakeapi, poll, servers
from tests.support.builders import data_pod, example
from tests.support.cli import cli, in_process, one_line_error
from tests.support.fakeapi import serving_install
from webhook.adapters import certs
from webhook.adapters.kube import client as client_module
from webhook.adapters.kube.bootstrap import Outcome, bootstrap, keep
from webhook.adapters.kube.client import Cluster, KubeError, connect
from webhook.core import names
from webhook.inspect.findings import Finding
from webhook.inspect.installation import check

NS = "multinode-webhook"
SERVICE = "multinode-webhook"
SECRET = "multinode-webhook-tls"
CONFIG = "multinode-webhook"
NOW = dt.datetime(2026, 11, 24, tzinfo=dt.UTC)


@pytest.fixture
def fake(tmp_path: Path) -> Iterator[tuple[fakeapi.FakeApi, Cluster, Path]]:
    with fakeapi.serving(tmp_path) as (api, kubeconfig):
        api.put("mutatingwebhookconfigurations", fakeapi.opt_in_configuration())
        yield api, Cluster(connect(kubeconfig=str(kubeconfig))), kubeconfig


def run_bootstrap(cluster: Cluster, *, now: dt.datetime = NOW, service: str = SERVICE) -> list[str]:
    return bootstrap(
        cluster,
        namespace=NS,
        service=service,
        secret=SECRET,
        webhook_config=CONFIG,
        days=365,
        renew_before=dt.timedelta(days=30),
        now=now,
    ).lines


def stored(api: fakeapi.FakeApi) -> tuple[dict[str, bytes], list[bytes]]:
    secret = api.get("secrets", NS, SECRET)
    assert secret is not None
    data = {k: base64.b64decode(v) for k, v in secret["data"].items()}
    configuration = api.get("mutatingwebhookconfigurations", "", CONFIG)
    assert configuration is not None
    bundles = [base64.b64decode(e["clientConfig"]["caBundle"]) for e in configuration["webhooks"]]
    return data, bundles


def test_first_run_creates_the_secret_and_writes_every_ca_bundle(fake: Any) -> None:
    api, cluster, _ = fake
    actions = run_bootstrap(cluster)
    assert any("created" in a for a in actions)
    data, bundles = stored(api)
    assert api.get("secrets", NS, SECRET)["type"] == "kubernetes.io/tls"
    assert bundles == [data["ca.crt"]] * 4
    assert certs.issued_by(data["tls.crt"], bundles[0])
    assert certs.covers(data["tls.crt"], certs.service_sans(SERVICE, NS))
    assert certs.key_matches(data["tls.crt"], data["tls.key"])


def test_rerun_changes_nothing(fake: Any) -> None:
    api, cluster, _ = fake
    run_bootstrap(cluster)
    before = copy.deepcopy(api.objects)
    writes = len(api.writes())
    actions = run_bootstrap(cluster, now=NOW + dt.timedelta(days=100))
    assert api.writes()[writes:] == []
    assert api.objects == before
    assert actions == [f"Secret {NS}/{SECRET} is current", f"caBundle of {CONFIG} already current"]


def test_renewal_trusts_old_and_new_ca_before_the_secret_changes(fake: Any) -> None:
    api, cluster, _ = fake
    run_bootstrap(cluster)
    old, _ = stored(api)
    writes = len(api.writes())
    actions = run_bootstrap(cluster, now=NOW + dt.timedelta(days=340))
    assert any("renewal window" in a for a in actions)
    new, bundles = stored(api)
    assert new["tls.crt"] != old["tls.crt"]
    assert new["ca-previous.crt"] == old["ca.crt"]
    for bundle in bundles:
        assert certs.issued_by(old["tls.crt"], bundle), (
            "pods still serving the old pair must verify"
        )
        assert certs.issued_by(new["tls.crt"], bundle)
    # The webhook configuration is patched before the Secret is replaced.
    assert [method for method, _ in api.writes()[writes:]] == ["PATCH", "PUT"]
    # And the next run keeps both CAs without writing.
    writes = len(api.writes())
    run_bootstrap(cluster, now=NOW + dt.timedelta(days=341))
    assert api.writes()[writes:] == []


def _encrypted_key() -> bytes:
    key = ec.generate_private_key(ec.SECP256R1())
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(b"secret"),
    )


@pytest.mark.parametrize(
    ("damage", "reason"),
    [
        (lambda data: data.pop("tls.key"), "no certificate yet"),
        (
            lambda data: data.update({"tls.key": certs.generate(sans=("x",)).key_pem}),
            "key does not match",
        ),
        (
            lambda data: data.update({"ca.crt": certs.generate(sans=("x",)).ca_pem}),
            "not signed by ca.crt",
        ),
        (lambda data: data.update({"tls.crt": b"garbage"}), "unreadable certificate"),
        # A key encrypted with a password: no pass can read it, each one replaces it.
        (lambda data: data.update({"tls.key": _encrypted_key()}), "unreadable certificate or key"),
    ],
)
def test_broken_secret_is_replaced(fake: Any, damage: Any, reason: str) -> None:
    api, cluster, _ = fake
    run_bootstrap(cluster)
    secret = api.get("secrets", NS, SECRET)
    data = {k: base64.b64decode(v) for k, v in secret["data"].items()}
    damage(data)
    secret["data"] = {k: base64.b64encode(v).decode() for k, v in data.items()}
    actions = run_bootstrap(cluster)
    assert any(reason in a for a in actions), actions
    fixed, bundles = stored(api)
    assert certs.issued_by(fixed["tls.crt"], bundles[0])


def test_renamed_service_gets_a_new_certificate(fake: Any) -> None:
    api, cluster, _ = fake
    run_bootstrap(cluster)
    actions = run_bootstrap(cluster, service="renamed")
    assert any("does not name the Service" in a for a in actions)
    data, _ = stored(api)
    assert certs.covers(data["tls.crt"], certs.service_sans("renamed", NS))


def test_concurrent_writer_makes_the_update_fail_loudly(
    fake: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    api, cluster, _ = fake
    run_bootstrap(cluster)
    real_secret = cluster.secret

    def stale(namespace: str, name: str) -> Any:
        found = real_secret(namespace, name)
        api.put("secrets", copy.deepcopy(api.get("secrets", NS, SECRET)))  # someone else writes
        return found

    monkeypatch.setattr(cluster, "secret", stale)
    with pytest.raises(KubeError, match="409 the object has been modified"):
        run_bootstrap(cluster, now=NOW + dt.timedelta(days=340))


class _Clock(threading.Event):
    """A stop event whose waits are recorded and return at once; set after `passes` waits."""

    def __init__(self, passes: int) -> None:
        super().__init__()
        self.waits: list[float] = []
        self.passes = passes

    def wait(self, timeout: float | None = None) -> bool:
        self.waits.append(timeout or 0)
        if len(self.waits) >= self.passes:
            self.set()
        return self.is_set()


def test_keep_says_what_changed_and_retries_a_failed_pass_sooner() -> None:
    outcomes: list[Outcome | KubeError] = [
        Outcome(["created"], changed=True),
        Outcome(["current"], changed=False),
        Outcome(["current"], changed=False),
        KubeError("read Secret: 403 forbidden"),
        KubeError("read Secret: 503 unavailable"),
        Outcome(["current"], changed=False),
        Outcome(["created"], changed=True),
        Outcome(["created"], changed=True),
    ]
    said: list[str] = []

    def run() -> Outcome:
        outcome = outcomes.pop(0)
        if isinstance(outcome, KubeError):
            raise outcome
        return outcome

    clock = _Clock(passes=8)
    keep(run, every=dt.timedelta(minutes=10), stop=clock, say=said.append)
    assert said == [
        "created",
        "current",
        "error: read Secret: 403 forbidden; trying again in 5s",
        "error: read Secret: 503 unavailable; trying again in 10s",
        "current",  # said again after a failure: the log shows the install healed
        "created",
        "created",  # a pass that writes is always said
    ]
    assert clock.waits == [600, 600, 600, 5, 10, 600, 600, 600]


def test_bootstrap_every_keeps_the_secret_until_sigterm(fake: Any) -> None:
    api, _, kubeconfig = fake
    command = [sys.executable, "-m", "webhook", "certs", "bootstrap", "--every", "1s"]
    with subprocess.Popen(
        [*command, "--kubeconfig", str(kubeconfig), "--namespace", NS],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    ) as keeper:
        try:
            poll.wait(lambda: api.get("secrets", NS, SECRET) is not None, "the Secret")
            first = stored(api)
            del api.objects["secrets", NS, SECRET]  # deleted by hand: remade at the next pass
            poll.wait(lambda: api.get("secrets", NS, SECRET) is not None, "the Secret remade")
            assert stored(api)[0] != first[0]
        finally:
            keeper.send_signal(signal.SIGTERM)
            out, err = keeper.communicate(timeout=30)
    assert keeper.returncode == 0, err
    assert out.count(f"Secret {NS}/{SECRET} created") == 2, out


def test_bootstrap_refuses_a_validity_inside_its_renewal_window(fake: Any) -> None:
    _, _, kubeconfig = fake
    done = cli(
        "certs", "bootstrap", "--kubeconfig", str(kubeconfig), "--namespace", NS,
        "--days", "30", "--renew-before", "720h",
    )  # fmt: skip
    assert done.returncode == 2
    assert one_line_error(done) == (
        "multinode-webhook: error: --days (30) must be longer than --renew-before (30 days, 0:00:00), "
        "or every pass renews the pair"
    )


def test_bootstrap_and_check_commands(fake: Any, tmp_path: Path) -> None:
    api, _, kubeconfig = fake
    api.put(
        "namespaces", {"metadata": {"name": "models", "labels": {names.INJECT_LABEL: "enabled"}}}
    )
    command = [sys.executable, "-m", "webhook"]
    bootstrap = subprocess.run(
        [*command, "certs", "bootstrap", "--kubeconfig", str(kubeconfig), "--namespace", NS],
        capture_output=True,
        text=True,
        check=False,
    )
    assert bootstrap.returncode == 0, bootstrap.stderr
    assert f"Secret {NS}/{SECRET} created" in bootstrap.stdout
    check = subprocess.run(
        [*command, "check", "--kubeconfig", str(kubeconfig)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert "namespaces mutated: models" in check.stdout
    assert "caBundle verifies the Secret's certificate" in check.stdout
    # Certificates alone are no install: nothing serves, and check says so.
    assert f"!! Deployment {NS}/{SERVICE} not found: nothing serves the webhook" in check.stdout
    assert f"!! Service {NS}/{SERVICE} has no ready endpoints" in check.stdout
    assert check.returncode == 1, check.stdout


def _break(api: fakeapi.FakeApi, fault: str) -> None:
    if fault == "no-ready-replicas":
        api.objects["deployments", NS, SERVICE]["status"] = {"replicas": 2}
    elif fault == "no-deployment":
        del api.objects["deployments", NS, SERVICE]
    elif fault == "no-ready-endpoints":
        slice_ = api.objects["endpointslices", NS, f"{SERVICE}-abcde"]
        slice_["endpoints"][0]["conditions"]["ready"] = False
    elif fault == "certificate-keeper-down":
        api.objects["deployments", NS, "multinode-webhook-certs"]["status"] = {"replicas": 1}
    elif fault == "no-secret":
        del api.objects["secrets", NS, SECRET]


@pytest.mark.parametrize(
    ("fault", "said"),
    [
        ("none", "0 problems (!!), 0 not verified from here (??)"),
        ("no-ready-replicas", f"!! Deployment {NS}/{SERVICE} has no ready replicas (0 of 2)"),
        ("no-deployment", f"!! Deployment {NS}/{SERVICE} not found"),
        ("no-ready-endpoints", f"!! Service {NS}/{SERVICE} has no ready endpoints"),
        (
            "certificate-keeper-down",
            f"!! Deployment {NS}/multinode-webhook-certs has no ready replica: the serving "
            "certificate is neither made nor renewed",
        ),
        ("no-secret", f"!! Secret {NS}/{SECRET} not found"),
        ("unreachable-address", "!! --address 127.0.0.1:1 cannot be reached"),
    ],
)
def test_check_exits_1_for_each_way_the_install_is_down(
    fake: Any, installed: Any, tmp_path: Path, fault: str, said: str
) -> None:
    api, _cluster, kubeconfig = fake
    serving_install(api)
    data, _ = stored(api)
    _break(api, fault)
    bundle = certs.Bundle(data["ca.crt"], data["tls.crt"], data["tls.key"])
    with servers.running(tmp_path, bundle=bundle) as live:
        address = (
            "127.0.0.1:1" if fault == "unreachable-address" else f"127.0.0.1:{live.https_port}"
        )
        done = in_process("check", "--kubeconfig", str(kubeconfig), "--address", address)
    assert said in done.stdout, done.stdout
    assert done.returncode == (0 if fault == "none" else 1), done.stdout
    found = done.stdout.count("\n!! ") + done.stdout.startswith("!! ")
    total = done.stdout.splitlines()[-1]
    assert total.startswith(f"{found} problem{'' if found == 1 else 's'} (!!), "), total


def _keeper_gone(api: fakeapi.FakeApi, annotations: dict[str, str]) -> None:
    del api.objects["deployments", NS, "multinode-webhook-certs"]
    configuration = api.objects["mutatingwebhookconfigurations", "", CONFIG]
    configuration["metadata"]["annotations"] = annotations


@pytest.mark.parametrize(
    ("annotations", "said"),
    [
        (None, f"   Deployment {NS}/multinode-webhook-certs keeps the serving certificate"),
        (
            {"service.beta.openshift.io/inject-cabundle": "true"},
            "   OpenShift's service CA makes and renews the serving certificate",
        ),
        (
            {"cert-manager.io/inject-ca-from": f"{NS}/{SERVICE}"},
            f"   cert-manager makes and renews the serving certificate (Certificate {NS}/{SERVICE}",
        ),
        ({}, f"?? Deployment {NS}/multinode-webhook-certs not found, and the webhook"),
        (
            {"service.beta.openshift.io/inject-cabundle": "false"},
            f"?? Deployment {NS}/multinode-webhook-certs not found, and the webhook",
        ),
    ],
    ids=["bootstrap", "openshift", "cert-manager", "none", "openshift-off"],
)
def test_check_names_what_keeps_the_certificate_and_counts_in_words(
    fake: Any, installed: Any, annotations: dict[str, str] | None, said: str
) -> None:
    api, _cluster, kubeconfig = fake
    serving_install(api)
    if annotations is not None:
        _keeper_gone(api, annotations)
    done = in_process("check", "--kubeconfig", str(kubeconfig))
    assert f"\n{said}" in done.stdout, done.stdout
    assert f"MutatingWebhookConfiguration {CONFIG}: 4 webhooks\n" in done.stdout
    assert f"Service {NS}/{SERVICE}: 1 ready endpoint\n" in done.stdout
    assert done.returncode == 0, done.stdout


def test_check_from_outside_the_cluster_says_what_it_did_not_verify(
    fake: Any, installed: Any
) -> None:
    api, _cluster, kubeconfig = fake
    serving_install(api)
    done = cli("check", "--kubeconfig", str(kubeconfig))
    assert (
        f"?? served certificate NOT verified: {SERVICE}.{NS}.svc:443 is not reachable from here"
        in done.stdout
    )
    assert done.stdout.endswith("0 problems (!!), 1 not verified from here (??)\n")
    assert done.returncode == 0, done.stdout


@pytest.mark.parametrize(
    ("extra_args", "agree"),
    [
        ((), True),
        (("--containers=kserve-container", "--containers", "worker-container"), True),
        (("--containers=server",), False),
        (("--containers", "kserve-container"), False),
        (("--llm-containers=main",), True),
        (("--llm-containers=vllm",), False),
    ],
    ids=["default", "same-names", "other-name", "one-missing", "llm-same", "llm-other"],
)
def test_check_compares_the_server_containers_with_the_cel_names(
    fake: Any, extra_args: tuple[str, ...], agree: bool
) -> None:
    api, cluster, kubeconfig = fake
    run_bootstrap(cluster, now=dt.datetime.now(dt.UTC))
    serving_install(api, *extra_args)
    done = in_process("check", "--kubeconfig", str(kubeconfig))
    pods = "LLMInferenceService" if "llm" in "".join(extra_args) else "InferenceService"
    if agree:
        assert "   InferenceService target containers: kserve-container, worker-container " in (
            done.stdout
        )
        assert "   LLMInferenceService target containers: main (server and CEL agree)" in (
            done.stdout
        )
        assert done.returncode == 0, done.stdout
    else:
        assert f"!! {pods} target containers differ: the server rewrites" in done.stdout
        assert done.returncode == 1, done.stdout


def test_cluster_command_without_credentials_exits_2(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "webhook", "check", "--kubeconfig", str(tmp_path / "none")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 2
    assert done.stderr.startswith("multinode-webhook: error: no cluster credentials")


@pytest.fixture
def installed(fake: Any) -> tuple[fakeapi.FakeApi, Cluster]:
    api, cluster, _ = fake
    run_bootstrap(cluster, now=dt.datetime.now(dt.UTC))
    for name, labels in {
        "models": {names.INJECT_LABEL: "enabled"},
        "trial": {names.INJECT_LABEL: "shadow"},
        "other": {},
    }.items():
        api.put("namespaces", {"metadata": {"name": name, "labels": labels}})
    return api, cluster


def _pod(api: fakeapi.FakeApi, namespace: str, pod: dict[str, Any]) -> str:
    pod = copy.deepcopy(pod)
    pod["metadata"]["namespace"] = namespace
    api.put("pods", pod)
    return str(pod["metadata"]["name"])


def _texts(findings: list[Finding]) -> str:
    return "\n".join(("ok " if f.ok else "!! ") + f.text for f in findings)


def test_check_reports_coverage_tls_and_pods(installed: Any, tmp_path: Path) -> None:
    api, cluster = installed
    serving_install(api)
    data, _ = stored(api)
    bundle = certs.Bundle(data["ca.crt"], data["tls.crt"], data["tls.key"])
    legacy = example("legacy-head-pod.yaml")
    with servers.running(tmp_path, bundle=bundle) as live:
        findings = check(
            cluster, webhook_config=CONFIG, secret=SECRET, address=("127.0.0.1", live.https_port)
        )
    report = _texts(findings)
    assert "ok namespaces mutated: models" in report
    assert "ok namespaces in shadow: trial" in report
    assert "ok caBundle verifies the Secret's certificate" in report
    assert f"verifies against caBundle as {SERVICE}.{NS}.svc" in report
    assert all(f.ok for f in findings), report

    mutated = copy.deepcopy(legacy)
    mutated["metadata"]["annotations"] = {names.STATUS_ANNOTATION: '{"rules":{}}'}
    cases = {
        ("models", _pod(api, "models", mutated)): ("was mutated", True),
        ("other", _pod(api, "other", legacy)): ("its namespace is not selected", False),
        (
            "models",
            _pod(api, "models", {**legacy, "metadata": {**legacy["metadata"], "name": "missed"}}),
        ): ("would be: the webhook was not called or failed open", False),
        ("trial", _pod(api, "trial", legacy)): ("would be: its namespace is in shadow", False),
        (
            "models",
            _pod(
                api,
                "models",
                data_pod("exact-in-command"),
            ),
        ): ("unchanged (already-migrated)", True),
    }
    for (namespace, name), (text, ok) in cases.items():
        finding = check(
            cluster,
            webhook_config=CONFIG,
            secret=SECRET,
            namespace=namespace,
            pod=name,
            address=("127.0.0.1", 1),
        )[-1]
        assert text in finding.text, finding
        assert finding.ok is ok, finding


def test_check_flags_a_ca_bundle_that_does_not_verify(installed: Any, tmp_path: Path) -> None:
    api, cluster = installed
    serving_install(api)
    stranger = certs.generate(sans=(*certs.service_sans(SERVICE, NS), "127.0.0.1"))
    with servers.running(tmp_path, bundle=stranger) as live:
        findings = check(
            cluster, webhook_config=CONFIG, secret=SECRET, address=("127.0.0.1", live.https_port)
        )
    failed = [f.text for f in findings if not f.ok]
    assert len(failed) == 1
    assert "FAILS against caBundle" in failed[0]


@pytest.mark.parametrize("command", [["check"], ["certs", "bootstrap", "--namespace", NS]])
def test_an_unreachable_api_server_is_one_line_and_exit_2(
    tmp_path: Path, command: list[str]
) -> None:
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "current-context": "gone",
                "clusters": [{"name": "gone", "cluster": {"server": "https://127.0.0.1:1"}}],
                "users": [{"name": "gone", "user": {"token": "t"}}],
                "contexts": [{"name": "gone", "context": {"cluster": "gone", "user": "gone"}}],
            }
        )
    )
    line = one_line_error(cli(*command, "--kubeconfig", str(kubeconfig)))
    assert line.startswith(
        "multinode-webhook: error: cannot reach the API server at https://127.0.0.1:1: "
    )
    assert "Connection refused" in line


def _with_context_namespace(kubeconfig: Path, namespace: str) -> None:
    config = json.loads(kubeconfig.read_text())
    config["contexts"][0]["context"]["namespace"] = namespace
    kubeconfig.write_text(json.dumps(config))


def test_check_pod_takes_the_kubeconfig_namespace_or_is_a_usage_error(
    fake: Any, installed: Any
) -> None:
    api, _cluster, kubeconfig = fake
    serving_install(api)
    name = _pod(api, "models", example("legacy-head-pod.yaml"))
    refused = cli("check", "--kubeconfig", str(kubeconfig), "--pod", name)
    assert one_line_error(refused) == (
        "multinode-webhook: error: --pod needs --namespace: the kubeconfig context names none"
    )
    assert refused.stdout == ""
    _with_context_namespace(kubeconfig, "models")
    done = cli("check", "--kubeconfig", str(kubeconfig), "--pod", name)
    assert f"Pod models/{name} was not mutated but would be" in done.stdout, done.stdout


def test_bootstrap_outside_a_pod_takes_the_kubeconfig_namespace(fake: Any) -> None:
    api, _cluster, kubeconfig = fake
    _with_context_namespace(kubeconfig, NS)
    done = cli("certs", "bootstrap", "--kubeconfig", str(kubeconfig))
    assert done.returncode == 0, done.stderr
    assert api.get("secrets", NS, SECRET) is not None


def _no_ca_bundle(api: fakeapi.FakeApi) -> None:
    for entry in api.objects["mutatingwebhookconfigurations", "", CONFIG]["webhooks"]:
        entry["clientConfig"].pop("caBundle", None)


def _no_tls_crt(api: fakeapi.FakeApi) -> None:
    del api.objects["secrets", NS, SECRET]["data"]["tls.crt"]


def _no_entries(api: fakeapi.FakeApi) -> None:
    api.objects["mutatingwebhookconfigurations", "", CONFIG]["webhooks"] = []


@pytest.mark.parametrize(
    ("damage", "said"),
    [
        (_no_ca_bundle, "caBundle is empty: the API server cannot verify the webhook"),
        (_no_tls_crt, f"Secret {NS}/{SECRET} has no tls.crt"),
        (_no_entries, "no webhook entries: nothing is mutated"),
    ],
    ids=["empty-ca-bundle", "secret-without-tls-crt", "no-entries"],
)
def test_check_names_each_broken_piece_of_tls_and_configuration(
    installed: Any, damage: Any, said: str
) -> None:
    api, cluster = installed
    serving_install(api)
    damage(api)
    findings = check(cluster, webhook_config=CONFIG, secret=SECRET, address=("127.0.0.1", 1))
    assert [f.text for f in findings if not f.ok and said in f.text] == [said]


def test_a_call_to_a_silent_api_server_ends_in_an_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The bootstrap's passes and check read the cluster with no deadline of their own.
    monkeypatch.setattr(client_module, "CALL_TIMEOUT", (5.0, 0.2))
    with socket.create_server(("127.0.0.1", 0)) as listener:
        kubeconfig = fakeapi.write_kubeconfig(tmp_path / "kubeconfig", listener.getsockname()[1])
        cluster = Cluster(connect(kubeconfig=str(kubeconfig)))
        with pytest.raises(KubeError, match="cannot reach the API server"):
            cluster.secret(NS, SECRET)
