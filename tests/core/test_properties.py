"""Property tests: generated pods never make admit() raise, and every patch is sound."""

from __future__ import annotations

import copy
import re
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import jsonpatch
from hypothesis import example, given, settings
from hypothesis import strategies as st

from tests.support import kubelet, shell
from tests.support.builders import admit
from webhook.core import names
from webhook.core.names import Action, Reason
from webhook.core.patch import PatchOp, to_json

# Lines in the style of the runtime scripts, plus the constructs that trip naive parsers.
FRAGMENTS = [
    "export MODEL=${MODEL_ID}",
    "if [[ ! -z ${MODEL_DIR} ]]\nthen\n  export MODEL=${MODEL_DIR}\nfi",
    "if [[ ! -z $MODEL_DIR ]]; then MODEL=$MODEL_DIR; fi",
    "ray start --head --disable-usage-stats --include-dashboard false ",
    "until [[ $(ray status | grep -c node_) -eq ${PIPELINE_PARALLEL_SIZE} ]]; do\n  sleep 1\ndone",
    "while true; do\n  if (( SECONDS <= 240 )); then\n    break\n  fi\ndone",
    "python ./huggingfaceserver/health_check.py registered_nodes --retries 200",
    "python -m huggingfaceserver --model_name=${MODEL_NAME} --model_dir=${MODEL} \\\n  --x=1",
    "exec python3 -m vllm.entrypoints.openai.api_server --port=8080 2>&1 | tee log",
    'CMD="vllm serve $0 $@"',
    "exec $CMD",
    "vllm serve /mnt/models # serve",
    'ray start --address="${RAY_HEAD_ADDRESS}" --block     ',
    "cat <<EOF\npython -m huggingfaceserver\nEOF",
    "x=$(python -m huggingfaceserver --version)",
    'echo "unterminated',
    "fi",
    "# comment ünïcødé",
    "",
]

text = st.text(max_size=20)
scripts = st.lists(st.sampled_from(FRAGMENTS) | text, max_size=8).map("\n".join)
shells = st.sampled_from([*names.SHELL_PATHS, "zsh", "/bin/dash"])
commands = st.one_of(
    st.none(),
    st.tuples(shells, st.sampled_from(["-c", "-lc", "-e"])).map(list),
    st.tuples(shells, st.just("-c"), scripts).map(list),
    st.tuples(shells, st.just("-c"), scripts, st.sampled_from(["--", "x"])).map(list),
    st.lists(text, max_size=4),
    st.integers(),
    st.lists(st.integers() | text, max_size=3),
)
args = st.one_of(
    st.none(),
    st.tuples(scripts, st.lists(text, max_size=5)).map(lambda t: [t[0], *t[1]]),
    st.lists(text, max_size=3),
    st.text(max_size=5),
    st.lists(st.none() | st.integers(), max_size=2),
)
container_names = (
    st.sampled_from(names.DEFAULT_TARGET_CONTAINERS) | st.sampled_from(["agent", "modelcar"]) | text
)


@st.composite
def containers(draw: st.DrawFn) -> Any:
    if draw(st.integers(0, 20)) == 0:
        return draw(st.none() | st.integers() | text)
    container: dict[str, Any] = {"name": draw(container_names)}
    for key, strategy in (("command", commands), ("args", args)):
        if draw(st.booleans()):
            container[key] = draw(strategy)
    if draw(st.booleans()):
        container["env"] = [{"name": "MODEL_ID", "value": draw(text)}]
    return container


label_values = st.sampled_from(["m", "false", "enabled", ""]) | text
maps = st.dictionaries(
    st.sampled_from(
        [
            names.ISVC_LABEL,
            names.INJECT_LABEL,
            names.STATUS_ANNOTATION,
            names.MIRROR_ANNOTATION,
            "a/b~c",
        ]
    )
    | text,
    label_values,
    max_size=4,
)


@st.composite
def pods(draw: st.DrawFn) -> dict[str, Any]:
    metadata: dict[str, Any] = {"name": draw(text)}
    if draw(st.integers(0, 3)):
        metadata["labels"] = {names.ISVC_LABEL: "m", **draw(maps)}
    if draw(st.booleans()):
        metadata["annotations"] = draw(maps | st.none())
    if draw(st.booleans()):
        metadata["namespace"] = draw(st.sampled_from(["models", "kube-system"]) | text)
    spec: dict[str, Any] = {"containers": draw(st.lists(containers(), max_size=4))}
    if draw(st.booleans()):
        spec["initContainers"] = draw(st.lists(containers(), max_size=2))
    pod: dict[str, Any] = {"apiVersion": "v1", "kind": "Pod", "spec": spec}
    if draw(st.integers(0, 10)):
        pod["metadata"] = metadata
    return pod


def _patched_indexes(patch: Sequence[PatchOp]) -> set[int]:
    return {int(op.path.split("/")[3]) for op in patch if op.path.startswith("/spec/containers/")}


@given(pods())
def test_mutate_is_total_sound_and_idempotent(pod: dict[str, Any]) -> None:
    original = copy.deepcopy(pod)
    decision = admit(pod)
    assert pod == original
    assert decision.action in tuple(Action)
    result = jsonpatch.apply_patch(pod, to_json(decision.patch))

    touched = _patched_indexes(decision.patch)
    for index, container in enumerate(original["spec"]["containers"]):
        if index not in touched:
            assert result["spec"]["containers"][index] == container
        else:
            assert container["name"] in names.DEFAULT_TARGET_CONTAINERS
            new_script = result["spec"]["containers"][index]["command"][2]
            assert shell.parses(new_script)
    assert result["spec"].get("initContainers") == original["spec"].get("initContainers")

    again = admit(result)
    assert again.patch == ()
    assert again.action in (Action.UNCHANGED, Action.SKIPPED)


_READS_ARGS = re.compile(r"\$(?:[1-9@*#]|\{[1-9@*#])")


@given(scripts, st.lists(text, max_size=4))
# Found by this property once each: the parser's crasher, and a script reading $1 itself.
@example("{\U000c1113", [])
@example("python -m huggingfaceserver\necho $1\n", ["--x"])
def test_legacy_scripts_either_rewrite_cleanly_or_say_why(
    script: str, user_args: list[str]
) -> None:
    pod = {
        "metadata": {"labels": {names.ISVC_LABEL: "m"}},
        "spec": {
            "containers": [
                {
                    "name": names.WORKER_CONTAINER,
                    "command": ["bash", "-c"],
                    "args": [script, *user_args],
                }
            ]
        },
    }
    decision = admit(pod)
    if any(ord(char) > 0xFFFF for char in script):
        # Never handed to the parser, whose scanner crashes on such characters.
        assert decision.reason == Reason.UNSUPPORTED_CHARACTERS
        assert decision.warnings
    elif decision.action == Action.PATCHED:
        result = jsonpatch.apply_patch(pod, to_json(decision.patch))["spec"]["containers"][0]
        assert result["command"][3] == names.WORKER_CONTAINER
        assert result.get("args", []) == user_args
        # Forwarded with one more "$@" at most, and at least one in all, unless the script
        # reads its args itself ($1, "${@:2}", ...).
        before, after = script.count('"$@"'), result["command"][2].count('"$@"')
        assert after in (before, before + 1), script
        assert after >= 1 or _READS_ARGS.search(script), script
    elif decision.reason == Reason.NOT_A_TARGET:
        assert not user_args, "only a worker with no args is left alone"
    else:
        assert decision.reason in (
            Reason.NO_LAUNCH_COMMAND,
            Reason.LAUNCH_IN_FUNCTION,
            Reason.READS_POSITIONAL_PARAMS,
        )
        assert decision.warnings


# Launch lines with a slot for the forwarding form, and ways to forward.
LAUNCHES = [
    ("python -m huggingfaceserver --a{fwd}", ["python", "-m", "huggingfaceserver", "--a"]),
    ("exec vllm serve /m --p=1{fwd} 2>&1", ["vllm", "serve", "/m", "--p=1"]),
    ('ray start --address="h" --block{fwd}   ', ["ray", "start", "--address=h", "--block"]),
    ('CMD="python3 -m vllm.entrypoints.openai.api_server --p{fwd}"\nexec $CMD', None),
    ('CMD="python3 -m vllm.entrypoints.openai.api_server --p"\nexec $CMD{fwd}', None),
    ("run() {{\n  python -m huggingfaceserver{fwd}\n}}\nrun", None),
]
CMD_FLAGS = ["python3", "-m", "vllm.entrypoints.openai.api_server", "--p"]
FORWARDING = [
    "",
    " $0 $@",
    " $0 $@        ",
    " $@",
    " $*",
    " ${@}",
    ' "$*"',
    ' "$@"',
    ' $0 "$@"',
    ' "$0" "$@"',
    ' "$@" "$@"',
    ' "${@:1}"',
    " --max=$1",
]
argv_text = st.text(st.characters(exclude_categories=["Cs"], exclude_characters="\x00"))


@settings(max_examples=60 if settings().max_examples <= 200 else 2_000)
@given(
    launch=st.sampled_from(LAUNCHES),
    forwarding=st.sampled_from(FORWARDING),
    shape=st.sampled_from(["legacy", "post-fix", "fixed-$0"]),
    container_name=st.sampled_from(names.DEFAULT_TARGET_CONTAINERS),
    user_args=st.lists(argv_text, max_size=4),
)
def test_args_arrive_exactly_or_the_pod_is_left_alone(
    launch: tuple[str, list[str] | None],
    forwarding: str,
    shape: str,
    container_name: str,
    user_args: list[str],
) -> None:
    template, flags = launch
    script = "set -e\n" + template.format(fwd=forwarding) + "\n"
    if shape == "legacy":
        container = {
            "name": container_name,
            "command": ["bash", "-c"],
            "args": [script, *user_args],
        }
    else:
        command = ["bash", "-c", script, *(["--"] if shape == "fixed-$0" else [])]
        container = {"name": container_name, "command": command, "args": user_args}
    original = {
        "metadata": {"labels": {names.ISVC_LABEL: "m"}},
        "spec": {"containers": [container]},
    }
    untouched = copy.deepcopy(original)
    decision = admit(original)
    assert original == untouched
    if decision.action is not Action.PATCHED:
        assert decision.patch == ()
        return
    rewritten = jsonpatch.apply_patch(original, to_json(decision.patch))
    with tempfile.TemporaryDirectory() as workdir:
        calls = kubelet.run(rewritten, container_name, Path(workdir))
    delivered = [kubelet.expand(arg, {}) for arg in user_args]
    assert calls[-1] == [*(flags or CMD_FLAGS), *delivered]


EVAL_SCRIPT = 'eval "exec vllm serve /mnt/models --port 8000 ${{VLLM_ADDITIONAL_ARGS}}{fwd} --t"'


@settings(max_examples=60 if settings().max_examples <= 200 else 2_000)
@given(
    forwarding=st.sampled_from([" $@", " ${@}", " $*", ""]),
    user_args=st.lists(argv_text, max_size=5),
)
def test_llm_args_arrive_one_element_one_word_through_eval(
    forwarding: str, user_args: list[str]
) -> None:
    main = {
        "name": names.LLM_CONTAINER,
        "command": ["/bin/bash", "-c", EVAL_SCRIPT.format(fwd=forwarding), "--"],
        "args": user_args,
    }
    pod = {
        "metadata": {"labels": {names.PART_OF_LABEL: names.LLMISVC_PART_OF}},
        "spec": {"containers": [main]},
    }
    decision = admit(pod)
    assert decision.action is Action.PATCHED, decision.trace
    rewritten = jsonpatch.apply_patch(pod, to_json(decision.patch))
    args = rewritten["spec"]["containers"][0].get("args", [])
    assert len(args) == len(user_args)
    for written, sent in zip(user_args, args, strict=True):
        # Only an arg of literal text and quotes is replaced, by the word eval made of it.
        assert sent == written or ("'" in written or '"' in written), (written, sent)
    with tempfile.TemporaryDirectory() as workdir:
        calls = kubelet.run(rewritten, names.LLM_CONTAINER, Path(workdir))
    flags = ["vllm", "serve", "/mnt/models", "--port", "8000"]
    delivered = [kubelet.expand(arg, {}) for arg in args]
    # Forwarded where the string had its `$@`; added at its end when it had none.
    expected = [*flags, *delivered, "--t"] if forwarding else [*flags, "--t", *delivered]
    assert calls[-1] == expected
    assert admit(rewritten).patch == ()
