"""The kubelet's expansion of `$(NAME)` and `$$` in a container's command and args."""

from __future__ import annotations

from typing import Any

import pytest

from webhook.core.varrefs import Expanded, expand, written_env

ENV: list[dict[str, Any]] = [
    {"name": "A", "value": "one"},
    {"name": "B", "value": "$(A)-two"},
    {"name": "FROM_POD", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
    {"name": "C", "value": "$(FROM_POD)"},
    {"name": "EMPTY"},
]

# (word, envFrom present, what the kubelet hands on)
TABLE: list[tuple[str, bool, Expanded]] = [
    ("plain", False, Expanded("plain")),
    ("$$", False, Expanded("$")),
    ("$$(A)", False, Expanded("$(A)")),
    ("$(A)", False, Expanded("one")),
    ("$(B)", False, Expanded("one-two")),
    ("x$(EMPTY)y", False, Expanded("xy")),
    ("$(FROM_POD)", False, Expanded("$(FROM_POD)", pod_only=True)),
    ("$(C)", False, Expanded("$(C)", pod_only=True)),
    ("$(UNSET)", False, Expanded("$(UNSET)")),
    ("$(UNSET)", True, Expanded("$(UNSET)", pod_only=True)),
    ("$(MODEL_SVC_SERVICE_HOST)", False, Expanded("$(MODEL_SVC_SERVICE_HOST)", pod_only=True)),
    ("$(MODEL_SVC_PORT_8080_TCP_ADDR)", False, Expanded("$(MODEL_SVC_PORT_8080_TCP_ADDR)", True)),
    ("$(not a name)", True, Expanded("$(not a name)")),
    ("$(A", False, Expanded("$(A")),
    ("$", False, Expanded("$")),
]


@pytest.mark.parametrize(("word", "env_from", "expanded"), TABLE, ids=[r[0] for r in TABLE])
def test_the_kubelet_expands_what_the_env_writes(
    word: str, env_from: bool, expanded: Expanded
) -> None:
    container: dict[str, Any] = {"env": ENV}
    if env_from:
        container["envFrom"] = [{"configMapRef": {"name": "settings"}}]
    assert expand(word, written_env(container)) == expanded
