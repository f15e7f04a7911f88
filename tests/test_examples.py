"""The examples a clone can try: the LLMInferenceService and its preset render into a leader
and a worker pod, and preview says what vLLM receives of each arg, before and after."""

from __future__ import annotations

import json

from tests.support.builders import EXAMPLES
from tests.support.cli import cli


def test_the_llminferenceservice_example_answers_what_vllm_receives() -> None:
    done = cli(
        "preview",
        str(EXAMPLES / "llminferenceservice.yaml"),
        "--preset",
        str(EXAMPLES / "llminferenceservice-preset.yaml"),
        "-o",
        "json",
    )
    assert done.returncode == 0, done.stderr
    results = json.loads(done.stdout)["results"]
    assert [(r["name"], r["decision"]) for r in results] == [
        ("granite-kserve-mn-leader", "patched"),
        ("granite-kserve-mn-worker", "patched"),
    ]
    table = cli(
        "preview",
        str(EXAMPLES / "llminferenceservice.yaml"),
        "--preset",
        str(EXAMPLES / "llminferenceservice-preset.yaml"),
        "-o",
        "table",
    ).stdout
    assert '"--served-model-name=granite 3.3"         split into 2 words → exact' in table
