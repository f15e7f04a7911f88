"""A compiled policy read back as `check` reads it (webhook/inspect/installed_policies.py): the
patterns its variables hold cover the pods of services rendered from its presets, and no
other script."""

from __future__ import annotations

import copy

import pytest

from tests.support import llmisvc
from webhook.inspect.installed_policies import InstalledPolicy, held_patterns
from webhook.offline.policy import compile_shapes, policy_spec


def _policy() -> InstalledPolicy:
    compiled = compile_shapes([("preset.yaml", llmisvc.EVAL_PRESET)])
    return InstalledPolicy(
        name="p",
        version="",
        failure_policy="Ignore",
        digests=frozenset(shape.digest for shape in compiled.shapes),
        bindings=(),
        patterns=held_patterns(policy_spec(compiled.shapes)),
    )


@pytest.mark.parametrize("identity", [llmisvc.GRANITE, llmisvc.LLAMA], ids=lambda i: i.name)
def test_a_pod_rendered_from_a_compiled_preset_is_known(identity: llmisvc.Identity) -> None:
    pod = llmisvc.build_pod(
        llmisvc.EVAL_PRESET, role="leader", user_args=["--x"], identity=identity
    )
    assert _policy().knows(pod)


def test_a_pod_whose_script_was_edited_is_not_known() -> None:
    pod = llmisvc.build_pod(llmisvc.EVAL_PRESET, role="leader")
    edited = copy.deepcopy(pod)
    edited["spec"]["containers"][0]["command"][2] += " --extra"
    renamed = copy.deepcopy(pod)
    renamed["spec"]["containers"][0]["command"][0] = "/usr/bin/bash"
    policy = _policy()
    assert policy.knows(pod)
    assert not policy.knows(edited)
    assert not policy.knows(renamed)


def test_a_policy_with_no_patterns_or_broken_ones_holds_none() -> None:
    spec = policy_spec(compile_shapes([("preset.yaml", llmisvc.EVAL_PRESET)]).shapes)
    assert len(held_patterns(spec)) == 1
    broken = copy.deepcopy(spec)
    for variable in broken["variables"]:
        if variable["name"] == "t0runs":
            variable["expression"] = "variables.x"
    assert held_patterns(broken) == ()
    assert held_patterns({"variables": []}) == ()
