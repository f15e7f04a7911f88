"""The scripts a replica will meet, read from the objects pods are made from: the containers of
ServingRuntimes and ClusterServingRuntimes, and of the LeaderWorkerSets and Deployments KServe
made for LLMInferenceServices. A server parses them before it is ready, and again when such an
object appears or changes, so that the first pod of a known runtime finds its script cached."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from webhook.core.model import Options
from webhook.core.parsed import Needed
from webhook.core.raw import items
from webhook.core.rewrite import split_shell
from webhook.offline.policy import containers_in


def launch_scripts(document: Any, *, options: Options) -> Iterator[Needed]:
    """Each script a target-named container of the object runs, as admission will ask for it;
    not those over `options.max_script_bytes`, which admission never parses."""
    for llm, container, _ in containers_in(document, "", options=options):
        if llm is None or not isinstance(container, Mapping):
            continue
        name = container.get("name")
        if name not in (options.llm_containers if llm else options.containers):
            continue
        command = container.get("command")
        if not isinstance(command, list) or not all(isinstance(w, str) for w in command):
            continue
        split = split_shell(command)
        if split is None:
            continue
        args = items(container.get("args"))
        script = split[1][0] if split[1] else (args[0] if args else None)
        if not isinstance(script, str):
            continue
        if len(script.encode("utf-8", "surrogatepass")) > options.max_script_bytes:
            continue
        yield Needed(script, options.rules, str(name))
