"""`preview` of the workloads KServe makes for an LLMInferenceService: a LeaderWorkerSet (both
pod templates) and a Deployment, with the argv `vllm serve` receives before and after."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import yaml

from tests.support import llmisvc
from tests.support.builders import data_pod
from tests.support.cli import cli, one_line_error
from webhook.core import argv, names
from webhook.offline import preview


def _template(pod: dict[str, Any]) -> dict[str, Any]:
    return {"metadata": {"labels": pod["metadata"]["labels"]}, "spec": pod["spec"]}


def _lws() -> dict[str, Any]:
    leader = data_pod("llm-eval-leader")
    worker = copy.deepcopy(leader)
    worker["spec"]["containers"][0]["args"] = ["--enforce-eager", "a b"]
    return {
        "apiVersion": "leaderworkerset.x-k8s.io/v1",
        "kind": "LeaderWorkerSet",
        "metadata": {"name": "granite-kserve-mn", "namespace": "models"},
        "spec": {
            "leaderWorkerTemplate": {
                "size": 2,
                "leaderTemplate": _template(leader),
                "workerTemplate": _template(worker),
            }
        },
    }


def test_preview_reads_both_templates_of_a_leaderworkerset() -> None:
    done = cli("preview", "-", "-o", "json", stdin=yaml.safe_dump(_lws()))
    assert done.returncode == 0, done.stderr
    leader, worker = json.loads(done.stdout)["results"]
    assert (leader["template"], worker["template"]) == ("leader", "worker")
    assert leader["decision"] == worker["decision"] == "patched"
    assert leader["patch"][0]["path"].startswith("/spec/leaderWorkerTemplate/leaderTemplate/")
    assert worker["patch"][0]["path"].startswith("/spec/leaderWorkerTemplate/workerTemplate/")
    [launch] = leader["launch"]
    assert launch["container"] == names.LLM_CONTAINER
    assert launch["before"][:2] == ["vllm", "serve"]
    # eval split the model name and ran nothing else through; now each arg is one word.
    assert "--served-model-name=my" in launch["before"]
    after = launch["after"]
    lora = '{"name":"adapter","path":"/mnt/lora/adapter"}'
    tail = ["--lora-modules", lora, "--served-model-name=my model", "--x=$(id)"]
    assert after[-5:] == [*tail, "--trust-remote-code"]
    assert [arg["after"] for arg in launch["args"]] == ["exact"] * 4
    # Before: what eval did with each, as bash does it (tests/core/test_argv.py).
    assert [arg["before"] for arg in launch["args"]] == [
        "exact",
        f"changed: eval makes it {lora!r}",
        "split into 2 words",
        argv.RUNS,
    ]
    assert worker["launch"][0]["after"][-3:] == ["--enforce-eager", "a b", "--trust-remote-code"]


def test_manifest_of_a_leaderworkerset_is_one_object_with_both_templates_repaired() -> None:
    done = cli("preview", "-", "-o", "manifest", stdin=yaml.safe_dump(_lws()))
    assert done.returncode == 0, done.stderr
    [lws] = list(yaml.safe_load_all(done.stdout))
    templates = lws["spec"]["leaderWorkerTemplate"]
    for role in ("leaderTemplate", "workerTemplate"):
        assert templates[role]["spec"]["containers"][0]["command"][-1] == "--"
        assert '\\"\\$@\\"' in templates[role]["spec"]["containers"][0]["command"][2]
        assert names.STATUS_ANNOTATION in templates[role]["metadata"]["annotations"]


def test_preview_reads_the_deployment_of_a_single_node_service() -> None:
    pod = data_pod("llm-eval-leader")
    deployment = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "granite-kserve", "namespace": "models"},
        "spec": {"template": _template(pod)},
    }
    done = cli("preview", "-", "-o", "json", stdin=yaml.safe_dump(deployment))
    assert done.returncode == 0, done.stderr
    [result] = json.loads(done.stdout)["results"]
    assert result["decision"] == "patched"
    assert result["launch"][0]["after"][-2:] == ["--x=$(id)", "--trust-remote-code"]


def test_preview_renders_an_llm_inference_service_with_its_presets(tmp_path: Path) -> None:
    preset = tmp_path / "presets.yaml"
    preset.write_text(yaml.safe_dump(llmisvc.EVAL_PRESET))
    service = yaml.safe_dump(llmisvc.small_service(["--served-model-name=my model", "--x=$(id)"]))
    done = cli("preview", "-", "--preset", str(preset), "-o", "json", stdin=service)
    assert done.returncode == 0, done.stderr
    [result] = json.loads(done.stdout)["results"]
    assert result["rendered_from"] == "LLMInferenceService/granite (single)"
    assert result["decision"] == "patched"
    [launch] = result["launch"]
    # The template was rendered with the service's model name, then the user's args follow.
    assert launch["before"][:5] == [
        "vllm",
        "serve",
        "/mnt/models",
        "--served-model-name",
        "ibm/granite",
    ]
    assert [(a["before"], a["after"]) for a in launch["args"]] == [
        ("split into 2 words", "exact"),
        (argv.RUNS, "exact"),
    ]
    # The same stream with the preset in it, as POST /preview takes it.
    inline = cli(
        "preview", "-", "-o", "json", stdin=service + "---\n" + yaml.safe_dump(llmisvc.EVAL_PRESET)
    )
    assert json.loads(inline.stdout) == json.loads(done.stdout)


def test_args_that_replace_a_presets_script_are_said_lost_with_the_fix_and_fail_on(
    tmp_path: Path,
) -> None:
    stream = yaml.safe_dump(llmisvc.small_service(["--served-model-name=my model"]))
    stream += "---\n" + yaml.safe_dump(llmisvc.SCRIPT_IN_ARGS_PRESET)
    done = cli("preview", "-", "-o", "json", stdin=stream)
    [result] = json.loads(done.stdout)["results"]
    assert result["reason"] == "script-replaced"
    assert [a["before"] for a in result["launch"][0]["args"]] == [preview.REPLACED]
    [fix] = [w for w in result["warnings"] if "crash-loops" in w]
    assert fix.endswith("VLLM_ADDITIONAL_ARGS='--served-model-name=my model'")
    gated = cli("preview", "-", "--fail-on", "warning", "-o", "json", stdin=stream)
    assert gated.returncode == 1
    assert "--fail-on warning: Pod granite-kserve-single" in gated.stderr


def test_a_service_no_preset_given_renders_is_one_line_and_exit_2() -> None:
    multi = llmisvc.small_service([])
    multi["spec"]["worker"] = {"containers": []}
    multi["spec"]["parallelism"] = {"data": 2}
    stream = yaml.safe_dump(multi) + "---\n" + yaml.safe_dump(llmisvc.EVAL_PRESET)
    error = one_line_error(cli("preview", "-", stdin=stream))
    assert "LLMInferenceService granite: its shape takes the preset " in error
    assert "'config-llm-worker-data-parallel'" in error
    # The command line takes presets apart from the input too, and says so.
    assert error.endswith(
        "not among the presets given: pass it with --preset FILE or in the same input"
    )
