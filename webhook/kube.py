"""The Kubernetes API adapter: the only module that imports `kubernetes`.

Objects are read and written as raw JSON (`_preload_content=False`), never through the client's
models, which drop the fields they do not know. Two jobs live here: `bootstrap` keeps the
webhook's serving Secret and its configuration's `caBundle` in step, and `check` reports how the
installed webhook sees the cluster.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import os
import socket
import ssl
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from kubernetes import client, config
from kubernetes.client.exceptions import ApiException

from webhook import certs, keys
from webhook.mutate import Context, mutate
from webhook.patch import PatchOp, pointer
from webhook.raw import mapping, string
from webhook.selection import label_selector_matches

PREVIOUS_CA: Final = "ca-previous.crt"
SERVICE_ACCOUNT_NAMESPACE: Final = Path("/var/run/secrets/kubernetes.io/serviceaccount/namespace")


class KubeError(RuntimeError):
    """An API call failed; the message says which and why, in one line."""


def connect(*, kubeconfig: str | None = None, context: str | None = None) -> client.ApiClient:
    """In-cluster credentials in a pod, else the kubeconfig (given, $KUBECONFIG or ~/.kube)."""
    if kubeconfig is None and context is None:
        try:
            config.load_incluster_config()  # type: ignore[no-untyped-call]
            return client.ApiClient()
        except config.ConfigException:
            pass
    try:
        config.load_kube_config(  # type: ignore[no-untyped-call]
            config_file=kubeconfig, context=context
        )
    except (config.ConfigException, OSError) as error:
        raise KubeError(f"no cluster credentials: {error}") from None
    return client.ApiClient()


def current_namespace() -> str | None:
    """$POD_NAMESPACE, else the namespace of the pod's service account, else None."""
    if os.environ.get("POD_NAMESPACE"):
        return os.environ["POD_NAMESPACE"]
    try:
        return SERVICE_ACCOUNT_NAMESPACE.read_text().strip() or None
    except OSError:
        return None


class Cluster:
    """The few API calls the webhook's tools make, on raw JSON."""

    def __init__(self, api: client.ApiClient) -> None:
        self.core = client.CoreV1Api(api)
        self.admission = client.AdmissionregistrationV1Api(api)

    @staticmethod
    def _call(what: str, method: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            response = method(*args, _preload_content=False, **kwargs)
        except ApiException as error:
            reason = _api_reason(error)
            raise KubeError(f"{what}: {error.status} {reason}") from None
        return json.loads(response.data)

    def secret(self, namespace: str, name: str) -> dict[str, Any] | None:
        try:
            found: dict[str, Any] = self._call(
                f"read Secret {namespace}/{name}", self.core.read_namespaced_secret, name, namespace
            )
        except KubeError as error:
            if str(error).split(": ", 1)[1].startswith("404"):
                return None
            raise
        return found

    def create_secret(self, namespace: str, body: dict[str, Any]) -> None:
        name = body["metadata"]["name"]
        self._call(
            f"create Secret {namespace}/{name}", self.core.create_namespaced_secret, namespace, body
        )

    def replace_secret(self, namespace: str, body: dict[str, Any]) -> None:
        name = body["metadata"]["name"]
        self._call(
            f"update Secret {namespace}/{name}",
            self.core.replace_namespaced_secret,
            name,
            namespace,
            body,
        )

    def webhook_configuration(self, name: str) -> dict[str, Any]:
        found: dict[str, Any] = self._call(
            f"read MutatingWebhookConfiguration {name}",
            self.admission.read_mutating_webhook_configuration,
            name,
        )
        return found

    def patch_webhook_configuration(self, name: str, ops: list[PatchOp]) -> None:
        self._call(
            f"patch MutatingWebhookConfiguration {name}",
            self.admission.patch_mutating_webhook_configuration,
            name,
            ops,
        )

    def namespaces(self) -> list[dict[str, Any]]:
        listed = self._call("list Namespaces", self.core.list_namespace)
        items: list[dict[str, Any]] = listed.get("items", [])
        return items

    def pod(self, namespace: str, name: str) -> dict[str, Any]:
        found: dict[str, Any] = self._call(
            f"read Pod {namespace}/{name}", self.core.read_namespaced_pod, name, namespace
        )
        return found


def _api_reason(error: ApiException) -> str:
    try:
        return str(json.loads(error.body or "").get("message") or error.reason)
    except (TypeError, ValueError):
        return str(error.reason)


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def _secret_data(secret: Mapping[str, Any] | None) -> dict[str, bytes]:
    data = mapping(mapping(secret).get("data"))
    decoded: dict[str, bytes] = {}
    for key, value in data.items():
        try:
            decoded[key] = base64.b64decode(string(value), validate=True)
        except ValueError:
            continue
    return decoded


def _unexpired_ca(pem: bytes | None, now: dt.datetime) -> bytes | None:
    if not pem:
        return None
    try:
        return pem if certs.not_after(pem) > now else None
    except ValueError:
        return None


def renewal_reason(
    data: Mapping[str, bytes],
    *,
    sans: tuple[str, ...],
    now: dt.datetime,
    renew_before: dt.timedelta,
) -> str | None:
    """Why the Secret's pair must be replaced, or None when it is good as it is."""
    cert, key, ca = data.get(certs.CERT_FILE), data.get(certs.KEY_FILE), data.get(certs.CA_FILE)
    if not (cert and key and ca):
        return "no certificate yet"
    try:
        expires = certs.not_after(cert)
        covered = certs.covers(cert, sans)
        signed = certs.issued_by(cert, ca)
        matching = certs.key_matches(cert, key)
    except ValueError as error:
        return f"unreadable certificate ({error})"
    if not matching:
        return "key does not match the certificate"
    if not signed:
        return "certificate not signed by ca.crt"
    if not covered:
        return "certificate does not name the Service"
    if expires - now < renew_before:
        return f"certificate expires {expires:%Y-%m-%d}, within the renewal window"
    return None


def _ensure_ca_bundle(cluster: Cluster, name: str, bundle: bytes, actions: list[str]) -> None:
    configuration = cluster.webhook_configuration(name)
    wanted = certs.ca_bundle(bundle)
    ops: list[PatchOp] = []
    for index, entry in enumerate(configuration.get("webhooks") or []):
        if mapping(entry.get("clientConfig")).get("caBundle") == wanted:
            continue
        # The test op pins the index to the entry we read, should the list change meanwhile.
        ops.append(
            {"op": "test", "path": pointer("webhooks", index, "name"), "value": entry.get("name")}
        )
        ops.append(
            {
                "op": "add",
                "path": pointer("webhooks", index, "clientConfig", "caBundle"),
                "value": wanted,
            }
        )
    if ops:
        cluster.patch_webhook_configuration(name, ops)
        actions.append(f"caBundle written to {len(ops) // 2} entries of {name}")
    else:
        actions.append(f"caBundle of {name} already current")


def bootstrap(
    cluster: Cluster,
    *,
    namespace: str,
    service: str,
    secret: str,
    webhook_config: str,
    days: int = 365,
    renew_before: dt.timedelta = dt.timedelta(days=30),
    now: dt.datetime | None = None,
) -> list[str]:
    """Create or renew the serving Secret and keep `caBundle` trusting it. Safe to rerun.

    On renewal the new CA goes into `caBundle` next to the old one before the Secret changes,
    so no handshake fails while the pods pick up the new pair; the old CA stays in the bundle
    (as `ca-previous.crt` in the Secret) until it expires or the next renewal.
    """
    now = now or dt.datetime.now(dt.UTC)
    sans = certs.service_sans(service, namespace)
    current = cluster.secret(namespace, secret)
    data = _secret_data(current)
    reason = renewal_reason(data, sans=sans, now=now, renew_before=renew_before)
    actions: list[str] = []
    if reason is None:
        previous = _unexpired_ca(data.get(PREVIOUS_CA), now)
        _ensure_ca_bundle(cluster, webhook_config, data[certs.CA_FILE] + (previous or b""), actions)
        actions.insert(0, f"Secret {namespace}/{secret} is current")
        return actions

    bundle = certs.generate(sans=sans, days=days, now=now)
    old_ca = _unexpired_ca(data.get(certs.CA_FILE), now) if current else None
    actions.append(f"new certificate for {service}.{namespace}.svc: {reason}")
    _ensure_ca_bundle(cluster, webhook_config, bundle.ca_pem + (old_ca or b""), actions)
    body: dict[str, Any] = {
        "apiVersion": "v1",
        "kind": "Secret",
        "type": "kubernetes.io/tls",
        "metadata": {
            "name": secret,
            "namespace": namespace,
            "labels": {"app.kubernetes.io/name": "multinode-webhook"},
        },
        "data": {
            certs.CERT_FILE: _b64(bundle.cert_pem),
            certs.KEY_FILE: _b64(bundle.key_pem),
            certs.CA_FILE: _b64(bundle.ca_pem),
            **({PREVIOUS_CA: _b64(old_ca)} if old_ca else {}),
        },
    }
    if current is None:
        cluster.create_secret(namespace, body)
        actions.append(f"Secret {namespace}/{secret} created")
    else:
        # resourceVersion makes a concurrent writer fail this update instead of being overwritten.
        body["metadata"]["resourceVersion"] = mapping(current.get("metadata")).get(
            "resourceVersion"
        )
        cluster.replace_secret(namespace, body)
        actions.append(f"Secret {namespace}/{secret} renewed")
    return actions


@dataclass(frozen=True, slots=True)
class Finding:
    """One line of the check report; `ok` False marks a problem."""

    text: str
    ok: bool = True


def install_mode(selector: Mapping[str, Any]) -> str:
    """How an entry's namespaceSelector selects: opt-in, cluster-wide, or custom."""
    labels = mapping(selector.get("matchLabels"))
    if labels.get(keys.INJECT_LABEL) in (keys.NAMESPACE_ENABLED, keys.NAMESPACE_SHADOW):
        return keys.MODE_OPT_IN
    for expression in selector.get("matchExpressions") or []:
        if expression.get("key") == keys.INJECT_LABEL and expression.get("operator") == "NotIn":
            return keys.MODE_CLUSTER_WIDE
    return "custom"


def served_certificate_verifies(
    address: tuple[str, int], *, server_name: str, ca_bundle: bytes, timeout: float = 3.0
) -> Finding:
    """Handshake as the API server does: trust caBundle, expect the Service's name."""
    context = ssl.create_default_context(cadata=ca_bundle.decode())
    host, port = address
    try:
        with (
            socket.create_connection((host, port), timeout=timeout) as raw,
            context.wrap_socket(raw, server_hostname=server_name) as tls,
        ):
            cert = tls.getpeercert() or {}
    except ssl.SSLCertVerificationError as error:
        return Finding(
            f"served certificate at {host}:{port} FAILS against caBundle: {error.verify_message}",
            ok=False,
        )
    except OSError as error:
        return Finding(
            f"served certificate at {host}:{port}: not reachable from here ({error}); "
            "the Secret was checked instead"
        )
    expires = dt.datetime.strptime(str(cert.get("notAfter")), "%b %d %H:%M:%S %Y %Z")
    return Finding(
        f"served certificate at {host}:{port} verifies against caBundle as {server_name}"
        f" (until {expires:%Y-%m-%d})"
    )


def check(
    cluster: Cluster,
    *,
    webhook_config: str,
    secret: str,
    namespace: str | None = None,
    pod: str | None = None,
    address: tuple[str, int] | None = None,
    now: dt.datetime | None = None,
) -> list[Finding]:
    """What the installed webhook covers, whether its TLS is sound, and what happened to a pod."""
    now = now or dt.datetime.now(dt.UTC)
    findings: list[Finding] = []
    configuration = cluster.webhook_configuration(webhook_config)
    entries = configuration.get("webhooks") or []
    findings.append(
        Finding(f"MutatingWebhookConfiguration {webhook_config}: {len(entries)} entries")
    )
    if not entries:
        return [*findings, Finding("no webhook entries: nothing is mutated", ok=False)]
    service = mapping(mapping(entries[0].get("clientConfig")).get("service"))
    service_name, service_ns = string(service.get("name")), string(service.get("namespace"))
    for entry in entries:
        client_config = mapping(entry.get("clientConfig"))
        target = mapping(client_config.get("service"))
        findings.append(
            Finding(
                f"  {entry.get('name')}: {install_mode(mapping(entry.get('namespaceSelector')))}, "
                f"path {target.get('path', '/')}, failurePolicy {entry.get('failurePolicy')}, "
                f"timeout {entry.get('timeoutSeconds')}s"
            )
        )

    namespaces = {
        string(mapping(ns.get("metadata")).get("name")): mapping(
            mapping(ns.get("metadata")).get("labels")
        )
        for ns in cluster.namespaces()
    }
    mutated, shadowed = _covered(entries, namespaces)
    shown = [namespace] if namespace else sorted(namespaces)
    findings.append(
        Finding("namespaces mutated: " + (", ".join(n for n in shown if n in mutated) or "none"))
    )
    findings.append(
        Finding("namespaces in shadow: " + (", ".join(n for n in shown if n in shadowed) or "none"))
    )

    ca_bundle = base64.b64decode(
        string(mapping(entries[0].get("clientConfig")).get("caBundle")) or ""
    )
    findings.extend(_certificate_findings(cluster, ca_bundle, service_ns, secret, now))
    if service_name and ca_bundle:
        server_name = f"{service_name}.{service_ns}.svc"
        findings.append(
            served_certificate_verifies(
                address or (server_name, int(service.get("port") or 443)),
                server_name=server_name,
                ca_bundle=ca_bundle,
            )
        )
    if pod:
        if not namespace:
            return [*findings, Finding("--pod needs --namespace", ok=False)]
        findings.append(
            _pod_finding(
                cluster.pod(namespace, pod),
                namespace,
                mutated=namespace in mutated,
                shadowed=namespace in shadowed,
            )
        )
    return findings


def _covered(
    entries: list[Any], namespaces: Mapping[str, Mapping[str, str]]
) -> tuple[set[str], set[str]]:
    mutated: set[str] = set()
    shadowed: set[str] = set()
    for entry in entries:
        path = mapping(mapping(entry.get("clientConfig")).get("service")).get("path", "")
        into = shadowed if str(path).endswith("/shadow") else mutated
        selector = mapping(entry.get("namespaceSelector"))
        into.update(
            n for n, labels in namespaces.items() if label_selector_matches(selector, labels)
        )
    return mutated, shadowed


def _certificate_findings(
    cluster: Cluster, ca_bundle: bytes, namespace: str, secret: str, now: dt.datetime
) -> list[Finding]:
    if not ca_bundle:
        return [Finding("caBundle is empty: the API server cannot verify the webhook", ok=False)]
    data = _secret_data(cluster.secret(namespace, secret))
    cert = data.get(certs.CERT_FILE)
    if not cert:
        return [Finding(f"Secret {namespace}/{secret} has no tls.crt", ok=False)]
    expires = certs.not_after(cert)
    days = (expires - now).days
    findings = [
        Finding(
            f"Secret {namespace}/{secret}: certificate valid until {expires:%Y-%m-%d} "
            f"({days} days)",
            ok=days > 0,
        )
    ]
    if certs.issued_by(cert, ca_bundle):
        findings.append(Finding("caBundle verifies the Secret's certificate"))
    else:
        findings.append(Finding("caBundle does NOT verify the Secret's certificate", ok=False))
    return findings


def _pod_finding(
    pod: Mapping[str, Any], namespace: str, *, mutated: bool, shadowed: bool
) -> Finding:
    name = f"Pod {namespace}/{mapping(pod.get('metadata')).get('name')}"
    annotations = mapping(mapping(pod.get("metadata")).get("annotations"))
    status = annotations.get(keys.STATUS_ANNOTATION)
    if status:
        return Finding(f"{name} was mutated: {status}")
    if not (mutated or shadowed):
        return Finding(
            f"{name} was not mutated: its namespace is not selected "
            f"(label it {keys.INJECT_LABEL}={keys.NAMESPACE_ENABLED})",
            ok=False,
        )
    decision = mutate(pod, context=Context(namespace=namespace, shadow=shadowed and not mutated))
    if decision.decision in (keys.PATCHED, keys.SHADOW):
        why = (
            "its namespace is in shadow"
            if decision.decision == keys.SHADOW
            else "the webhook was not called or failed open (see its logs and metrics)"
        )
        return Finding(f"{name} was not mutated but would be: {why}", ok=False)
    return Finding(f"{name} was not mutated: {decision.decision} ({decision.reason})")
