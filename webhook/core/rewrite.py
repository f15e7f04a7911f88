"""The rewrite of one container (DESIGN §3): its new `command` and `args`, the patch ops that
set them, and the status annotation that records what was done.

`plan_container` reads a target-named container's shell (`bash` or `sh`, with its options, up
to the `-c` flag) and finds its script: in `args[0]` (the legacy shape) or after `-c` in
`command` (the post-fix shapes). The edited script (see `script`) goes into `command`, followed
by bash's `$0`: the container's name, so that every element of `args` reaches `"$@"`.
Admission and runtime migration both call it, so a runtime is migrated exactly as its pods
are mutated.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping, Sequence
from typing import Final

from webhook import __version__
from webhook.core import patch
from webhook.core.evaluated import named, unwrap
from webhook.core.model import ContainerPlan
from webhook.core.names import SHELL_PATHS, Reason, Rule
from webhook.core.parsed import Rewrites
from webhook.core.patch import PatchOp
from webhook.core.raw import is_string_list
from webhook.core.read import ContainerFacts
from webhook.core.script import ScriptRewrite

# The flag that makes the shell run a script: `-c`, or a cluster ending in it (`-lc`, `-ec`).
_RUN_SCRIPT: Final = re.compile(r"-[A-Za-z]*c")
_OPTION: Final = re.compile(r"[-+][A-Za-z]+")
_TAKES_VALUE: Final = ("-o", "+o")
# What unquoted forwarding mangles: whitespace splits, glob characters expand.
_SPLITS: Final = re.compile(r"\s")
_GLOBS: Final = re.compile(r"[*?\[]")


def split_shell(command: Sequence[str]) -> tuple[tuple[str, ...], tuple[str, ...]] | None:
    """(the shell and its options through the flag that runs a script, what follows it) when
    `command` runs a script with bash or sh; None for any other command."""
    if not command or command[0] not in SHELL_PATHS:
        return None
    index = 1
    while index < len(command):
        word = command[index]
        if _RUN_SCRIPT.fullmatch(word):
            return tuple(command[: index + 1]), tuple(command[index + 1 :])
        if word in _TAKES_VALUE:
            index += 2
        elif _OPTION.fullmatch(word):
            index += 1
        else:
            return None
    return None


def _changed(arg: str, position: int) -> str:
    if not arg:
        return f'arg {position} "" now reaches the server (it was dropped)'
    if _SPLITS.search(arg):
        return f'arg {position} "{arg}" now reaches the server as one word'
    if _GLOBS.search(arg):
        return f'arg {position} "{arg}" now reaches the server unexpanded'
    return ""


def changed_args(args: Sequence[str], *, first_position: int) -> tuple[str, ...]:
    """How each arg that lossy forwarding mangled now arrives, the first `NAMED_LIMIT` by
    name and a count for the rest."""
    return named(
        [
            note
            for position, arg in enumerate(args, start=first_position)
            if (note := _changed(arg, position))
        ]
    )


def container_script(container: ContainerFacts, *, max_script_bytes: int) -> str | ContainerPlan:
    """The script a target-named container runs, to be parsed; or its plan when that is
    decided without the script (not a shell, no script, a script over the size limit)."""
    found = _shell_script(container, max_script_bytes=max_script_bytes)
    return found if isinstance(found, ContainerPlan) else found[2]


def _shell_script(
    container: ContainerFacts, *, max_script_bytes: int
) -> tuple[tuple[str, ...], tuple[str, ...], str] | ContainerPlan:
    """(the shell through its script flag, what follows the flag, the script), or the plan."""
    name, command, args = container.name, container.command, container.args or ()
    if not container.typed:
        return ContainerPlan(name, Reason.NOT_A_TARGET, "command or args is not a list of strings")
    if command is None:
        return ContainerPlan(
            name, Reason.ALREADY_MIGRATED, "no command: the image's entrypoint runs"
        )
    split = split_shell(command)
    if split is None:
        return ContainerPlan(
            name, Reason.ALREADY_MIGRATED, "command is not a shell running a script"
        )
    shell, rest = split
    if len(rest) > 2:
        return ContainerPlan(name, Reason.ALREADY_MIGRATED, "command holds words after the $0")
    if not rest and not args:
        return ContainerPlan(name, Reason.NOT_A_TARGET, "a shell -c with no script in args")
    script = rest[0] if rest else args[0]
    size = len(script.encode("utf-8", "surrogatepass"))
    if size > max_script_bytes:
        detail = f"its script is {size} bytes, over the {max_script_bytes}-byte limit"
        return ContainerPlan(name, Reason.SCRIPT_TOO_LARGE, detail)
    return shell, rest, script


def plan_container(
    container: ContainerFacts,
    *,
    rules: frozenset[Rule],
    max_script_bytes: int,
    rewrites: Rewrites,
    runtime: bool = False,
) -> ContainerPlan:
    """Classify a target-named container and, when its args do not arrive exactly, compute
    its new fields with the edits of `rules`.

    A pod's Ray worker with no args has nothing to forward and is left alone; a `runtime`'s is
    rewritten all the same, since the InferenceService's args are appended to it later. The
    script's rewrite is read through `rewrites`. An LLMInferenceService container with its
    script in args is never rewritten (DESIGN §2.1).
    """
    found = _shell_script(container, max_script_bytes=max_script_bytes)
    if isinstance(found, ContainerPlan):
        return found
    shell, rest, script = found
    name, args = container.name, container.args or ()
    legacy = not rest
    script_args = args[1:] if legacy else args
    rewritten = rewrites(script, rules)
    if container.llm and legacy:
        return _script_in_args(name, rewritten, args)
    if rewritten.script is None:
        return ContainerPlan(name, rewritten.reason or Reason.NO_LAUNCH_COMMAND, rewritten.detail)
    if rewritten.worker and not script_args and not runtime:
        return ContainerPlan(name, Reason.NOT_A_TARGET, "a Ray worker with no args to forward")
    applied = set(rewritten.rules)
    if legacy:
        if Rule.SCRIPT_TO_COMMAND not in rules:
            return ContainerPlan(name, Reason.NOT_A_TARGET, "script-to-command is switched off")
        applied.add(Rule.SCRIPT_TO_COMMAND)
        dollar0 = name
    elif len(rest) == 2:
        dollar0 = rest[1]
        if not applied:
            detail = "the script in command forwards its args exactly"
            return ContainerPlan(name, Reason.ALREADY_MIGRATED, detail)
    else:
        if Rule.EXACT_ARGS not in rules:
            return ContainerPlan(name, Reason.ALREADY_MIGRATED, "exact-args is switched off")
        applied.add(Rule.EXACT_ARGS)
        dollar0 = name
    exact = Rule.EXACT_ARGS in applied and rewritten.splits
    new_args: tuple[str, ...] | None = (script_args or None) if legacy else None
    # Args the script dropped all arrive now; otherwise those that splitting or eval mangled.
    changed = len(script_args) if legacy or Rule.FORWARD_ARGS in applied else 0
    if exact and rewritten.evaluated and not legacy:
        unwrapped, notes = unwrap(script_args, first_position=1)
        if unwrapped != script_args:
            new_args = unwrapped
            changed = changed or sum(a != b for a, b in zip(script_args, unwrapped, strict=True))
    else:
        notes = changed_args(script_args, first_position=2 if legacy else 1) if exact else ()
        if exact and not changed:
            changed = sum(1 for arg in script_args if _changed(arg, 0))
    return ContainerPlan(
        name,
        Reason.LOSSY_ARGS,
        f"launch command: {rewritten.detail}",
        command=(*shell, rewritten.script, dollar0),
        args=new_args,
        rules=tuple(rule for rule in Rule if rule in applied),
        keep_args=not legacy and new_args is None,
        drop_script=legacy and bool(script_args),
        notes=notes,
        changed=changed,
    )


def _script_in_args(name: str, rewritten: ScriptRewrite, args: Sequence[str]) -> ContainerPlan:
    """An LLMInferenceService container that runs `bash -c` on `args[0]` (KServe v0.16, RHOAI
    2.25 to 3.3). A user's args replace the preset's args whole, script included, and the
    script is nowhere in the pod: the container is explained, never rewritten."""
    if rewritten.script is None and rewritten.reason is Reason.NO_LAUNCH_COMMAND:
        first = args[0] if len(args[0]) <= 24 else args[0][:21] + "..."
        # Whole within a warning's limit (mutate.WARNING_LIMIT) for a container name of up to
        # 11 characters: the first arg is cut to fit, not the sentence.
        detail = f"args replaced the preset's script, so bash runs {first!r}"
        return ContainerPlan(name, Reason.SCRIPT_REPLACED, detail)
    if rewritten.script is None:
        return ContainerPlan(name, rewritten.reason or Reason.NO_LAUNCH_COMMAND, rewritten.detail)
    if len(args) == 1:
        detail = "the preset's script in args, with no user args: it runs as shipped"
        return ContainerPlan(name, Reason.NOT_A_TARGET, detail)
    detail = "args after the script in args never reach the server (the script has no $@)"
    return ContainerPlan(name, Reason.ARGS_IGNORED, detail)


def container_ops(plan: ContainerPlan, *, path: str) -> list[PatchOp]:
    """The patch that applies a LOSSY_ARGS plan to the container at `path`.

    A script that moves out of `args` is removed from them by position, so the patch, and the
    digest the status annotation records of it, do not depend on the user's args: a compiled
    policy (`multinode-webhook policy`) writes the same annotation."""
    command = patch.replace(path + "/command", plan.command or ())
    if plan.keep_args:
        return [command]
    if plan.drop_script:
        return [command, patch.remove(path + "/args/0")]
    if plan.args is None:
        return [command, patch.remove(path + "/args")]
    return [command, patch.replace(path + "/args", plan.args)]


def shape_digest(*, name: str, command: Sequence[str], script: str | None) -> str:
    """What names a container's script for a compiled policy: its name, its command and the
    script in its args (the legacy shape), hashed; 16 hex digits."""
    digest = hashlib.sha256()
    for word in (name, *command, "\0", script or ""):
        digest.update(word.encode("utf-8", "surrogatepass") + b"\0")
    return digest.hexdigest()[:16]


def container_shape(name: str, command: Sequence[str], args: Sequence[str]) -> str | None:
    """The shape digest of a container running a script (None for any other): the script in
    `args[0]` counts for the legacy shape, where the args after it are the user's."""
    split = split_shell(command)
    if split is None:
        return None
    legacy = not split[1]
    if legacy and not args:
        return None
    return shape_digest(name=name, command=command, script=args[0] if legacy else None)


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


def _common(left: str, right: str) -> int:
    """The length of the longest common prefix of two strings, by halving: a few slice
    comparisons (memcmp) rather than a Python loop over a 20 KB script."""
    low, high = 0, min(len(left), len(right))
    while low < high:
        middle = (low + high + 1) // 2
        if left[:middle] == right[:middle]:
            low = middle
        else:
            high = middle - 1
    return low


def changed_words(before: Sequence[str], after: Sequence[str]) -> tuple[str, ...]:
    """What a new command changes of the old, word by word: for a word both have, the text
    between their common prefix and common suffix, old and new; for a word only the new one
    has, all of it. A repair inside a preset's literal text then reads the same whatever the
    template wrote elsewhere in the script (the model's name, the parallelism)."""
    words = []
    for index, word in enumerate(after):
        if index >= len(before):
            words.append(word)
            continue
        old = before[index]
        head = _common(old, word)
        tail = _common(old[head:][::-1], word[head:][::-1])
        words.append(old[head : len(old) - tail] + "\0" + word[head : len(word) - tail])
    return tuple(words)


def patch_digest(
    ops: Sequence[PatchOp], *, commands: Mapping[str, Sequence[str]] | None = None
) -> str:
    """sha256 over each operation's op, path and string values, NUL-separated; 16 hex digits.

    Built from the strings themselves rather than a JSON rendering, so that every encoder
    (the CLI's, the server's) records the same digest for the same patch. The values of a
    container's new `args` are left out: they are the user's own args (unwrapped from eval's
    quoting), and a compiled policy, which cannot hash them in CEL, records the same digest.
    A new `command` whose old one is in `commands` (by the op's path) is hashed as what it
    changes (`changed_words`), so a policy compiled from a preset records one digest for
    every service rendered from it.
    """
    digest = hashlib.sha256()
    for op in ops:
        values = op.value if isinstance(op.value, tuple) and not op.path.endswith("/args") else ()
        if commands is not None and op.path in commands:
            values = changed_words(commands[op.path], values)
        digest.update("\0".join([op.op, op.path, *values]).encode("utf-8", "surrogatepass") + b"\n")
    return f"sha256:{digest.hexdigest()[:16]}"


def status_annotation(
    rules: Mapping[str, Sequence[str]],
    ops: Sequence[PatchOp],
    *,
    commands: Mapping[str, Sequence[str]] | None = None,
) -> str:
    """The compact JSON recorded on the pod: version, rules by container, digest of the patch
    (`commands`: the old command of each command the patch replaces, by path)."""
    body = {"version": __version__, "rules": rules, "digest": patch_digest(ops, commands=commands)}
    return json.dumps(body, sort_keys=True, separators=(",", ":"))


def annotation_ops(
    values: Mapping[str, str], *, base: str, has_metadata: bool, has_annotations: bool
) -> list[PatchOp]:
    """The ops that record `values` as annotations of the pod at `base`, creating the maps
    they need; none for no values."""
    if not values:
        return []
    if has_annotations:
        return [
            patch.add(base + patch.pointer("metadata", "annotations", key), value)
            for key, value in values.items()
        ]
    if has_metadata:
        return [patch.add(base + "/metadata/annotations", dict(values))]
    return [patch.add(base + "/metadata", {"annotations": dict(values)})]


def problem_text(names: Sequence[str]) -> str:
    """What the problem annotation says of containers whose args replaced their script."""
    return (
        f"container {', '.join(names)}: the LLMInferenceService's args replaced the preset's "
        "launch script (KServe v0.16, RHOAI 2.25 to 3.3), so bash runs the first arg as a "
        "script and the server never starts. Fix: move the args into the env "
        "VLLM_ADDITIONAL_ARGS (multinode-webhook migrate does it), or upgrade KServe."
    )
