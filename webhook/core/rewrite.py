"""The rewrite of one container (DESIGN §3): its new `command` and `args`, the patch ops that
set them, and the status annotation that records what was done.

`plan_container` classifies a target-named container and, for the legacy shape, moves the
edited script (see `script`) into `command` with the container's name as bash's `$0`. Admission
and runtime migration both call it, so a runtime is migrated exactly as its pods are mutated.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence

from webhook import __version__
from webhook.core import patch
from webhook.core.model import ContainerPlan
from webhook.core.names import BASH_PATHS, STATUS_ANNOTATION, Reason
from webhook.core.patch import PatchOp
from webhook.core.raw import is_string_list
from webhook.core.read import ContainerFacts
from webhook.core.script import rewrite_script


def _is_bash_c(command: Sequence[str]) -> bool:
    return len(command) >= 2 and command[0] in BASH_PATHS and command[1] == "-c"


def plan_container(container: ContainerFacts) -> ContainerPlan:
    """Classify a target-named container and, for the legacy shape, compute its new fields."""
    name, command, args = container.name, container.command, container.args
    if not container.typed:
        return ContainerPlan(name, Reason.NOT_A_TARGET, "command or args is not a list of strings")
    if command is None:
        return ContainerPlan(
            name, Reason.ALREADY_MIGRATED, "no command: the image's entrypoint runs"
        )
    if not _is_bash_c(command):
        return ContainerPlan(name, Reason.ALREADY_MIGRATED, "command is not bash -c")
    if len(command) > 2:
        return ContainerPlan(name, Reason.ALREADY_MIGRATED, "the script is already in command")
    if not args:
        return ContainerPlan(name, Reason.NOT_A_TARGET, "bash -c with no script in args")
    rewritten = rewrite_script(args[0])
    if rewritten.script is None:
        return ContainerPlan(name, Reason.NO_LAUNCH_COMMAND, rewritten.detail)
    return ContainerPlan(
        name,
        Reason.LEGACY_SHAPE,
        f"launch command: {rewritten.detail}",
        command=(command[0], "-c", rewritten.script, name),
        args=args[1:] or None,
        rules=rewritten.rules,
    )


def container_ops(plan: ContainerPlan, *, path: str) -> list[PatchOp]:
    """The patch that applies a LEGACY_SHAPE plan to the container at `path`."""
    args_op = (
        patch.remove(path + "/args")
        if plan.args is None
        else patch.replace(path + "/args", plan.args)
    )
    return [patch.replace(path + "/command", plan.command or ()), args_op]


def previous_rules(status: str | None) -> dict[str, list[str]]:
    """The rules an earlier run recorded in the status annotation, by container."""
    if status is None:
        return {}
    try:
        rules = json.loads(status)["rules"]
    except (KeyError, TypeError, ValueError):
        return {}
    if not isinstance(rules, dict):
        return {}
    return {str(name): list(applied) for name, applied in rules.items() if is_string_list(applied)}


def patch_digest(ops: Sequence[PatchOp]) -> str:
    """sha256 over each operation's op, path and string values, NUL-separated; 16 hex digits.

    Built from the strings themselves rather than a JSON rendering, so that every encoder
    (the CLI's, the server's) records the same digest for the same patch.
    """
    digest = hashlib.sha256()
    for op in ops:
        values = op.value if isinstance(op.value, tuple) else ()
        digest.update("\0".join([op.op, op.path, *values]).encode("utf-8", "surrogatepass") + b"\n")
    return f"sha256:{digest.hexdigest()[:16]}"


def status_annotation(rules: Mapping[str, Sequence[str]], ops: Sequence[PatchOp]) -> str:
    """The compact JSON recorded on the pod: version, rules by container, digest of the patch."""
    body = {"version": __version__, "rules": rules, "digest": patch_digest(ops)}
    return json.dumps(body, sort_keys=True, separators=(",", ":"))


def status_op(status: str, *, base: str, has_metadata: bool, has_annotations: bool) -> PatchOp:
    """The op that records `status` on the pod at `base`, creating the maps it needs."""
    if has_annotations:
        return patch.add(base + patch.pointer("metadata", "annotations", STATUS_ANNOTATION), status)
    if has_metadata:
        return patch.add(base + "/metadata/annotations", {STATUS_ANNOTATION: status})
    return patch.add(base + "/metadata", {"annotations": {STATUS_ANNOTATION: status}})
