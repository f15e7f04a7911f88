"""InferenceServices rendered into the pods KServe builds, and the argv their servers get.

Every multi-node runtime of the shared corpus, and the example, renders head and worker pods;
the argv preview reports before and after admission is checked against what the real
/bin/bash hands the argv-recording stubs on the pod as built and on the pod as patched."""

from __future__ import annotations

import fnmatch
import re
from pathlib import Path
from typing import Any

import jsonpatch
import pytest
import yaml

from tests.support import kserve, kubelet
from tests.support.builders import EXAMPLES, admit
from tests.support.proof import HOSTILE_ARGS
from webhook.core import names
from webhook.core.patch import to_json
from webhook.offline import render
from webhook.offline.preview import preview_inference_service

EXAMPLE_RUNTIME = EXAMPLES / "legacy-servingruntime.yaml"
# An env or Kubernetes reference, shown unexpanded: the running pod knows its value.
_REFERENCE = re.compile(r"\$\{[A-Za-z_][A-Za-z0-9_]*\}|\$[A-Za-z_][A-Za-z0-9_]*|\$\([^)]*\)")
_GLOB = re.compile(r"[*?\[]")


def _multinode_sources() -> list[Path]:
    return (
        [EXAMPLE_RUNTIME, *kserve.corpus_files()] if kserve.CORPUS.is_dir() else [EXAMPLE_RUNTIME]
    )


def _runtimes(path: Path) -> list[Any]:
    return [r for r in kserve.load_runtimes(path) if r["spec"].get("workerSpec")]


def _matches(shown: list[str], received: list[str]) -> bool:
    """Whether the argv preview shows is what the stub received, once each reference takes a
    value and each glob the files it matched (or itself, when it matched none)."""
    if not shown:
        return not received
    word, rest = shown[0], shown[1:]
    pieces = _REFERENCE.split(word)
    references = _REFERENCE.findall(word)
    pattern = "".join(
        re.escape(piece) + (".*" if index < len(references) else "")
        for index, piece in enumerate(pieces)
    )
    if references and not "".join(pieces) and _matches(rest, received):
        return True  # an unquoted reference to an empty value vanishes
    if received and re.fullmatch(pattern, received[0], re.DOTALL) and _matches(rest, received[1:]):
        return True
    if _GLOB.search(word) and not references:
        for count in range(1, len(received) + 1):
            if all(fnmatch.fnmatchcase(w, word) for w in received[:count]) and _matches(
                rest, received[count:]
            ):
                return True
    return False


def _received(pod: dict[str, Any], container: str, workdir: Path) -> list[str]:
    calls = kubelet.run(pod, container, workdir)
    assert calls, "the script called none of the stubs"
    return calls[-1]


@pytest.mark.parametrize("path", _multinode_sources(), ids=lambda p: p.name)
def test_preview_shows_the_argv_bash_hands_the_server(path: Path, tmp_path: Path) -> None:
    runtimes = _runtimes(path)
    if not runtimes:
        pytest.skip(f"{path.name} holds no multi-node runtime")
    for runtime in runtimes:
        isvc = kserve.inference_service(runtime, user_args=HOSTILE_ARGS)
        pods = {pod.role: pod.pod for pod in render.render(isvc, runtime)}
        results = preview_inference_service(isvc, [runtime])
        assert [r["rendered_from"] for r in results] == [
            f"InferenceService/{kserve.ISVC} (head)",
            f"InferenceService/{kserve.ISVC} (worker)",
        ]
        for result, role in zip(results, ("head", "worker"), strict=True):
            [launch] = result["launch"]
            original = pods[role]
            patched = jsonpatch.apply_patch(original, to_json(admit(original).patch))
            assert patched == result["object"]
            if path.name.startswith(kserve.EXACT_PREFIXES):
                # Already exact upstream (and its worker waits for DNS that only a cluster has).
                assert launch["after"] == launch["before"]
                assert {arg["before"] for arg in launch["args"]} == {"exact"}
                continue
            container = launch["container"]
            before = _received(original, container, tmp_path / role / "before")
            after = _received(patched, container, tmp_path / role / "after")
            assert _matches(launch["before"], before), (launch["before"], before)
            assert _matches(launch["after"], after), (launch["after"], after)
            # Whatever the release, after admission every arg arrives as one word.
            assert after[-len(HOSTILE_ARGS) :] == HOSTILE_ARGS
            assert {arg["after"] for arg in launch["args"]} == {"exact"}


@pytest.mark.parametrize("path", _multinode_sources(), ids=lambda p: p.name)
def test_target_containers_are_the_runtimes_with_the_user_args_appended(path: Path) -> None:
    """What the tests built by hand before the renderer existed: the runtime's command, its
    args ({{.Name}} filled on the head only), then the InferenceService's."""
    for runtime in _runtimes(path):
        isvc = kserve.inference_service(runtime, user_args=HOSTILE_ARGS)
        pods = {pod.role: pod.pod for pod in render.render(isvc, runtime)}
        sources = {
            "head": (runtime["spec"]["containers"], names.HEAD_CONTAINER),
            "worker": (runtime["spec"]["workerSpec"]["containers"], names.WORKER_CONTAINER),
        }
        for role, (containers, name) in sources.items():
            [source] = [c for c in containers if c["name"] == name]
            [built] = [c for c in pods[role]["spec"]["containers"] if c["name"] == name]
            args = list(source.get("args") or [])
            if role == "head":
                args = [arg.replace("{{.Name}}", kserve.ISVC) for arg in args]
            assert built.get("command") == source.get("command"), role
            assert built["args"] == [*args, *HOSTILE_ARGS], role
            assert [c["name"] for c in pods[role]["spec"]["containers"]] == (
                [c["name"] for c in containers] if role == "head" else [name]
            )


def test_the_before_column_shows_the_bug() -> None:
    runtime = yaml.safe_load(EXAMPLE_RUNTIME.read_text())
    isvc = kserve.inference_service(
        runtime, user_args=["--max-model-len=4096", "--served-model-name=my model"]
    )
    head, worker = preview_inference_service(isvc, [runtime])
    fates = {a["arg"]: a["before"] for a in head["launch"][0]["args"]}
    assert fates == {
        "--max-model-len=4096": "dropped: bash took it as $0",
        "--served-model-name=my model": "dropped",
    }
    assert worker["launch"][0]["args"][0]["before"] == "dropped: bash took it as $0"


def test_an_arg_taken_as_0_is_dropped_even_when_the_script_holds_the_same_word(
    tmp_path: Path,
) -> None:
    """The legacy script says `--model_name=${MODEL_NAME}` itself: the user's first arg, the
    same text, is still bash's $0 and never reaches the server."""
    runtime = yaml.safe_load(EXAMPLE_RUNTIME.read_text())
    first = "--model_name=${MODEL_NAME}"
    isvc = kserve.inference_service(runtime, user_args=[first, "--dtype=half"])
    head = preview_inference_service(isvc, [runtime])[0]
    [launch] = head["launch"]
    assert [a["before"] for a in launch["args"]] == ["dropped: bash took it as $0", "dropped"]
    assert [a["after"] for a in launch["args"]] == ["exact", "exact"]
    pod = render.render(isvc, runtime)[0].pod
    received = _received(pod, names.HEAD_CONTAINER, tmp_path)
    assert "--dtype=half" not in received
    assert received.count(f"--model_name={kserve.ISVC}") == 1  # the script's own word only


def test_unquoted_forwarding_shows_args_split_and_empties_dropped() -> None:
    if not kserve.CORPUS.is_dir():
        pytest.skip(f"shared runtime corpus not found at {kserve.CORPUS}")
    [runtime] = kserve.load_runtimes(
        kserve.CORPUS / "v0.20.0-kserve-huggingfaceserver-multinode.yaml"
    )
    isvc = kserve.inference_service(runtime, user_args=["--a=1", "--b=x y", ""])
    head = preview_inference_service(isvc, [runtime])[0]
    fates = {a["arg"]: (a["before"], a["after"]) for a in head["launch"][0]["args"]}
    assert fates == {
        "--a=1": ("exact", "exact"),
        "--b=x y": ("split into 2 words", "exact"),
        "": ("dropped", "exact"),
    }
    # The unquoted `$0 $@`: the runtime's own arg, then the user's split at blanks.
    assert head["launch"][0]["before"][-4:] == ["--model_name=llama", "--a=1", "--b=x", "y"]
    assert head["launch"][0]["after"][-4:] == ["--model_name=llama", "--a=1", "--b=x y", ""]


PLACEHOLDER_CASES = [
    ("--model_name={{.Name}}", "--model_name=llama"),
    ("--ns={{ .Namespace }}", "--ns=models"),
    ("--team={{.Labels.team}}", "--team=ml"),
    ('--team={{ index .Labels "team" }}', "--team=ml"),
    ("--owner={{.Annotations.owner}}", "--owner=ops"),
    ("--plain", "--plain"),
]


@pytest.mark.parametrize(("written", "head"), PLACEHOLDER_CASES)
@pytest.mark.parametrize("version", [r.line for r in render.RELEASES])
def test_placeholders_are_filled_on_the_head_only(written: str, head: str, version: str) -> None:
    runtime = yaml.safe_load(EXAMPLE_RUNTIME.read_text())
    runtime["spec"]["containers"][0]["args"].append(written)
    runtime["spec"]["workerSpec"]["containers"][0]["args"] = [
        *runtime["spec"]["workerSpec"]["containers"][0].get("args", []),
        written,
    ]
    isvc = kserve.inference_service(runtime)
    isvc["metadata"]["labels"] = {"team": "ml"}
    isvc["metadata"]["annotations"]["owner"] = "ops"
    pods = {p.role: p.pod for p in render.render(isvc, runtime, version=version)}
    assert pods["head"]["spec"]["containers"][0]["args"][-1] == head
    assert pods["worker"]["spec"]["containers"][0]["args"][-1] == written


def _env(pod: dict[str, Any], container: str) -> dict[str, str]:
    [found] = [c for c in pod["spec"]["containers"] if c["name"] == container]
    return {item["name"]: item["value"] for item in found.get("env", []) if "value" in item}


HEAD_BASE = {"PIPELINE_PARALLEL_SIZE", "TENSOR_PARALLEL_SIZE", "MODEL_NAME", "MODEL_DIR"}
COUNTS = {"RAY_NODE_COUNT", "REQUEST_GPU_COUNT"}
ENV_TABLE = [
    # version, head env added, worker env added, default pipeline size
    ("0.15.0-rc0", HEAD_BASE, {"PIPELINE_PARALLEL_SIZE", "ISVC_NAME", "HEAD_SVC"}, "2"),
    ("0.15.0", HEAD_BASE, {"PIPELINE_PARALLEL_SIZE", "ISVC_NAME", "HEAD_SVC"}, "2"),
    ("0.15.1", HEAD_BASE | COUNTS, COUNTS | {"ISVC_NAME", "HEAD_SVC"}, "1"),
    ("0.15.2", HEAD_BASE | COUNTS, COUNTS | {"ISVC_NAME", "HEAD_SVC"}, "1"),
    ("0.16.0", HEAD_BASE | COUNTS, COUNTS | {"ISVC_NAME", "HEAD_SVC"}, "1"),
    (
        "0.17.1",
        HEAD_BASE | COUNTS | {"INFERENCE_SERVICE_NAME"},
        COUNTS | {"ISVC_NAME", "HEAD_SVC"},
        "1",
    ),
    (
        "0.18.0",
        HEAD_BASE | COUNTS | {"INFERENCE_SERVICE_NAME"},
        COUNTS
        | {"ISVC_NAME", "HEAD_SVC", "PIPELINE_PARALLEL_SIZE", "TENSOR_PARALLEL_SIZE", "WORKER_SVC"},
        "1",
    ),
    (
        "v0.20.0",
        HEAD_BASE | COUNTS | {"INFERENCE_SERVICE_NAME"},
        COUNTS
        | {"ISVC_NAME", "HEAD_SVC", "PIPELINE_PARALLEL_SIZE", "TENSOR_PARALLEL_SIZE", "WORKER_SVC"},
        "1",
    ),
]


@pytest.mark.parametrize(("version", "head_env", "worker_env", "pipeline"), ENV_TABLE)
def test_controller_env_per_release(
    version: str, head_env: set[str], worker_env: set[str], pipeline: str
) -> None:
    runtime = yaml.safe_load(EXAMPLE_RUNTIME.read_text())
    isvc = kserve.inference_service(runtime)
    del isvc["spec"]["predictor"]["workerSpec"]["pipelineParallelSize"]
    isvc["metadata"]["generation"] = 3
    pods = {p.role: p.pod for p in render.render(isvc, runtime, version=version)}
    head = _env(pods["head"], names.HEAD_CONTAINER)
    worker = _env(pods["worker"], names.WORKER_CONTAINER)
    runtime_env = {e["name"] for c in runtime["spec"]["containers"] for e in c.get("env", [])}
    assert set(head) - runtime_env == head_env
    worker_runtime_env = {
        e["name"] for c in runtime["spec"]["workerSpec"]["containers"] for e in c.get("env", [])
    }
    assert set(worker) - worker_runtime_env == worker_env
    assert head["PIPELINE_PARALLEL_SIZE"] == pipeline
    assert head["MODEL_DIR"] == render.MODEL_MOUNT
    if "HEAD_SVC" in worker:
        assert worker["HEAD_SVC"] == f"{kserve.ISVC}-head-3"
    if "WORKER_SVC" in worker:
        assert worker["WORKER_SVC"] == f"{kserve.ISVC}-workers-3"


@pytest.mark.parametrize(
    ("version", "error"),
    [("0.14.2", "no multi-node predictor rules"), ("0.21.0", "no multi-node"), ("latest", "MAJOR")],
)
def test_unknown_versions_are_refused(version: str, error: str) -> None:
    with pytest.raises(render.RenderError, match=error):
        render.release(version)


def test_pods_carry_kserve_labels_and_the_model_mount() -> None:
    runtime = yaml.safe_load(EXAMPLE_RUNTIME.read_text())
    head, worker = (p.pod for p in render.render(kserve.inference_service(runtime), runtime))
    assert head["metadata"]["labels"] == {
        names.ISVC_LABEL: kserve.ISVC,
        "component": "predictor",
        "isvc.generation": "1",
        "app": f"isvc.{kserve.ISVC}-predictor",
    }
    assert worker["metadata"]["labels"]["app"] == f"isvc.{kserve.ISVC}-predictor-worker"
    assert head["metadata"]["annotations"] == {render.SOURCE_URI_ANNOTATION: "pvc://models/llama"}
    for pod, container in ((head, names.HEAD_CONTAINER), (worker, names.WORKER_CONTAINER)):
        [mounted] = [c for c in pod["spec"]["containers"] if c["name"] == container]
        assert {
            "name": render.PVC_VOLUME,
            "mountPath": "/mnt/models",
            "readOnly": True,
            "subPath": "llama",
        } in mounted["volumeMounts"]
        assert {
            "name": render.PVC_VOLUME,
            "persistentVolumeClaim": {"claimName": "models", "readOnly": True},
        } in pod["spec"]["volumes"]


@pytest.mark.parametrize(
    ("runtime_args", "isvc_container", "expected"),
    [
        ({"args": ["a"]}, {"args": ["b"]}, {"args": ["a", "b"]}),
        ({"command": ["x"]}, {"command": []}, {"command": ["x"]}),
        ({"command": ["x"]}, {"command": ["y"]}, {"command": ["y"]}),
        (
            {"env": [{"name": "A", "value": "1"}, {"name": "B", "value": "2"}]},
            {"env": [{"name": "B", "value": "3"}, {"name": "C", "value": "4"}]},
            {
                "env": [
                    {"name": "A", "value": "1"},
                    {"name": "B", "value": "3"},
                    {"name": "C", "value": "4"},
                ]
            },
        ),
        (
            {"resources": {"limits": {"cpu": "1"}}},
            {"resources": {"requests": {"cpu": "1"}}},
            {"resources": {"limits": {"cpu": "1"}, "requests": {"cpu": "1"}}},
        ),
        ({"image": "a"}, {"image": "b", "storageUri": "pvc://x", "runtime": "r"}, {"image": "b"}),
    ],
)
def test_container_merge(
    runtime_args: dict[str, Any], isvc_container: dict[str, Any], expected: dict[str, Any]
) -> None:
    merged = render.merge_container({"name": "kserve-container", **runtime_args}, isvc_container)
    assert merged == {"name": "kserve-container", **expected}
