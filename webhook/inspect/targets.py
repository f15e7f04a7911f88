"""Which containers an install targets: the names its webhook configuration's CEL matches, by
family (InferenceService, LLMInferenceService), against the names the server is started
with (`--containers`, `--llm-containers`)."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

from webhook.core.kinds import ISVC_KIND, LLMISVC_KIND
from webhook.core.names import (
    DEFAULT_LLM_CONTAINERS,
    DEFAULT_TARGET_CONTAINERS,
    ISVC_LABEL,
    PART_OF_LABEL,
)
from webhook.core.raw import items, mapping, string
from webhook.inspect.findings import Finding

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
    for container in items(spec.get("containers")):
        words = [*items(container.get("command")), *items(container.get("args"))]
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
        for variable in items(container.get("env")):
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
