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
import json
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

from webhook.adapters import certs
from webhook.adapters.kube.client import NOT_FOUND, Cluster, KubeError, secret_data
from webhook.adapters.kube.probe import handshake
from webhook.core.kinds import ISVC_KIND, LLMISVC_KIND
from webhook.core.model import DEFAULT_OPTIONS, Context, Decision, Options
from webhook.core.mutate import mutate
from webhook.core.names import (
    DEFAULT_LLM_CONTAINERS,
    DEFAULT_TARGET_CONTAINERS,
    INJECT_LABEL,
    ISVC_LABEL,
    PART_OF_LABEL,
    STATUS_ANNOTATION,
    SYSTEM_NAMESPACES,
    Action,
    Inject,
    Mode,
)
from webhook.core.raw import mapping, string
from webhook.core.view import pod_view
from webhook.inspect.installed_policies import InstalledPolicy, installed_policies
from webhook.offline.isolation import current

CERTIFICATE_KEEPER: Final = "multinode-webhook-certs"
# The label the API server gives every namespace, which selectors may name.
_NAME_LABEL: Final = "kubernetes.io/metadata.name"

# What admission decides for a pod: `decided`, unless a test hands in another.
Decide = Callable[[Mapping[str, Any], Context], Decision]


def decided(
    pod: Mapping[str, Any], context: Context, *, options: Options = DEFAULT_OPTIONS
) -> Decision:
    """What admission decides for a cluster's pod under `options` (a server's defaults unless
    given), its scripts parsed under the run's isolation (the command line's sandbox), and a
    script that crashes the parser answered `parser-failed` as admission answers it."""
    return mutate(pod_view(pod), context=context, options=options, rewrites=current().rewrite)


@dataclass(frozen=True, slots=True)
class Finding:
    """One line of the check report: `ok` False marks a problem, `verified` False what could
    not be verified from here (neither a problem nor a pass)."""

    text: str
    ok: bool = True
    verified: bool = True


def label_selector_matches(selector: Mapping[str, Any] | None, labels: Mapping[str, str]) -> bool:
    """Kubernetes label selector semantics: matchLabels and matchExpressions, all must hold.

    An empty or absent selector matches everything.
    """
    selector = mapping(selector)
    for key, value in mapping(selector.get("matchLabels")).items():
        if labels.get(key) != value:
            return False
    for expression in selector.get("matchExpressions") or []:
        key, operator = expression.get("key"), expression.get("operator")
        values = expression.get("values") or []
        present = key in labels
        if operator == "In" and not (present and labels[key] in values):
            return False
        if operator == "NotIn" and present and labels[key] in values:
            return False
        if operator == "Exists" and not present:
            return False
        if operator == "DoesNotExist" and present:
            return False
    return True


def install_mode(selector: Mapping[str, Any]) -> str:
    """How an entry's namespaceSelector selects: opt-in, cluster-wide, or custom."""
    labels = mapping(selector.get("matchLabels"))
    if labels.get(INJECT_LABEL) in (Inject.ENABLED, Inject.SHADOW):
        return Mode.OPT_IN
    for expression in selector.get("matchExpressions") or []:
        if expression.get("key") == INJECT_LABEL and expression.get("operator") == "NotIn":
            return Mode.CLUSTER_WIDE
    return "custom"


# The container names a matchConditions expression lets through: `c.name in ['a', 'b']`.
_CEL_NAMES = re.compile(r"\.name\s+in\s+\[([^\]]*)\]")
_QUOTED = re.compile(r"'([^']*)'|\"([^\"]*)\"")


@dataclass(frozen=True, slots=True)
class Family:
    """The pods a webhook entry is for, told by the label its objectSelector keys on, and the
    `serve` flag (and its environment variable) naming their target containers."""

    pods: str
    label: str
    flag: str
    default: tuple[str, ...]

    @property
    def env(self) -> str:
        return "MULTINODE_WEBHOOK_" + self.flag.removeprefix("--").replace("-", "_").upper()


FAMILIES: Final = (
    Family(ISVC_KIND, ISVC_LABEL, "--containers", DEFAULT_TARGET_CONTAINERS),
    Family(LLMISVC_KIND, PART_OF_LABEL, "--llm-containers", DEFAULT_LLM_CONTAINERS),
)


def entry_family(entry: Mapping[str, Any]) -> Family | None:
    """The family of pods an entry's objectSelector selects, or None for any other."""
    keys = {
        expression.get("key")
        for expression in mapping(entry.get("objectSelector")).get("matchExpressions") or []
    } | set(mapping(mapping(entry.get("objectSelector")).get("matchLabels")))
    return next((family for family in FAMILIES if family.label in keys), None)


def cel_container_names(entries: Sequence[Any]) -> set[str]:
    """The container names the entries' matchConditions list; empty when they list none."""
    found: set[str] = set()
    for entry in entries:
        for condition in mapping(entry).get("matchConditions") or []:
            expression = string(mapping(condition).get("expression"))
            for listed in _CEL_NAMES.findall(expression):
                found.update(single or double for single, double in _QUOTED.findall(listed))
    return found


def served_container_names(deployment: Mapping[str, Any], family: Family) -> set[str] | None:
    """The containers of `family`'s pods the Deployment's `serve` rewrites (its flag, else its
    environment variable, else the default); None when no container of it runs `serve`."""
    spec = mapping(mapping(mapping(deployment.get("spec")).get("template")).get("spec"))
    for container in spec.get("containers") or []:
        words = [*(container.get("command") or []), *(container.get("args") or [])]
        if "serve" not in words:
            continue
        flags = [
            value
            for word, value in zip(words, [*words[1:], ""], strict=True)
            if word == family.flag
        ]
        flags += [w.split("=", 1)[1] for w in words if w.startswith(family.flag + "=")]
        if flags:
            return set(flags)
        for variable in container.get("env") or []:
            if variable.get("name") == family.env:
                try:
                    return {str(name) for name in json.loads(string(variable.get("value")))}
                except (TypeError, ValueError):
                    return None
        return set(family.default)
    return None


def target_containers_findings(
    entries: Sequence[Any], deployment: Mapping[str, Any] | None, *, name: str
) -> list[Finding]:
    """Whether the server and the API server agree on which containers are targets, for each
    family of pods: a name the matchConditions leave out is never sent to the server."""
    findings: list[Finding] = []
    for family in FAMILIES:
        chosen = [entry for entry in entries if entry_family(mapping(entry)) is family]
        if not chosen:
            findings.append(
                Finding(f"{family.pods} pods: no webhook entry selects them (not covered)")
            )
            continue
        findings.append(_containers_finding(family, chosen, deployment, name=name))
    return findings


def _containers_finding(
    family: Family, entries: Sequence[Any], deployment: Mapping[str, Any] | None, *, name: str
) -> Finding:
    listed = cel_container_names(entries)
    if not listed:
        return Finding(f"{family.pods} pods: matchConditions do not filter by container name")
    served = served_container_names(deployment, family) if deployment is not None else None
    if served is None:
        return Finding(
            f"Deployment {name} running serve not found: "
            f"its {family.flag} were not compared with the matchConditions",
            verified=False,
        )
    if served == listed:
        return Finding(
            f"{family.pods} target containers: {', '.join(sorted(served))} (server and CEL agree)"
        )
    return Finding(
        f"{family.pods} target containers differ: the server rewrites "
        f"{', '.join(sorted(served))} ({family.flag}), the matchConditions let through "
        f"{', '.join(sorted(listed))}; a name on one side only is never rewritten",
        ok=False,
    )


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
    return Finding(f"Service {name}: {ready} ready endpoints")


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


def keeper_finding(deployment: Mapping[str, Any] | None, *, namespace: str, name: str) -> Finding:
    """Whether the Deployment that makes and renews the serving certificate runs, when the
    install has one."""
    if deployment is None:
        return Finding(
            f"Deployment {namespace}/{name} not found: certificates come from cert-manager, "
            "or nothing renews them",
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
        Finding(f"MutatingWebhookConfiguration {webhook_config}: {len(entries)} entries")
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
    findings.extend(_certificate_findings(cluster, ca_bundle, service_ns, secret, now))
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


def shadows(entry: Mapping[str, Any]) -> bool:
    """Whether a webhook entry calls /mutate/shadow, which never patches."""
    path = mapping(mapping(entry.get("clientConfig")).get("service")).get("path", "")
    return str(path).endswith("/shadow")


def webhook_configuration(cluster: Cluster, name: str) -> dict[str, Any] | None:
    """The MutatingWebhookConfiguration, or None when there is none (a policy-only install)."""
    try:
        return cluster.webhook_configuration(name)
    except KubeError as error:
        if error.status == NOT_FOUND:
            return None
        raise


def policy_selects(
    policy: InstalledPolicy, namespace_labels: Mapping[str, str], pod_labels: Mapping[str, str]
) -> bool:
    """Whether a binding of the policy selects a pod with these labels in such a namespace."""
    return any(
        label_selector_matches(namespaces, namespace_labels)
        and label_selector_matches(objects, pod_labels)
        for _, namespaces, objects in policy.bindings
    )


def namespace_labels(cluster: Cluster) -> dict[str, dict[str, str]]:
    """Every namespace's labels, with the name label the API server gives each, which
    namespace selectors may name."""
    found = {}
    for item in cluster.namespaces():
        metadata = mapping(item.get("metadata"))
        name = string(metadata.get("name"))
        found[name] = {**mapping(metadata.get("labels")), _NAME_LABEL: name}
    return found


def policy_namespaces(
    policy: InstalledPolicy, namespaces: Mapping[str, Mapping[str, str]]
) -> list[str]:
    """The namespaces a binding of the policy selects, but the system ones, which the policy's
    own conditions leave out."""
    return [
        name
        for name, labels in sorted(namespaces.items())
        if name not in SYSTEM_NAMESPACES
        and any(label_selector_matches(selector, labels) for _, selector, _ in policy.bindings)
    ]


def policy_findings(
    policies: Sequence[InstalledPolicy],
    namespaces: Mapping[str, Mapping[str, str]],
    shown: Sequence[str],
) -> list[Finding]:
    """What the compiled policies repair: their scripts, the presets they cover every
    service of, and the namespaces they bind."""
    findings = []
    for policy in policies:
        exact = len(policy.digests) - len(policy.templates)
        held = [f"{exact} scripts"] if exact or not policy.templates else []
        if policy.templates:
            held.append(f"{len(policy.templates)} preset scripts")
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


def covered_namespaces(
    entries: list[Any], namespaces: Mapping[str, Mapping[str, str]]
) -> tuple[set[str], set[str]]:
    """(the namespaces some entry mutates, those some entry shadows), by namespace selector."""
    mutated: set[str] = set()
    shadowed: set[str] = set()
    for entry in entries:
        into = shadowed if shadows(entry) else mutated
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
