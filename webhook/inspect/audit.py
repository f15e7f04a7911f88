"""The audit: running pods the webhook should have repaired and did not.

The webhook fails open, so a pod created while it was down, or before it was installed, runs
with its args dropped until it is recreated. The audit finds them: pods the installed
configuration covers (an entry's namespace and object selectors, as the API server evaluates
them; shadow entries never patch) that carry no status annotation and that admission would
patch now. It groups them by owner (the Deployment behind their ReplicaSet, or the
LeaderWorkerSet of an LLMInferenceService's multi-node pods) and by the InferenceService or
LLMInferenceService of their labels, and says how to recreate them through the webhook. It also
names the LLMInferenceService pods whose args replaced their script, as admission names them:
recreating those changes nothing, only a fix at the source does.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final, TypedDict

from webhook.adapters.kube.client import Cluster
from webhook.core import patch
from webhook.core.kinds import LWS_NAME_LABEL, NAME_LABEL
from webhook.core.model import Context
from webhook.core.names import (
    ISVC_LABEL,
    LLMISVC_PART_OF,
    PART_OF_LABEL,
    STATUS_ANNOTATION,
    Action,
    Reason,
)
from webhook.core.patch import PatchOp
from webhook.core.raw import mapping, string
from webhook.core.rewrite import problem_text
from webhook.inspect.installation import Decide, decided, webhook_configuration
from webhook.inspect.installed_policies import installed_policies, policy_leaves_pod
from webhook.inspect.selectors import (
    covered_namespaces,
    label_selector_matches,
    namespace_labels,
    policy_namespaces,
    policy_selects,
    shadows,
)
from webhook.inspect.serving import serving_findings, webhook_service

RESTARTED_AT: Final = "kubectl.kubernetes.io/restartedAt"
LWS_GROUP: Final = "leaderworkerset.sigs.k8s.io/group-index"
# The LLMInferenceService of a pod: KServe names it in this label.


@dataclass
class PodOwner:
    """The pods of one owner that need recreating, and how."""

    namespace: str
    kind: str  # "Deployment", "LeaderWorkerSet", or "Pod" when neither owns it
    name: str
    inference_service: str
    llm_inference_service: str = ""
    pods: list[str] = field(default_factory=list)
    # The newest creationTimestamp of those pods (RFC 3339, UTC: ordered as text).
    newest: str = ""
    # A LeaderWorkerSet's: the leader pods of the groups to recreate.
    leaders: list[str] = field(default_factory=list)

    def restart_command(self) -> str:
        if self.kind == "Deployment":
            return f"kubectl -n {self.namespace} rollout restart deployment/{self.name}"
        if self.kind == "LeaderWorkerSet":
            return (
                f"kubectl -n {self.namespace} delete pod {' '.join(self.leaders)}"
                "  # the LeaderWorkerSet recreates each group with its leader"
            )
        return f"kubectl -n {self.namespace} delete pod {self.name}  # no Deployment recreates it"


class OwnerJson(TypedDict):
    namespace: str
    kind: str
    name: str
    inferenceService: str
    llmInferenceService: str
    pods: list[str]
    restart: str


class ReplacedJson(TypedDict):
    namespace: str
    pod: str
    llmInferenceService: str
    problem: str


class UncoveredJson(TypedDict):
    namespace: str
    pod: str


class AuditJson(TypedDict):
    """`check --audit -o json`: the count to alert on, the owners behind it, the pods whose
    args replaced their script, which only a fix at the source repairs, the pods whose
    script no installed policy or webhook knows, and those whose args the policy leaves to a
    webhook that is not installed."""

    unrepaired: int
    namespaces: list[str]
    owners: list[OwnerJson]
    scriptReplaced: list[ReplacedJson]
    uncoveredScripts: list[UncoveredJson]
    policySkipped: list[UncoveredJson]


@dataclass(frozen=True, slots=True, order=True)
class Replaced:
    """A pod whose args replaced its preset's launch script (DESIGN §2.1): never rewritten, so
    recreating it changes nothing; its LLMInferenceService must be fixed (`migrate`)."""

    namespace: str
    pod: str
    llm_inference_service: str
    problem: str


@dataclass(frozen=True, slots=True)
class Audit:
    namespaces: tuple[str, ...]  # the namespaces looked at that an entry covers
    owners: tuple[PodOwner, ...]
    replaced: tuple[Replaced, ...] = ()
    # (namespace, pod) in a namespace only a compiled policy covers, whose script it does not
    # know: its runtime changed after the policy was compiled.
    uncovered: tuple[tuple[str, str], ...] = ()
    # (namespace, pod) only a compiled policy covers, whose script it knows and whose args it
    # leaves to the webhook (a quote in an eval launch's arg): recreating it changes nothing.
    skipped: tuple[tuple[str, str], ...] = ()

    @property
    def unrepaired(self) -> int:
        return sum(len(owner.pods) for owner in self.owners)

    def to_json(self) -> AuditJson:
        return {
            "unrepaired": self.unrepaired,
            "namespaces": list(self.namespaces),
            "owners": [
                {
                    "namespace": o.namespace,
                    "kind": o.kind,
                    "name": o.name,
                    "inferenceService": o.inference_service,
                    "llmInferenceService": o.llm_inference_service,
                    "pods": o.pods,
                    "restart": o.restart_command(),
                }
                for o in self.owners
            ],
            "scriptReplaced": [
                {
                    "namespace": r.namespace,
                    "pod": r.pod,
                    "llmInferenceService": r.llm_inference_service,
                    "problem": r.problem,
                }
                for r in self.replaced
            ],
            "uncoveredScripts": [
                {"namespace": namespace, "pod": pod} for namespace, pod in self.uncovered
            ],
            "policySkipped": [
                {"namespace": namespace, "pod": pod} for namespace, pod in self.skipped
            ],
        }


def _patching_entries(configuration: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    """The entries that patch: every one but those calling /mutate/shadow."""
    entries = map(mapping, configuration.get("webhooks") or [])
    return [entry for entry in entries if not shadows(entry)]


def covers(
    entries: Sequence[Mapping[str, Any]],
    *,
    namespace_labels: Mapping[str, str],
    pod_labels: Mapping[str, str],
) -> bool:
    """Whether any entry sends a pod with these labels, in a namespace with these, to us."""
    return any(
        label_selector_matches(mapping(entry.get("namespaceSelector")), namespace_labels)
        and label_selector_matches(mapping(entry.get("objectSelector")), pod_labels)
        for entry in entries
    )


def _unrepaired(
    pod: Mapping[str, Any], namespace: str, *, decide: Decide
) -> tuple[bool, str | None]:
    """(whether admission would patch the pod now, the problem it would name when the pod's
    args replaced its script); a pod the webhook rewrote is neither."""
    metadata = mapping(pod.get("metadata"))
    if STATUS_ANNOTATION in mapping(metadata.get("annotations")):
        return False, None
    decision = decide(pod, Context(namespace=namespace))
    if decision.reason is Reason.SCRIPT_REPLACED:
        replaced = [
            step.step.removeprefix("container/")
            for step in decision.trace
            if step.verdict is Reason.SCRIPT_REPLACED
        ]
        return False, problem_text(replaced)
    return decision.action is Action.PATCHED, None


def _owner(cluster: Cluster, pod: Mapping[str, Any], namespace: str) -> tuple[str, str]:
    """(kind, name) of the Deployment or LeaderWorkerSet that recreates the pod, else
    ("Pod", its name)."""
    metadata = mapping(pod.get("metadata"))
    lws = string(mapping(metadata.get("labels")).get(LWS_NAME_LABEL))
    if lws:
        return "LeaderWorkerSet", lws
    for reference in map(mapping, metadata.get("ownerReferences") or []):
        if reference.get("kind") != "ReplicaSet":
            continue
        replica_set = cluster.replica_set(namespace, string(reference.get("name")))
        for parent in mapping(mapping(replica_set).get("metadata")).get("ownerReferences") or []:
            if mapping(parent).get("kind") == "Deployment":
                return "Deployment", string(mapping(parent).get("name"))
    return "Pod", string(metadata.get("name"))


def audit(
    cluster: Cluster,
    *,
    webhook_config: str,
    namespace: str | None = None,
    decide: Decide = decided,
) -> Audit:
    """Every covered pod in `namespace` (or in all namespaces) the webhook left unrepaired."""
    configuration = webhook_configuration(cluster, webhook_config) or {}
    entries = _patching_entries(configuration)
    policies = installed_policies(cluster)
    labels = namespace_labels(cluster)
    mutated, _ = covered_namespaces(configuration.get("webhooks") or [], labels)
    bound = {name for policy in policies for name in policy_namespaces(policy, labels)}
    covered = [
        name
        for name in ([namespace] if namespace else sorted(labels))
        if name in mutated or name in bound
    ]
    owners: dict[tuple[str, str, str], PodOwner] = {}
    replaced: list[Replaced] = []
    uncovered: list[tuple[str, str]] = []
    skipped: list[tuple[str, str]] = []
    for name in covered:
        for pod in cluster.pods(name):
            metadata = mapping(pod.get("metadata"))
            pod_labels = mapping(metadata.get("labels"))
            by_webhook = covers(
                entries, namespace_labels=labels.get(name, {}), pod_labels=pod_labels
            )
            by_policy = [
                policy
                for policy in policies
                if policy_selects(policy, labels.get(name, {}), pod_labels)
            ]
            if not by_webhook and not by_policy:
                continue
            patched, problem = _unrepaired(pod, name, decide=decide)
            llm = pod_labels.get(PART_OF_LABEL) == LLMISVC_PART_OF
            service = string(pod_labels.get(NAME_LABEL)) if llm else ""
            if problem is not None:
                replaced.append(Replaced(name, string(metadata.get("name")), service, problem))
            if not patched:
                continue
            if not by_webhook and not any(policy.knows(pod) for policy in by_policy):
                uncovered.append((name, string(metadata.get("name"))))
                continue
            if not by_webhook and llm and policy_leaves_pod(pod):
                skipped.append((name, string(metadata.get("name"))))
                continue
            kind, owner_name = _owner(cluster, pod, name)
            key = (name, kind, owner_name)
            if key not in owners:
                owners[key] = PodOwner(
                    name,
                    kind,
                    owner_name,
                    string(pod_labels.get(ISVC_LABEL)),
                    service,
                )
            owner = owners[key]
            owner.pods.append(string(metadata.get("name")))
            if kind == "LeaderWorkerSet":
                # A group's leader is named after the set and the group's index.
                leader = f"{owner_name}-{string(pod_labels.get(LWS_GROUP)) or '0'}"
                if leader not in owner.leaders:
                    owner.leaders.append(leader)
            owner.newest = max(owner.newest, string(metadata.get("creationTimestamp")))
    return Audit(
        tuple(covered),
        tuple(owners[key] for key in sorted(owners)),
        tuple(sorted(replaced)),
        tuple(sorted(uncovered)),
        tuple(sorted(skipped)),
    )


def restart_ops(deployment: Mapping[str, Any], when: dt.datetime) -> tuple[PatchOp, ...]:
    """What `kubectl rollout restart` changes: the pod template's restartedAt annotation."""
    stamp = when.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    template = mapping(mapping(mapping(deployment.get("spec")).get("template")).get("metadata"))
    if template.get("annotations"):
        path = patch.pointer("spec", "template", "metadata", "annotations", RESTARTED_AT)
        return (patch.add(path, stamp),)
    if template:
        return (patch.add("/spec/template/metadata/annotations", {RESTARTED_AT: stamp}),)
    return (patch.add("/spec/template/metadata", {"annotations": {RESTARTED_AT: stamp}}),)


class NotServing(RuntimeError):
    """The webhook is down: pods recreated now would be admitted unrepaired again."""


def not_serving(cluster: Cluster, configuration: Mapping[str, Any]) -> list[str]:
    """Why nothing serves the webhook now (its Deployment, its Service's endpoints), or []."""
    namespace, name = webhook_service(configuration.get("webhooks") or [])
    deployment = cluster.deployment(namespace, name)
    found = serving_findings(cluster, deployment, namespace=namespace, name=name)
    return [finding.text for finding in found if not finding.ok]


def restart(
    cluster: Cluster, owners: Sequence[PodOwner], *, webhook_config: str, now: dt.datetime
) -> tuple[list[str], int]:
    """Restart every Deployment among `owners`, as `kubectl rollout restart` does, and delete
    the leaders of a LeaderWorkerSet's unrepaired groups, which it recreates whole: (what was
    done, one line each; how many owners are left unrepaired).

    Refused with `NotServing` while the webhook is down. A Deployment restarted after its
    unrepaired pods were created is left to its rollout, so a second run restarts nothing.
    """
    configuration = webhook_configuration(cluster, webhook_config)
    # Without a webhook, a compiled policy repairs the new pods inside the API server.
    down = not_serving(cluster, configuration) if configuration is not None else []
    if down:
        raise NotServing("; ".join(down))
    done, left = [], 0
    for owner in owners:
        where = f"{owner.namespace}/{owner.name}"
        if owner.kind == "LeaderWorkerSet":
            for leader in owner.leaders:
                cluster.delete_pod(owner.namespace, leader)
            done.append(
                f"deleted the leaders {', '.join(owner.leaders)} of LeaderWorkerSet {where}: "
                "it recreates their groups"
            )
            continue
        if owner.kind != "Deployment":
            done.append(f"skipped Pod {where}: no Deployment recreates it")
            left += 1
            continue
        deployment = cluster.deployment(owner.namespace, owner.name)
        if deployment is None:
            done.append(f"skipped Deployment {where}: it is gone")
            continue
        template = mapping(mapping(mapping(deployment.get("spec")).get("template")).get("metadata"))
        stamp = string(mapping(template.get("annotations")).get(RESTARTED_AT))
        if stamp and stamp >= owner.newest:
            done.append(
                f"skipped Deployment {where}: restarted at {stamp}, after its unrepaired pods "
                "were created; its rollout replaces them"
            )
            continue
        cluster.patch_deployment(owner.namespace, owner.name, restart_ops(deployment, now))
        done.append(f"restarted Deployment {where}")
    return done, left
