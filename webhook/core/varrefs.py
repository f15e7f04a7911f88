"""What the kubelet does to a container's command and args before any shell reads them.

Kubernetes replaces each `$(NAME)` reference to a variable of the container's env with its
value and turns `$$` into `$`; a reference to a name it does not know stays as written. Only
the env written in the pod is known here: a variable set from elsewhere (`valueFrom`, an
`envFrom` source, a Service's link variables) has a value only the pod knows, so a word that
refers to one is marked as a word whose text is not known.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final

from webhook.core.raw import items

_REFERENCE: Final = re.compile(r"\$(\$|\(([^)]*)\))")
# What Kubernetes takes as an env variable's name.
_NAME: Final = re.compile(r"[-._a-zA-Z][-._a-zA-Z0-9]*")
# The variables the kubelet sets for each Service of the namespace (enableServiceLinks).
_SERVICE_LINK: Final = re.compile(
    r"[A-Z0-9_]+_(SERVICE_HOST|SERVICE_PORT(_[A-Z0-9_]+)?|PORT(_[0-9]+_(TCP|UDP|SCTP)(_PROTO|_PORT|_ADDR)?)?)"
)


@dataclass(frozen=True, slots=True)
class Expanded:
    """A word as the kubelet hands it on, and whether its text is known only in the pod."""

    text: str
    pod_only: bool = False


@dataclass(frozen=True, slots=True)
class WrittenEnv:
    """A container's env as the pod writes it: each variable's value, None where the pod
    gives it (`valueFrom`), and whether `envFrom` may set names not listed."""

    values: dict[str, str | None] = field(default_factory=dict)
    open: bool = False

    def knows_only_in_pod(self, name: str) -> bool:
        if name in self.values:
            return self.values[name] is None
        if _NAME.fullmatch(name) is None:
            return False  # no source may set it: it stays as written in every pod
        return self.open or _SERVICE_LINK.fullmatch(name) is not None


def written_env(container: Mapping[str, Any]) -> WrittenEnv:
    """The container's env, each value's own references to earlier ones expanded as the
    kubelet does."""
    env = WrittenEnv(open=bool(container.get("envFrom")))
    for item in items(container.get("env")):
        if not isinstance(item, Mapping) or not isinstance(item.get("name"), str):
            continue
        value = item.get("value")
        if "valueFrom" in item:
            env.values[item["name"]] = None
        else:
            expanded = expand(value if isinstance(value, str) else "", env)
            env.values[item["name"]] = None if expanded.pod_only else expanded.text
    return env


def expand(word: str, env: WrittenEnv) -> Expanded:
    """`word` once the kubelet has expanded its references to `env`."""
    pod_only = False

    def replaced(found: re.Match[str]) -> str:
        nonlocal pod_only
        name = found[2]
        if name is None:
            return "$"  # `$$`
        value = env.values.get(name)
        if value is not None:
            return value
        pod_only = pod_only or env.knows_only_in_pod(name)
        return found[0]

    return Expanded(_REFERENCE.sub(replaced, word), pod_only)
