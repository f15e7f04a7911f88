"""admit(): only the target containers' command and args change, plus one annotation."""

from __future__ import annotations

import copy
import json
from typing import Any

import jsonpatch
import pytest

from tests.support.builders import admit, example, golden, pod
from webhook import __version__
from webhook.core import names
from webhook.core.model import Context, Options
from webhook.core.mutate import WARNING_LIMIT, Decisions, mutate, short
from webhook.core.names import Action, Reason, Rule
from webhook.core.patch import to_json
from webhook.core.script import ScriptRewrite, parse_timeout, parser_failed, rewrite_script
from webhook.core.view import pod_view


def busy_pod() -> dict[str, Any]:
    """A head pod with everything a real one carries around the target container."""
    pod = example("legacy-head-pod.yaml")
    head = pod["spec"]["containers"][0]
    head["livenessProbe"] = {"exec": {"command": ["bash", "-c", "curl localhost:8080"]}}
    pod["metadata"]["annotations"] = {"a~b/c": "1", "sidecar.istio.io/inject": "false"}
    pod["metadata"]["managedFields"] = [{"manager": "kserve", "fieldsV1": {"f:spec": {}}}]
    pod["metadata"]["ownerReferences"] = [{"kind": "ReplicaSet", "name": "rs", "uid": "u"}]
    pod["spec"]["initContainers"] = [
        {
            "name": "storage-initializer",
            "command": ["bash", "-c"],
            "args": ["python -m huggingfaceserver"],
        }
    ]
    sidecars = [
        {"name": "modelcar", "command": ["bash", "-c"], "args": ["python -m huggingfaceserver\n"]},
        {"name": "agent", "image": "agent", "args": ["--port", "9081"]},
        {
            "name": "transformer-container",
            "command": ["bash", "-c"],
            "args": ["vllm serve x\n", "--y"],
        },
    ]
    pod["spec"]["containers"] = [*sidecars, head]
    pod["spec"]["futureField"] = {"kept": True}
    pod["status"] = {"phase": "Pending"}
    return pod


def test_only_the_target_container_and_the_status_annotation_change() -> None:
    pod = busy_pod()
    original = copy.deepcopy(pod)
    decision = admit(pod)
    assert pod == original, "mutate must not touch its input"
    assert decision.action == Action.PATCHED
    assert {op.path for op in decision.patch} == {
        "/spec/containers/3/command",
        "/spec/containers/3/args/0",
        "/metadata/annotations/multinode-webhook.io~1status",
    }
    result = jsonpatch.apply_patch(pod, to_json(decision.patch))
    head = result["spec"]["containers"][3]
    assert head["command"][:2] == ["bash", "-c"]
    assert head["command"][3] == names.HEAD_CONTAINER
    assert head["args"] == ["--max-model-len=4096", "--dtype=half"]
    # Everything else, byte for byte.
    expected = copy.deepcopy(original)
    expected["spec"]["containers"][3].update(command=head["command"], args=head["args"])
    expected["metadata"]["annotations"][names.STATUS_ANNOTATION] = result["metadata"][
        "annotations"
    ][names.STATUS_ANNOTATION]
    assert result == expected


def test_args_removed_when_only_the_script_was_there() -> None:
    pod = example("legacy-head-pod.yaml")
    pod["spec"]["containers"][0]["args"] = pod["spec"]["containers"][0]["args"][:1]
    decision = admit(pod)
    assert {"op": "remove", "path": "/spec/containers/0/args"} in to_json(decision.patch)
    assert (
        "args" not in jsonpatch.apply_patch(pod, to_json(decision.patch))["spec"]["containers"][0]
    )


def test_bash_path_is_kept() -> None:
    pod = example("legacy-worker-pod.yaml")
    pod["spec"]["containers"][0]["command"] = ["/usr/local/bin/bash", "-c"]
    decision = admit(pod)
    assert decision.patch[0].value[0] == "/usr/local/bin/bash"


def test_status_annotation_records_version_rules_and_digest() -> None:
    pod = example("legacy-head-pod.yaml")
    decision = admit(pod)
    status = json.loads(
        jsonpatch.apply_patch(pod, to_json(decision.patch))["metadata"]["annotations"][
            names.STATUS_ANNOTATION
        ]
    )
    assert status["rules"] == {names.HEAD_CONTAINER: list(decision.rules[names.HEAD_CONTAINER])}
    recorded = golden("legacy-head-pod")["object"]["metadata"]["annotations"]
    assert status == json.loads(recorded[names.STATUS_ANNOTATION])
    assert status["version"] == __version__
    assert decision.rules[names.HEAD_CONTAINER] == (
        Rule.SCRIPT_TO_COMMAND,
        Rule.FORWARD_ARGS,
        Rule.MODEL_DEFAULT,
    )


def test_pod_without_metadata_annotations_gets_the_map() -> None:
    pod = example("legacy-worker-pod.yaml")
    assert "annotations" not in pod["metadata"]
    decision = admit(pod)
    assert decision.patch[-1].path == "/metadata/annotations"
    assert (
        jsonpatch.apply_patch(pod, to_json(decision.patch)) == golden("legacy-worker-pod")["object"]
    )


def test_container_named_in_the_status_annotation_is_left_alone() -> None:
    pod = example("legacy-head-pod.yaml")
    rules = {names.HEAD_CONTAINER: [Rule.FORWARD_ARGS]}
    pod["metadata"]["annotations"] = {names.STATUS_ANNOTATION: json.dumps({"rules": rules})}
    decision = admit(pod)
    assert (decision.action, decision.reason) == (Action.UNCHANGED, Reason.ALREADY_MIGRATED)


def test_both_targets_in_one_pod_and_earlier_rules_kept() -> None:
    head = example("legacy-head-pod.yaml")
    worker = example("legacy-worker-pod.yaml")["spec"]["containers"][0]
    head["spec"]["containers"].append(worker)
    head["metadata"]["annotations"] = {
        names.STATUS_ANNOTATION: '{"rules": {"old": ["forward-args"]}}'
    }
    decision = admit(head)
    assert set(decision.rules) == {names.HEAD_CONTAINER, names.WORKER_CONTAINER}
    status = json.loads(
        jsonpatch.apply_patch(head, to_json(decision.patch))["metadata"]["annotations"][
            names.STATUS_ANNOTATION
        ]
    )
    assert set(status["rules"]) == {"old", names.HEAD_CONTAINER, names.WORKER_CONTAINER}


def test_configured_container_names() -> None:
    pod = example("legacy-head-pod.yaml")
    pod["spec"]["containers"][0]["name"] = "server"
    assert admit(pod).reason == Reason.NOT_A_TARGET
    assert admit(pod, options=Options(containers=("server",))).action == Action.PATCHED


def test_warnings_are_short() -> None:
    pod = example("legacy-head-pod.yaml")
    names = tuple(f"kserve-container-with-a-very-long-name-{i}" for i in range(5))
    pod["spec"]["containers"] = [{**pod["spec"]["containers"][0], "name": n} for n in names]
    decision = admit(pod, options=Options(containers=names))
    assert decision.warnings
    assert all(len(w) <= WARNING_LIMIT for w in decision.warnings)


def test_no_launch_command_warns() -> None:
    pod = example("legacy-worker-pod.yaml")
    pod["spec"]["containers"][0]["args"][0] = "sleep infinity\n"
    decision = admit(pod)
    assert (decision.action, decision.reason) == (Action.UNCHANGED, Reason.NO_LAUNCH_COMMAND)
    assert decision.warnings
    assert "worker-container" in decision.warnings[0]


def test_shadow_reports_without_patching() -> None:
    decision = admit(example("legacy-head-pod.yaml"), context=Context(shadow=True))
    assert (decision.action, decision.patch) == (Action.SHADOW, ())
    assert "would rewrite" in decision.warnings[0]


@pytest.mark.parametrize(
    ("args", "warnings"),
    [
        (["--model_name=m", "--x=a b"], ['arg 2 "--x=a b" now reaches the server as one word']),
        (["--model_name=m", "--glob=*"], ['arg 2 "--glob=*" now reaches the server unexpanded']),
        (["--model_name=m", ""], ['arg 2 "" now reaches the server (it was dropped)']),
        (
            ["--model_name=m", "--y", "a b", "c d", "*"],
            [
                'arg 3 "a b" now reaches the server as one word',
                'arg 4 "c d" now reaches the server as one word',
                'arg 5 "*" now reaches the server unexpanded',
            ],
        ),
        (
            ["--model_name=m", *[f"{n} x" for n in range(10)]],
            [
                *(f'arg {n + 2} "{n} x" now reaches the server as one word' for n in range(8)),
                "and 2 more args now reach it as written",
            ],
        ),
        (["--model_name=m", "--y"], []),
    ],
)
def test_exact_args_names_every_arg_it_changes(args: list[str], warnings: list[str]) -> None:
    command = ["bash", "-c", "python -m huggingfaceserver $0 $@\n"]
    container = {"name": names.HEAD_CONTAINER, "command": command, "args": args}
    decision = admit(pod(containers=[container]))
    assert decision.action == Action.PATCHED
    notes = [w for w in decision.warnings if "multinode-webhook: kserve-container " in w]
    assert notes == [f"multinode-webhook: kserve-container {w}" for w in warnings]
    assert all(len(w) <= WARNING_LIMIT for w in decision.warnings)


def test_exact_args_numbers_the_arg_as_it_stands_in_a_legacy_pods_args() -> None:
    # args[0] is the script, so the first user arg is arg 2 and "--x=a b" arg 3.
    script = "python -m huggingfaceserver $@\n"
    container = {"name": names.HEAD_CONTAINER, "command": ["bash", "-c"]}
    decision = admit(pod(containers=[{**container, "args": [script, "--a", "--x=a b"]}]))
    assert decision.action == Action.PATCHED
    notes = [w for w in decision.warnings if " now reaches the server" in w]
    assert notes == [
        'multinode-webhook: kserve-container arg 3 "--x=a b" now reaches the server as one word'
    ]


def test_a_decision_from_a_parse_timeout_is_never_kept() -> None:
    # The timeout is remembered for a while only (`ParsedScripts.put(until=...)`): a kept
    # decision would outlast it.
    pod = example("legacy-head-pod.yaml")
    decisions = Decisions(Options())
    timed_out = mutate(pod_view(pod), rewrites=lambda *_: parse_timeout(0.9), decisions=decisions)
    assert (timed_out.reason, timed_out.cacheable) == (Reason.PARSE_TIMEOUT, False)
    again = mutate(pod_view(pod), rewrites=rewrite_script, decisions=decisions)
    assert again.action is Action.PATCHED


def test_two_owners_decisions_never_meet() -> None:
    # Each server (or command) owns its decisions: one's never answers for the other.
    pod = example("legacy-head-pod.yaml")
    failing, parsing = Decisions(Options()), Decisions(Options())
    failed = mutate(pod_view(pod), rewrites=lambda *_: parser_failed(), decisions=failing)
    assert failed.reason is Reason.PARSER_FAILED
    assert (
        mutate(pod_view(pod), rewrites=rewrite_script, decisions=parsing).action is Action.PATCHED
    )
    assert mutate(pod_view(pod), rewrites=_never, decisions=failing) is failed


def _never(script: str, rules: frozenset[Rule]) -> ScriptRewrite:
    raise AssertionError("a kept decision needs no script")


@pytest.mark.parametrize(
    ("text", "shortened"),
    [
        ("fits", "fits"),
        # The longest quoted arg gives way, the sentence is said whole.
        (
            f"multinode-webhook: main arg 3 '{'x' * 150}' now reaches the server as one word",
            f"multinode-webhook: main arg 3 '{'x' * 50}...' now reaches the server as one word",
        ),
        (
            f'c arg 2 "a b" and "{"y" * 200}" end',
            f'c arg 2 "a b" and "{"y" * 93}..." end',
        ),
        # An apostrophe is no quote; with no quoted arg to shorten, the end is cut.
        ("the preset's script " + "z" * 150, ("the preset's script " + "z" * 150)[:117] + "..."),
    ],
    ids=["fits", "quoted", "longest", "unquoted"],
)
def test_a_long_warning_shortens_its_arg_not_its_sentence(text: str, shortened: str) -> None:
    assert short(text) == shortened
    assert len(short(text)) <= WARNING_LIMIT
