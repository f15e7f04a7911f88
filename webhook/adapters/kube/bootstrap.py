"""Certificate bootstrap: keep the webhook's serving Secret and its configuration's `caBundle`
in step, creating or renewing the pair when it is missing, unsound or about to expire, once or
for as long as the process runs."""

from __future__ import annotations

import base64
import datetime as dt
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Final

from webhook.adapters import certs
from webhook.adapters.kube.client import Cluster, KubeError, secret_data
from webhook.core import patch
from webhook.core.patch import PatchOp
from webhook.core.raw import mapping

PREVIOUS_CA: Final = "ca-previous.crt"


@dataclass(frozen=True, slots=True)
class Outcome:
    """What one bootstrap pass did, a line each, and whether it wrote anything."""

    lines: list[str]
    changed: bool


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


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
    except (ValueError, TypeError) as error:  # TypeError: a key encrypted with a password
        return f"unreadable certificate or key ({error})"
    if not matching:
        return "key does not match the certificate"
    if not signed:
        return "certificate not signed by ca.crt"
    if not covered:
        return "certificate does not name the Service"
    if expires - now < renew_before:
        return f"certificate expires {expires:%Y-%m-%d}, within the renewal window"
    return None


def ensure_ca_bundle(cluster: Cluster, name: str, bundle: bytes) -> Outcome:
    """Write `bundle` as every entry's caBundle where it differs; say what was done."""
    configuration = cluster.webhook_configuration(name)
    wanted = certs.ca_bundle(bundle)
    ops: list[PatchOp] = []
    for index, entry in enumerate(configuration.get("webhooks") or []):
        if mapping(entry.get("clientConfig")).get("caBundle") == wanted:
            continue
        # The test op pins the index to the entry we read, should the list change meanwhile.
        ops.append(patch.test(patch.pointer("webhooks", index, "name"), entry.get("name")))
        ops.append(patch.add(patch.pointer("webhooks", index, "clientConfig", "caBundle"), wanted))
    if not ops:
        return Outcome([f"caBundle of {name} already current"], changed=False)
    cluster.patch_webhook_configuration(name, ops)
    return Outcome([f"caBundle written to {len(ops) // 2} entries of {name}"], changed=True)


def _secret_body(
    bundle: certs.Bundle, *, namespace: str, secret: str, old_ca: bytes | None
) -> dict[str, Any]:
    return {
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
) -> Outcome:
    """Create or renew the serving Secret and keep `caBundle` trusting it. Safe to rerun.

    On renewal the new CA goes into `caBundle` next to the old one before the Secret changes,
    so no handshake fails while the pods pick up the new pair; the old CA stays in the bundle
    (as `ca-previous.crt` in the Secret) until it expires or the next renewal.
    """
    now = now or dt.datetime.now(dt.UTC)
    sans = certs.service_sans(service, namespace)
    current = cluster.secret(namespace, secret)
    data = secret_data(current)
    reason = renewal_reason(data, sans=sans, now=now, renew_before=renew_before)
    if reason is None:
        previous = _unexpired_ca(data.get(PREVIOUS_CA), now)
        bundled = ensure_ca_bundle(cluster, webhook_config, data[certs.CA_FILE] + (previous or b""))
        return Outcome([f"Secret {namespace}/{secret} is current", *bundled.lines], bundled.changed)

    bundle = certs.generate(sans=sans, days=days, now=now)
    old_ca = _unexpired_ca(data.get(certs.CA_FILE), now) if current else None
    actions = [
        f"new certificate for {service}.{namespace}.svc: {reason}",
        *ensure_ca_bundle(cluster, webhook_config, bundle.ca_pem + (old_ca or b"")).lines,
    ]
    body = _secret_body(bundle, namespace=namespace, secret=secret, old_ca=old_ca)
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
    return Outcome(actions, changed=True)


def keep(
    run: Callable[[], Outcome],
    *,
    every: dt.timedelta,
    stop: threading.Event,
    say: Callable[[str], None],
    first_retry: dt.timedelta = dt.timedelta(seconds=5),
) -> None:
    """`run` (a bootstrap) now and every `every` until `stop` is set: the long-running form,
    for a Deployment, whose pod template (unlike a Job's) an upgrade may change.

    A pass is said when it wrote something or reads otherwise than the pass before, so a quiet
    install logs nothing after its first pass. A failed pass is said and retried sooner, from
    `first_retry` doubling up to `every`, so a missing permission or an API outage heals by
    itself.
    """
    said: list[str] = []
    retry = first_retry
    while not stop.is_set():
        try:
            outcome = run()
        except KubeError as error:
            wait = min(retry, every)
            say(f"error: {error}; trying again in {int(wait.total_seconds())}s")
            said, retry = [], retry * 2
            stop.wait(wait.total_seconds())
            continue
        if outcome.changed or outcome.lines != said:
            for line in outcome.lines:
                say(line)
            said = outcome.lines
        retry = first_retry
        stop.wait(every.total_seconds())
