"""Whether an install serves: its Deployment and endpoints, the Service the webhook
configuration names, the certificate keeper, and the certificate the server presents against
the configuration's caBundle."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from typing import Any, Final

from webhook.adapters import certs
from webhook.adapters.kube.client import Cluster, secret_data
from webhook.adapters.kube.probe import handshake
from webhook.core.raw import mapping, string
from webhook.inspect.findings import Finding, counted

CERTIFICATE_KEEPER: Final = "multinode-webhook-certs"
# Annotations on the webhook configuration by which another keeper of the certificate writes
# its CA into caBundle, and renews the pair: OpenShift's service CA, or cert-manager's CA
# injector (from the Certificate the value names).
OPENSHIFT_INJECT_CABUNDLE: Final = "service.beta.openshift.io/inject-cabundle"
CERT_MANAGER_INJECT_CA_FROM: Final = "cert-manager.io/inject-ca-from"


_DOWN = "pods are admitted unrepaired while it is (failurePolicy Ignore)"


def deployment_finding(
    deployment: Mapping[str, Any] | None, *, namespace: str, name: str
) -> Finding:
    """Whether the webhook's Deployment has a ready replica."""
    if deployment is None:
        return Finding(
            f"Deployment {namespace}/{name} not found: nothing serves the webhook; {_DOWN}",
            ok=False,
        )
    wanted = mapping(deployment.get("spec")).get("replicas", 1)
    ready = mapping(deployment.get("status")).get("readyReplicas") or 0
    if not ready:
        return Finding(
            f"Deployment {namespace}/{name} has no ready replicas (0 of {wanted}): {_DOWN}; "
            f"see kubectl -n {namespace} describe deploy/{name}",
            ok=False,
        )
    return Finding(f"Deployment {namespace}/{name}: {ready} of {wanted} replicas ready")


def endpoints_finding(slices: Sequence[Mapping[str, Any]], *, name: str) -> Finding:
    """Whether the Service the API server calls has a ready endpoint."""
    ready = sum(
        1
        for piece in slices
        for endpoint in piece.get("endpoints") or []
        # An unset condition means ready (discovery.k8s.io/v1).
        if mapping(endpoint.get("conditions")).get("ready") is not False
    )
    if not ready:
        return Finding(f"Service {name} has no ready endpoints: {_DOWN}", ok=False)
    return Finding(f"Service {name}: {counted(ready, 'ready endpoint')}")


def webhook_service(entries: Sequence[Any]) -> tuple[str, str]:
    """(namespace, name) of the Service the first entry calls: the webhook's own, whose
    Deployment bears the same name."""
    first = mapping(entries[0]) if entries else {}
    service = mapping(mapping(first.get("clientConfig")).get("service"))
    return string(service.get("namespace")), string(service.get("name"))


def serving_findings(
    cluster: Cluster, deployment: Mapping[str, Any] | None, *, namespace: str, name: str
) -> list[Finding]:
    """Whether something serves the webhook: its Deployment's ready replicas and its
    Service's ready endpoints."""
    return [
        deployment_finding(deployment, namespace=namespace, name=name),
        endpoints_finding(cluster.endpoint_slices(namespace, name), name=f"{namespace}/{name}"),
    ]


def keeper_finding(
    deployment: Mapping[str, Any] | None,
    configuration: Mapping[str, Any],
    *,
    namespace: str,
    name: str,
) -> Finding:
    """Whether the Deployment that makes and renews the serving certificate runs, when the
    install has one; else whether the webhook configuration names another keeper."""
    if deployment is None:
        annotations = mapping(mapping(configuration.get("metadata")).get("annotations"))
        if annotations.get(OPENSHIFT_INJECT_CABUNDLE) == "true":
            return Finding(
                "OpenShift's service CA makes and renews the serving certificate "
                f"({OPENSHIFT_INJECT_CABUNDLE} on the webhook configuration)"
            )
        certificate = annotations.get(CERT_MANAGER_INJECT_CA_FROM)
        if isinstance(certificate, str) and certificate:
            return Finding(
                f"cert-manager makes and renews the serving certificate (Certificate "
                f"{certificate}, {CERT_MANAGER_INJECT_CA_FROM} on the webhook configuration)"
            )
        return Finding(
            f"Deployment {namespace}/{name} not found, and the webhook configuration names no "
            f"other keeper ({OPENSHIFT_INJECT_CABUNDLE} or {CERT_MANAGER_INJECT_CA_FROM}): "
            "nothing may renew the serving certificate",
            verified=False,
        )
    if not mapping(deployment.get("status")).get("readyReplicas"):
        return Finding(
            f"Deployment {namespace}/{name} has no ready replica: the serving certificate is "
            f"neither made nor renewed; see kubectl -n {namespace} logs deploy/{name}",
            ok=False,
        )
    return Finding(f"Deployment {namespace}/{name} keeps the serving certificate")


def served_certificate_finding(
    address: tuple[str, int], *, server_name: str, ca_bundle: bytes, given: bool
) -> Finding:
    """Whether the certificate served at `address` verifies as the API server would see it.
    An address the user `given` that cannot be reached is a problem; the Service's own, from
    outside the cluster, is only not verified."""
    host, port = address
    found = handshake(address, server_name=server_name, ca_bundle=ca_bundle)
    if found.verified is None:
        if given:
            return Finding(f"--address {host}:{port} cannot be reached: {found.detail}", ok=False)
        return Finding(
            f"served certificate NOT verified: {host}:{port} is not reachable from here "
            f"({found.detail}); the Secret was checked instead (--address HOST:PORT through "
            "kubectl port-forward verifies it)",
            verified=False,
        )
    if not found.verified:
        return Finding(
            f"served certificate at {host}:{port} FAILS against caBundle: {found.detail}",
            ok=False,
        )
    return Finding(
        f"served certificate at {host}:{port} verifies against caBundle as {server_name}"
        f" (until {found.expires:%Y-%m-%d})"
    )


def certificate_findings(
    cluster: Cluster, ca_bundle: bytes, namespace: str, secret: str, now: dt.datetime
) -> list[Finding]:
    if not ca_bundle:
        return [Finding("caBundle is empty: the API server cannot verify the webhook", ok=False)]
    found = cluster.secret(namespace, secret)
    if found is None:
        return [
            Finding(
                f"Secret {namespace}/{secret} not found: the webhook's pods cannot start "
                "without their serving certificate",
                ok=False,
            )
        ]
    data = secret_data(found)
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
