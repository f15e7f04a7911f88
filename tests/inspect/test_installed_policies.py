"""A compiled policy read back as `check` reads it (webhook/inspect/installed_policies.py): the
patterns its variables hold cover the pods of services rendered from its presets, and no
other script."""

from __future__ import annotations

import copy
import dataclasses

import pytest

from tests.support import llmisvc
from webhook.inspect.installation import policy_findings
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


@pytest.mark.parametrize(
    ("digests", "patterns", "held"),
    [
        ({"a"}, False, "p: 1 script (compiled"),
        ({"a", "b"}, False, "p: 2 scripts (compiled"),
        (set(), False, "p: 0 scripts (compiled"),
        (set(), True, "p: 1 preset script (compiled"),
    ],
)
def test_check_counts_a_policys_scripts_in_words(
    digests: set[str], patterns: bool, held: str
) -> None:
    preset = _policy()
    policy = dataclasses.replace(
        preset,
        digests=frozenset(digests) | (preset.digests if patterns else frozenset()),
        patterns=preset.patterns if patterns else (),
    )
    [finding, *_] = policy_findings([policy], {}, [])
    assert f"MutatingAdmissionPolicy {held} by an unknown version)" in finding.text


def test_a_policy_with_no_patterns_or_broken_ones_holds_none() -> None:
    spec = policy_spec(compile_shapes([("preset.yaml", llmisvc.EVAL_PRESET)]).shapes)
    assert len(held_patterns(spec)) == 1
    broken = copy.deepcopy(spec)
    for variable in broken["variables"]:
        if variable["name"] == "t0runs":
            variable["expression"] = "variables.x"
    assert held_patterns(broken) == ()
    assert held_patterns({"variables": []}) == ()
