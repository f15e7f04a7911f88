"""The read-only cluster report: what the installed webhook covers, whether it is serving
(Deployment, endpoints, certificate Deployment, Secret), whether its TLS is sound, and why a
given pod was or was not mutated.

A webhook that fails open is silent when it is down: every pod is admitted unrepaired. So each
way it can be down is a problem here, and what cannot be verified from where `check` runs is
said, never passed over.
"""

from __future__ import annotations

import base64
import datetime as dt
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from webhook.adapters.kube.client import NOT_FOUND, Cluster, KubeError
from webhook.core.model import DEFAULT_OPTIONS, Context, Decision, Options
from webhook.core.mutate import mutate
from webhook.core.names import (
    INJECT_LABEL,
    STATUS_ANNOTATION,
    Action,
    Inject,
)
from webhook.core.raw import mapping, string
from webhook.core.view import pod_view
from webhook.inspect.findings import Finding, counted
from webhook.inspect.installed_policies import InstalledPolicy, installed_policies
from webhook.inspect.selectors import (
    covered_namespaces,
    install_mode,
    namespace_labels,
    policy_namespaces,
)
from webhook.inspect.serving import (
    CERTIFICATE_KEEPER,
    certificate_findings,
    keeper_finding,
    served_certificate_finding,
    serving_findings,
    webhook_service,
)
from webhook.inspect.targets import entry_family, target_containers_findings
from webhook.offline.isolation import current

# What admission decides for a pod: `decided`, unless a test hands in another.
Decide = Callable[[Mapping[str, Any], Context], Decision]


def decided(
    pod: Mapping[str, Any], context: Context, *, options: Options = DEFAULT_OPTIONS
) -> Decision:
    """What admission decides for a cluster's pod under `options` (a server's defaults unless
    given), its scripts parsed under the run's isolation (the command line's sandbox), and a
    script that crashes the parser answered `parser-failed` as admission answers it."""
    return mutate(pod_view(pod), context=context, options=options, rewrites=current().rewrite)


def check(
    cluster: Cluster,
    *,
    webhook_config: str,
    secret: str,
    namespace: str | None = None,
    pod: str | None = None,
    address: tuple[str, int] | None = None,
    now: dt.datetime | None = None,
    decide: Decide = decided,
) -> list[Finding]:
    """What the installed webhook and compiled policies cover, whether the webhook's TLS is
    sound, and what happened to a pod."""
    now = now or dt.datetime.now(dt.UTC)
    namespaces = namespace_labels(cluster)
    shown = [namespace] if namespace else sorted(namespaces)
    policies = installed_policies(cluster)
    policy_lines = policy_findings(policies, namespaces, shown)
    configuration = webhook_configuration(cluster, webhook_config)
    if configuration is None:
        missing = Finding(
            f"MutatingWebhookConfiguration {webhook_config} not found"
            + (": the compiled policies alone repair pods" if policies else ": nothing is mutated"),
            ok=bool(policies),
        )
        return [missing, *policy_lines]
    findings: list[Finding] = []
    entries = configuration.get("webhooks") or []
    findings.append(
        Finding(
            f"MutatingWebhookConfiguration {webhook_config}: {counted(len(entries), 'webhook')}"
        )
    )
    if not entries:
        return [*findings, Finding("no webhook entries: nothing is mutated", ok=False)]
    service = mapping(mapping(entries[0].get("clientConfig")).get("service"))
    service_ns, service_name = webhook_service(entries)
    for entry in entries:
        client_config = mapping(entry.get("clientConfig"))
        target = mapping(client_config.get("service"))
        family = entry_family(entry)
        findings.append(
            Finding(
                f"  {entry.get('name')}: {family.pods if family else 'any'} pods, "
                f"{install_mode(mapping(entry.get('namespaceSelector')))}, "
                f"path {target.get('path', '/')}, failurePolicy {entry.get('failurePolicy')}, "
                f"timeout {entry.get('timeoutSeconds')}s"
            )
        )

    deployment = cluster.deployment(service_ns, service_name)
    findings += [
        *target_containers_findings(entries, deployment, name=f"{service_ns}/{service_name}"),
        *serving_findings(cluster, deployment, namespace=service_ns, name=service_name),
        keeper_finding(
            cluster.deployment(service_ns, CERTIFICATE_KEEPER),
            configuration,
            namespace=service_ns,
            name=CERTIFICATE_KEEPER,
        ),
    ]

    mutated, shadowed = covered_namespaces(entries, namespaces)
    findings.append(
        Finding("namespaces mutated: " + (", ".join(n for n in shown if n in mutated) or "none"))
    )
    findings.append(
        Finding("namespaces in shadow: " + (", ".join(n for n in shown if n in shadowed) or "none"))
    )
    findings.extend(policy_lines)

    ca_bundle = base64.b64decode(
        string(mapping(entries[0].get("clientConfig")).get("caBundle")) or ""
    )
    findings.extend(certificate_findings(cluster, ca_bundle, service_ns, secret, now))
    if service_name and ca_bundle:
        server_name = f"{service_name}.{service_ns}.svc"
        findings.append(
            served_certificate_finding(
                address or (server_name, int(service.get("port") or 443)),
                server_name=server_name,
                ca_bundle=ca_bundle,
                given=address is not None,
            )
        )
    if pod and namespace:
        findings.append(
            _pod_finding(
                cluster.pod(namespace, pod),
                namespace,
                mutated=namespace in mutated,
                shadowed=namespace in shadowed,
                decide=decide,
            )
        )
    return findings


def webhook_configuration(cluster: Cluster, name: str) -> dict[str, Any] | None:
    """The MutatingWebhookConfiguration, or None when there is none (a policy-only install)."""
    try:
        return cluster.webhook_configuration(name)
    except KubeError as error:
        if error.status == NOT_FOUND:
            return None
        raise


def policy_findings(
    policies: Sequence[InstalledPolicy],
    namespaces: Mapping[str, Mapping[str, str]],
    shown: Sequence[str],
) -> list[Finding]:
    """What the compiled policies repair: their scripts, the presets they cover every
    service of, and the namespaces they bind."""
    findings = []
    for policy in policies:
        exact = len(policy.digests) - len(policy.patterns)
        held = [counted(exact, "script")] if exact or not policy.patterns else []
        if policy.patterns:
            held.append(counted(len(policy.patterns), "preset script"))
        findings.append(
            Finding(
                f"MutatingAdmissionPolicy {policy.name}: {' and '.join(held)} "
                f"(compiled by {policy.version or 'an unknown version'}), "
                f"failurePolicy {policy.failure_policy}"
            )
        )
        for preset, roles in _presets(policy.presets).items():
            findings.append(
                Finding(
                    f"  preset {preset}: its {', '.join(f'spec.{r}' for r in roles)} pods, "
                    "for every LLMInferenceService"
                )
            )
        if not policy.bindings:
            findings.append(
                Finding(f"  no binding names {policy.name}: it repairs nothing", ok=False)
            )
        bound = [n for n in policy_namespaces(policy, namespaces) if n in shown]
        findings.append(Finding(f"  namespaces the policy repairs: {', '.join(bound) or 'none'}"))
    return findings


def _presets(sources: Sequence[str]) -> dict[str, list[str]]:
    """The presets a policy names (`<where>: <kind>/<name> <role> <container>`), each with
    the roles (where their pod templates sit) whose pods it covers."""
    found: dict[str, list[str]] = {}
    for source in sources:
        preset, _, role = source.rpartition(" ")[0].rpartition(" ")
        if preset:
            found.setdefault(preset, []).append(role)
    return found


def _pod_finding(
    pod: Mapping[str, Any], namespace: str, *, mutated: bool, shadowed: bool, decide: Decide
) -> Finding:
    name = f"Pod {namespace}/{mapping(pod.get('metadata')).get('name')}"
    annotations = mapping(mapping(pod.get("metadata")).get("annotations"))
    status = annotations.get(STATUS_ANNOTATION)
    if status:
        return Finding(f"{name} was mutated: {status}")
    if not (mutated or shadowed):
        return Finding(
            f"{name} was not mutated: its namespace is not selected "
            f"(label it {INJECT_LABEL}={Inject.ENABLED})",
            ok=False,
        )
    decision = decide(pod, Context(namespace=namespace, shadow=shadowed and not mutated))
    if decision.action in (Action.PATCHED, Action.SHADOW):
        why = (
            "its namespace is in shadow"
            if decision.action is Action.SHADOW
            else "the webhook was not called or failed open (see its logs and metrics)"
        )
        return Finding(f"{name} was not mutated but would be: {why}", ok=False)
    return Finding(f"{name} was not mutated: {decision.action} ({decision.reason})")
