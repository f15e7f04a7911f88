"""The compiled policy against the webhook, on generated pods (DESIGN §7.3): every pod
it changes must come out byte for byte as `mutate` makes it, and every pod the webhook changes
(a repair, or the problem annotation of a `script-replaced` pod) that it leaves alone must be
one `policy --explain` names as left to the webhook.

Each batch draws `BATCH` pods: a pod of a runtime of the shared corpus (head or worker), a pod
of an LLMInferenceService preset of the shared corpus (any role, either service), and a pod
built here: one to three containers under the target names, each running a script with or
without a `$0` word (legacy, post-fix, eval, already exact), the InferenceService label, the
LLMInferenceService one or both. Every container gets args drawn from the grammar of
shell-significant pieces (`tests.support.argsgrammar`). The corpus pods meet the policy compiled
from their runtimes or preset, the built ones the policy compiled from every script under every
target name in a pod of its own. `POLICY_FUZZ_BATCHES` sets the number of batches, each seeded
by its number plus `POLICY_FUZZ_SEED`, so that a failure replays and a new seed explores.
"""

from __future__ import annotations

import copy
import json
import os
import random
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any, Final

import jsonpatch
import pytest

from tests.support import kserve, llmisvc
from tests.support.argsgrammar import PIECES, drawn_arg
from tests.support.builders import admit
from tests.support.celpolicy import Policy
from webhook.core import names
from webhook.core.model import DEFAULT_OPTIONS, Context, Options
from webhook.core.names import Action
from webhook.core.patch import to_json
from webhook.offline.policy import compile_shapes, jsonpatch_map, policy_spec, split

BATCH: Final = 24
BATCHES: Final = int(os.environ.get("POLICY_FUZZ_BATCHES", "1"))
SEED: Final = int(os.environ.get("POLICY_FUZZ_SEED", "0"))
NAMESPACE: Final = "models"
# Besides the grammar: quoting around literal text (what the webhook unwraps from an eval),
# what the kubelet expands, and what the argv test leaves out because bash would run it.
POLICY_PIECES: Final = (*PIECES, "'a b'", '"c d"', "'{\"k\": 1}'", "$(VAR)", "$$", "&", ">")
TARGETS: Final = (*names.DEFAULT_TARGET_CONTAINERS, *names.DEFAULT_LLM_CONTAINERS)
EVAL_NO_ZERO: Final = 'eval "exec vllm serve /mnt/models \\"\\$@\\""'
EVAL_UNQUOTED: Final = 'eval "vllm serve /mnt/models $@"'


@dataclass(frozen=True)
class Script:
    """A script a container runs: its command, and the legacy shape's script in `args[0]`."""

    command: tuple[str, ...]
    legacy: str | None = None


# With and without a `$0` word; lossy, evaluated, and already exact.
SCRIPTS: Final = (
    Script(("bash", "-c"), "python -m huggingfaceserver --model_dir=/mnt/models\n"),
    Script(("bash", "-c"), "ray start --address=$RAY_HEAD --block\n"),
    Script(("/bin/bash", "-c", "python -m vllm.entrypoints.openai.api_server $0 $@")),
    Script(("/bin/bash", "-c", 'CMD="vllm serve /mnt/models $0 $@"; exec $CMD')),
    Script(("/bin/bash", "-c", EVAL_NO_ZERO)),
    Script(("/bin/bash", "-c", EVAL_UNQUOTED)),
    Script(("/bin/bash", "-c", EVAL_UNQUOTED, "--")),
    Script(("/bin/bash", "-c", 'exec vllm serve /mnt/models "$@"', "main")),
)
LABELS: Final = (
    {names.ISVC_LABEL: "llama"},
    {names.PART_OF_LABEL: names.LLMISVC_PART_OF},
    {names.ISVC_LABEL: "llama", names.PART_OF_LABEL: names.LLMISVC_PART_OF},
)


def container(name: str, script: Script, args: list[str]) -> dict[str, Any]:
    found: dict[str, Any] = {"name": name, "image": "i", "command": list(script.command)}
    given = [script.legacy, *args] if script.legacy is not None else args
    if given:
        found["args"] = given
    return found


def built_pod(labels: Mapping[str, str], containers: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "p", "labels": dict(labels)},
        "spec": {"containers": containers},
    }


def judged(
    policies: list[Policy], pod: dict[str, Any], *, options: Options = DEFAULT_OPTIONS
) -> str:
    """ "covered" when the policies make the webhook's pod of it, byte for byte; "left" when
    the webhook does not change it and neither do they; "explained" when the webhook changes
    it, they leave it alone, and `policy --explain` on the pod names it as left to the webhook
    (by the reason of the webhook's decision, when that is not a repair: a problem annotated).
    Anything else fails, naming the difference."""
    decision = admit(pod, context=Context(namespace=NAMESPACE), options=options)
    stored = copy.deepcopy(pod)
    for policy in policies:
        stored = policy.apply(stored, namespace=NAMESPACE)
    if not decision.patch:
        assert stored == pod, f"the webhook leaves it ({decision.reason}), the policy does not"
        return "left"
    webhook = jsonpatch.apply_patch(copy.deepcopy(pod), to_json(decision.patch))
    if stored == pod:
        left = compile_shapes([("pod.yaml", pod)], options=options).uncovered
        assert left, "the policy leaves a pod the webhook changes, and --explain says covered"
        assert decision.action is Action.PATCHED or any(
            f" {decision.reason} " in line for line in left
        ), f"the policy leaves a {decision.reason} pod, and --explain does not say so: {left}"
        return "explained"
    assert json.dumps(stored) == json.dumps(webhook), (
        f"the policy makes {json.dumps(stored['spec'])[:1500]}\n"
        f"the webhook makes {json.dumps(webhook['spec'])[:1500]}"
    )
    return "covered"


@cache
def _runtimes() -> tuple[tuple[str, Any], ...]:
    return tuple((p.name, r) for p in kserve.corpus_files() for r in kserve.load_runtimes(p))


@cache
def _runtime_policy() -> Policy:
    return Policy(policy_spec(compile_shapes(list(_runtimes())).shapes, patch=jsonpatch_map))


@cache
def _presets() -> tuple[Path, ...]:
    seen: set[bytes] = set()
    found = []
    for path in llmisvc.preset_files():
        if path.read_bytes() not in seen:
            seen.add(path.read_bytes())
            found.append(path)
    return tuple(found)


@cache
def _preset_policies(path: Path) -> list[Policy]:
    compiled = compile_shapes([(path.name, llmisvc.load(path))])
    return [
        Policy(
            policy_spec(
                [s for s in compiled.shapes if s.digest in _digests(p)], patch=jsonpatch_map
            )
        )
        for p, _ in (split(compiled) if compiled.shapes else [])
    ]


def _digests(policy: Mapping[str, Any]) -> set[str]:
    return set(json.loads(policy["metadata"]["annotations"][names.POLICY_SHAPES_ANNOTATION]))


@cache
def _built_policy() -> Policy:
    """The policy of every script under every target name, each in a pod of its own family."""
    documents = [
        (f"{index}-{name}-{family}", built_pod(labels, [container(name, script, ["--x"])]))
        for index, script in enumerate(SCRIPTS)
        for name in TARGETS
        for family, labels in enumerate(LABELS[:2])
    ]
    return Policy(policy_spec(compile_shapes(documents).shapes, patch=jsonpatch_map))


def _args(rnd: random.Random) -> list[str]:
    return [drawn_arg(rnd, pieces=POLICY_PIECES) for _ in range(rnd.randint(0, 4))]


def _runtime_pod(rnd: random.Random) -> dict[str, Any]:
    runtime = rnd.choice(_runtimes())[1]
    roles = ["head", "worker"] if runtime["spec"].get("workerSpec") else ["head"]
    return kserve.build_pod(runtime, role=rnd.choice(roles), user_args=_args(rnd))


def _preset_pod(rnd: random.Random) -> tuple[Path, dict[str, Any]]:
    path = rnd.choice(_presets())
    config = llmisvc.load(path)
    # KServe renders the service's args as Go template text: `{{` would start an action.
    args = [arg.replace("{{", "{ {") for arg in _args(rnd)]
    pod = llmisvc.build_pod(
        config,
        role=rnd.choice(llmisvc.roles(config)),
        user_args=args or None,
        identity=rnd.choice((llmisvc.GRANITE, llmisvc.LLAMA)),
    )
    pod["metadata"]["namespace"] = NAMESPACE
    return path, pod


def _built_pod(rnd: random.Random) -> dict[str, Any]:
    containers = [
        container(rnd.choice(TARGETS), rnd.choice(SCRIPTS), _args(rnd))
        for _ in range(rnd.choice((1, 1, 2, 3)))
    ]
    for _ in range(rnd.randint(0, 2)):
        containers.insert(rnd.randint(0, len(containers)), {"name": "sidecar", "image": "i"})
    return built_pod(rnd.choice(LABELS), containers)


@pytest.mark.parametrize("batch", range(BATCHES))
def test_generated_pods_come_out_of_the_policy_as_out_of_the_webhook(batch: int) -> None:
    for corpus in (kserve.CORPUS, llmisvc.CORPUS):
        if not corpus.is_dir():
            pytest.skip(f"shared corpus not found at {corpus}")
    seed = SEED + batch
    print(f"policy fuzz seed {seed} ({BATCH} pods of each kind)")
    rnd = random.Random(seed)
    verdicts: dict[str, int] = {}
    for number in range(BATCH):
        runtime = _runtime_pod(rnd)
        path, preset = _preset_pod(rnd)
        built = _built_pod(rnd)
        for kind, policies, pod in (
            ("runtime", [_runtime_policy()], runtime),
            ("preset", _preset_policies(path), preset),
            ("built", [_built_policy()], built),
        ):
            try:
                found = judged(policies, pod)
            except AssertionError as error:
                shown = json.dumps(pod)[:3000]
                raise AssertionError(f"seed {seed}, pod {number} ({kind}): {shown}") from error
            verdicts[f"{kind} {found}"] = verdicts.get(f"{kind} {found}", 0) + 1
    print(f"seed {seed}: {dict(sorted(verdicts.items()))}")
    assert verdicts.get("built covered", 0) > 0, verdicts


def _preset_near_the_limit() -> dict[str, Any]:
    """The small eval preset, its script grown by a comment to just under the webhook's
    default limit for the probe services' models: a long model's name takes it over."""
    preset = copy.deepcopy(llmisvc.EVAL_PRESET)
    main = preset["spec"]["template"]["containers"][0]
    padding = Options().max_script_bytes - len(llmisvc.SMALL_EVAL_SCRIPT) - 64
    main["command"][2] = f"# {'x' * padding}\n{llmisvc.SMALL_EVAL_SCRIPT}"
    return preset


LONG_MODEL: Final = llmisvc.Identity(model="org/" + "m" * 200)


@dataclass(frozen=True)
class Row:
    """A pod the policy is compiled from and the pod it is judged on, and the verdict."""

    name: str
    compiled_from: Any
    pod: dict[str, Any]
    verdict: str


ROWS: Final = (
    # Eval handed `"$@"` already, with no `$0` word: the first arg was `$0`, the others
    # arrived with their quotes, so the webhook keeps the quotes and so must the policy.
    Row(
        "eval-without-zero-keeps-quotes",
        None,
        built_pod(
            LABELS[1],
            [
                container(
                    "main",
                    Script(("/bin/bash", "-c", EVAL_NO_ZERO)),
                    ["'--served-model-name=my model'", "--dtype=half"],
                )
            ],
        ),
        "covered",
    ),
    # Both labels: admission targets `kserve-container` and `main`; the policy covers a pod
    # with one target, so it leaves this one, and --explain says why.
    Row(
        "both-labels-two-targets",
        None,
        built_pod(
            LABELS[2],
            [
                container("kserve-container", SCRIPTS[0], ["--user"]),
                container("main", Script(("/bin/bash", "-c", EVAL_UNQUOTED, "--")), ["--a"]),
            ],
        ),
        "explained",
    ),
    # Both labels, `main` alone: admission reads it as the LLMInferenceService's target.
    Row(
        "both-labels-main-alone",
        None,
        built_pod(
            LABELS[2], [container("main", Script(("/bin/bash", "-c", EVAL_UNQUOTED)), ["a b"])]
        ),
        "covered",
    ),
    # The webhook's one change to a script-in-args preset's pod with args of its own is the
    # problem annotation (`script-replaced`): the policy leaves it, and --explain says why.
    Row(
        "script-in-args-preset-with-args",
        llmisvc.SCRIPT_IN_ARGS_PRESET,
        llmisvc.build_pod(
            llmisvc.SCRIPT_IN_ARGS_PRESET, role="leader", user_args=["--max-model-len=4096"]
        ),
        "explained",
    ),
    Row(
        "script-in-args-preset-without-args",
        llmisvc.SCRIPT_IN_ARGS_PRESET,
        llmisvc.build_pod(llmisvc.SCRIPT_IN_ARGS_PRESET, role="leader"),
        "left",
    ),
    # A preset's template reads renderings up to its longest; the webhook leaves a script over
    # its limit alone, and so must the policy.
    Row(
        "preset-rendering-over-the-script-limit",
        _preset_near_the_limit(),
        llmisvc.build_pod(
            _preset_near_the_limit(), role="leader", user_args=["--x"], identity=LONG_MODEL
        ),
        "left",
    ),
)


@pytest.mark.parametrize("row", ROWS, ids=lambda row: row.name)
def test_known_divergences_are_rows(row: Row) -> None:
    source = row.compiled_from if row.compiled_from is not None else row.pod
    compiled = compile_shapes([("source.yaml", source)])
    policies = [
        Policy(
            policy_spec(
                [s for s in compiled.shapes if s.digest in _digests(p)], patch=jsonpatch_map
            )
        )
        for p, _ in (split(compiled) if compiled.shapes else [])
    ]
    assert judged(policies, row.pod) == row.verdict


def _pod_of(container_name: str) -> dict[str, Any]:
    script = "python -m huggingfaceserver --model_dir=/mnt/models\n"
    return built_pod(
        {names.ISVC_LABEL: "m"},
        [{"name": container_name, "command": ["bash", "-c"], "args": [script, "--user-arg"]}],
    )


@pytest.mark.parametrize(
    ("options", "container_name", "namespace"),
    [
        (Options(containers=("my-server",)), "my-server", "models"),
        (Options(containers=("my-server",)), names.HEAD_CONTAINER, "models"),
        (Options(own_namespace="mnw"), names.HEAD_CONTAINER, "mnw"),
        (Options(llm_containers=("engine",)), names.HEAD_CONTAINER, "models"),
    ],
    ids=["custom-container", "default-name-not-a-target", "own-namespace", "custom-llm-container"],
)
def test_a_policy_compiled_with_options_targets_what_a_server_with_them_does(
    options: Options, container_name: str, namespace: str
) -> None:
    pod = _pod_of(container_name)
    compiled = compile_shapes([("src", pod)], options=options)
    policy = Policy(policy_spec(compiled.shapes, options=options, patch=jsonpatch_map))
    decision = admit(pod, context=Context(namespace=namespace), options=options)
    by_webhook = jsonpatch.apply_patch(pod, to_json(decision.patch))
    by_policy = jsonpatch.apply_patch(pod, policy.patch(pod, namespace=namespace))
    assert by_policy in (by_webhook, pod)
    assert (by_policy == by_webhook) or bool(compiled.uncovered)
