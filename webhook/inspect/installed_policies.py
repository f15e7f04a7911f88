"""The compiled policies installed in a cluster (`multinode-webhook policy`): which scripts
they repair, which namespaces their bindings select, and whether one covers a given pod.

Ours are the MutatingAdmissionPolicies that carry the shapes annotation: the digests of the
scripts compiled into them, and of the presets, whose patterns the policy's variables hold
(read back here as `webhook.core.pattern` reads them) with the presets' sources in the
presets annotation. A pod is covered when a binding of such a policy selects its namespace and
labels, and the digest of its target container's script is among them or its script is a
rendering of one of the patterns.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

from webhook.adapters.kube.client import Cluster
from webhook.core.evaluated import policy_leaves
from webhook.core.model import DEFAULT_CONTEXT, DEFAULT_OPTIONS, Options
from webhook.core.names import POLICY_PRESETS_ANNOTATION, POLICY_SHAPES_ANNOTATION, PREFIX
from webhook.core.pattern import ScriptPattern
from webhook.core.raw import is_string_list, mapping, string
from webhook.core.read import ContainerFacts, read_pod
from webhook.core.rewrite import container_shape
from webhook.core.view import pod_view

GROUP: Final = "admissionregistration.k8s.io"
VERSION: Final = "v1"


@dataclass(frozen=True, slots=True)
class InstalledPattern:
    """A preset's script as a policy holds it: the container's name, its command (the script
    word empty) and which word is the script, and the pattern the script must match."""

    name: str
    command: tuple[str, ...]
    word: int
    pattern: ScriptPattern

    def renders(self, name: str, command: Sequence[str]) -> bool:
        """Whether a container of this name and command is one the pattern covers."""
        if name != self.name or len(command) != len(self.command):
            return False
        others = [word for index, word in enumerate(command) if index != self.word]
        if others != [word for index, word in enumerate(self.command) if index != self.word]:
            return False
        return self.pattern.starts(command[self.word]) is not None


@dataclass(frozen=True, slots=True)
class InstalledPolicy:
    """A compiled policy, the digests of its scripts, its patterns and the presets they came
    from, and its bindings' selectors."""

    name: str
    version: str
    failure_policy: str
    digests: frozenset[str]
    # (binding name, namespaceSelector, objectSelector) of each binding naming the policy.
    bindings: tuple[tuple[str, Mapping[str, Any], Mapping[str, Any]], ...]
    patterns: tuple[InstalledPattern, ...] = ()
    presets: tuple[str, ...] = ()

    def knows(self, pod: Mapping[str, Any], options: Options = DEFAULT_OPTIONS) -> bool:
        """Whether the pod's script is one the policy repairs (its args aside)."""
        return any(
            digest in self.digests
            or (container.llm and any(t.renders(container.name, command) for t in self.patterns))
            for container, command, digest in _commanded(pod, options)
        )


def _strings(value: Any) -> list[str]:
    if not is_string_list(value):
        raise ValueError("not a list of strings")
    return list(value)


def held_patterns(spec: Mapping[str, Any]) -> tuple[InstalledPattern, ...]:
    """The patterns a policy's variables hold (CEL literals of lists, JSON text too), or
    none when they are not all there."""
    expressions = {
        string(mapping(v).get("name")): string(mapping(v).get("expression"))
        for v in spec.get("variables") or []
    }
    try:
        names = _strings(json.loads(expressions.get("templateNames", "[]")))
        words = json.loads(expressions.get("templateWords", "[]"))
        at = json.loads(expressions.get("templateWord", "[]"))
        longest = json.loads(expressions.get("templateLongest", "[]"))
        found = []
        for number, command in enumerate(words):
            runs = _strings(json.loads(expressions[f"t{number}runs"]))
            gaps = _strings(json.loads(expressions[f"t{number}gaps"]))
            found.append(
                InstalledPattern(
                    name=names[number],
                    command=tuple(_strings(command)),
                    word=int(at[number]),
                    pattern=ScriptPattern(tuple(runs), tuple(gaps), (), int(longest[number])),
                )
            )
    except (ValueError, KeyError, IndexError, TypeError):
        return ()
    return tuple(found)


def _listed(annotations: Mapping[str, Any], key: str) -> list[str]:
    """The strings of an annotation holding a JSON list (none when it holds anything else)."""
    try:
        found = json.loads(string(annotations.get(key)) or "[]")
    except ValueError:
        return []
    return [item for item in found if isinstance(item, str)] if isinstance(found, list) else []


def installed_policies(cluster: Cluster) -> list[InstalledPolicy]:
    """Every compiled policy of ours in the cluster, with its bindings."""
    bindings = cluster.objects(GROUP, VERSION, "mutatingadmissionpolicybindings")
    found = []
    for policy in cluster.objects(GROUP, VERSION, "mutatingadmissionpolicies"):
        metadata = mapping(policy.get("metadata"))
        annotations = mapping(metadata.get("annotations"))
        if POLICY_SHAPES_ANNOTATION not in annotations:
            continue
        digests = _listed(annotations, POLICY_SHAPES_ANNOTATION)
        name = string(metadata.get("name"))
        found.append(
            InstalledPolicy(
                name=name,
                version=string(annotations.get(f"{PREFIX}/version")),
                failure_policy=string(mapping(policy.get("spec")).get("failurePolicy")),
                digests=frozenset(digests),
                patterns=held_patterns(mapping(policy.get("spec"))),
                presets=tuple(_listed(annotations, POLICY_PRESETS_ANNOTATION)),
                bindings=tuple(
                    (
                        string(mapping(b.get("metadata")).get("name")),
                        mapping(
                            mapping(mapping(b.get("spec")).get("matchResources")).get(
                                "namespaceSelector"
                            )
                        ),
                        mapping(
                            mapping(mapping(b.get("spec")).get("matchResources")).get(
                                "objectSelector"
                            )
                        ),
                    )
                    for b in bindings
                    if mapping(b.get("spec")).get("policyName") == name
                ),
            )
        )
    return found


def policy_leaves_pod(pod: Mapping[str, Any], options: Options = DEFAULT_OPTIONS) -> bool:
    """Whether a compiled policy leaves this LLMInferenceService pod to the webhook for its
    args: a newline in an arg of a target container (every LLM shape it compiles is eval's)."""
    facts = read_pod(pod_view(pod), context=DEFAULT_CONTEXT, options=options)
    return any(
        container.llm and container.args is not None and policy_leaves(container.args)
        for container in facts.containers
    )


def _commanded(
    pod: Mapping[str, Any], options: Options
) -> Iterator[tuple[ContainerFacts, Sequence[str], str | None]]:
    """Each target-named container with a command, as admission reads it: the container, its
    command, and its shape digest (None when it has no shape)."""
    for container in read_pod(pod_view(pod), context=DEFAULT_CONTEXT, options=options).containers:
        if container.typed and container.command is not None:
            command = container.command
            yield container, command, container_shape(container.name, command, container.args or ())


def pod_shapes(pod: Mapping[str, Any], options: Options = DEFAULT_OPTIONS) -> list[str]:
    """The shape digests of the pod's target-named containers, as admission reads them."""
    return [digest for _, _, digest in _commanded(pod, options) if digest is not None]
