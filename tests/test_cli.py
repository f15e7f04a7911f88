"""`multinode-webhook preview` and `migrate` through a real subprocess."""

from __future__ import annotations

import copy
import json
import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import jsonpatch
import pytest
import yaml

from tests.support import fakeapi
from tests.support.builders import EXAMPLES, TESTDATA, WORKLOADS, example, workload
from tests.support.cli import cli, in_process, one_line_error
from webhook.core import names
from webhook.core.names import Action, Mode, Reason

HEAD = EXAMPLES / "legacy-head-pod.yaml"
RUNTIME = EXAMPLES / "legacy-servingruntime.yaml"


def preview_json(text: str, *args: str) -> list[dict[str, Any]]:
    done = in_process("preview", "-", "-o", "json", *args, stdin=text)
    assert done.returncode == 0, done.stderr
    results: list[dict[str, Any]] = json.loads(done.stdout)["results"]
    return results


def test_pod_from_file_json_output() -> None:
    done = cli("preview", str(HEAD))
    assert done.returncode == 0, done.stderr
    [result] = json.loads(done.stdout)["results"]
    assert set(result) == {
        "kind",
        "name",
        "decision",
        "reason",
        "trace",
        "patch",
        "warnings",
        "object",
        "diff",
        "launch",
    }
    assert (result["kind"], result["decision"]) == ("Pod", Action.PATCHED)
    assert [(a["arg"], a["after"]) for a in result["launch"][0]["args"]] == [
        ("--max-model-len=4096", "exact"),
        ("--dtype=half", "exact"),
    ]
    assert (
        jsonpatch.apply_patch(example("legacy-head-pod.yaml"), result["patch"]) == result["object"]
    )


@pytest.mark.parametrize(("kind", "api_version", "path"), WORKLOADS, ids=[w[0] for w in WORKLOADS])
def test_workload_patch_points_into_the_template(
    kind: str, api_version: str, path: tuple[str, ...]
) -> None:
    obj = workload(kind, api_version, path)
    [result] = preview_json(json.dumps(obj))
    assert (result["kind"], result["decision"]) == (kind, Action.PATCHED)
    prefix = "/" + "/".join(path) + "/"
    assert all(op["path"].startswith(prefix) for op in result["patch"])
    assert jsonpatch.apply_patch(obj, result["patch"]) == result["object"]


def test_list_multidoc_and_admission_review() -> None:
    head, worker = example("legacy-head-pod.yaml"), example("legacy-worker-pod.yaml")
    service = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "s"}}
    listed = preview_json(
        json.dumps({"apiVersion": "v1", "kind": "List", "items": [head, service]})
    )
    assert [r["decision"] for r in listed] == [Action.PATCHED, Action.SKIPPED]
    assert listed[1]["reason"] == Reason.NOT_POD_CREATE

    stream = yaml.safe_dump_all([head, worker, service])
    assert [r["decision"] for r in preview_json(stream)] == [
        Action.PATCHED,
        Action.PATCHED,
        Action.SKIPPED,
    ]

    review = {
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "request": {
            "uid": "u",
            "kind": {"group": "", "version": "v1", "kind": "Pod"},
            "operation": "CREATE",
            "namespace": "models",
            "object": worker,
        },
    }
    [result] = preview_json(json.dumps(review))
    assert result["decision"] == Action.PATCHED
    assert jsonpatch.apply_patch(worker, result["patch"]) == result["object"]


@pytest.mark.parametrize(
    ("labels", "mode", "decision"),
    [
        ([f"{names.INJECT_LABEL}=shadow"], Mode.OPT_IN, Action.SHADOW),
        ([f"{names.INJECT_LABEL}=enabled"], Mode.OPT_IN, Action.PATCHED),
        (["team=a"], Mode.OPT_IN, Action.SKIPPED),
        (["team=a"], Mode.CLUSTER_WIDE, Action.PATCHED),
    ],
)
def test_namespace_simulation(labels: list[str], mode: str, decision: str) -> None:
    args = [a for label in labels for a in ("--namespace-label", label)]
    [result] = preview_json(HEAD.read_text(), *args, "--mode", mode, "--namespace", "team-a")
    assert result["decision"] == decision


def test_yaml_patch_and_diff_formats() -> None:
    as_yaml = cli("preview", str(HEAD), "-o", "yaml")
    assert yaml.safe_load(as_yaml.stdout)["results"][0]["decision"] == Action.PATCHED
    patch = cli("preview", str(HEAD), "-o", "patch")
    ops = json.loads(patch.stdout)
    assert jsonpatch.apply_patch(example("legacy-head-pod.yaml"), ops)
    diff = cli("preview", str(HEAD), "-o", "diff").stdout
    assert diff.startswith("# warning: multinode-webhook rewrote kserve-container so ")
    assert "\n--- a/Pod/" in diff
    assert '+        --pipeline-parallel-size=${PIPELINE_PARALLEL_SIZE} "$@"' in diff
    # A pod left as it is still says why, and its warnings, as lines a patch tool skips.
    shadow = ["--namespace-label", f"{names.INJECT_LABEL}=shadow"]
    quiet = cli("preview", str(HEAD), "-o", "diff", *shadow).stdout
    lines = quiet.splitlines()
    assert lines[0].startswith("# Pod llama-predictor-5d8f7c9b4-head: shadow (")
    assert any("(shadow) would rewrite kserve-container" in line for line in lines[1:])
    assert all(line.startswith("# ") for line in lines)
    migrated = cli("preview", str(TESTDATA / "pods" / "llm-exec-form.yaml"), "-o", "diff")
    assert migrated.stdout.startswith("# Pod "), migrated.stdout
    assert "unchanged (already-migrated)" in migrated.stdout.splitlines()[0]


def _on_a_terminal(*args: str) -> str:
    """What `multinode-webhook ARGS` prints with its stdout on a terminal (a pseudo-tty)."""
    leader, follower = os.openpty()
    with subprocess.Popen(
        [sys.executable, "-m", "webhook", *args], stdout=follower, stderr=subprocess.PIPE
    ) as process:
        os.close(follower)
        out = b""
        while True:
            try:
                chunk = os.read(leader, 65536)
            except OSError:  # the other end closed: all was read
                break
            if not chunk:
                break
            out += chunk
        process.wait(timeout=60)
    os.close(leader)
    assert process.returncode == 0
    return out.decode().replace("\r\n", "\n")


def test_preview_prints_a_table_on_a_terminal_and_json_to_a_pipe() -> None:
    pod = str(TESTDATA / "pods" / "llm-eval-leader.yaml")
    table = _on_a_terminal("preview", pod).splitlines()
    assert table[0] == "Pod granite-kserve-mn-0: patched (lossy-args)"
    rows = [line.split(None, 3) for line in table[1:5]]
    assert [row[:3] for row in rows] == [["main", "arg", str(n)] for n in range(1, 5)]
    assert rows[2][3].startswith('"--served-model-name=my model" ')
    assert rows[2][3].endswith("  split into 2 words → exact")
    assert rows[3][3].startswith("--x=$(id)")
    assert "runs a command" in rows[3][3]
    assert table[5].startswith("  warning: multinode-webhook rewrote main")
    piped = cli("preview", pod)
    assert json.loads(piped.stdout)["results"][0]["decision"] == Action.PATCHED


@pytest.mark.parametrize(
    ("stdin", "args", "message"),
    [
        ("{not json", [], "invalid JSON"),
        ("a: [b\n", [], "invalid YAML"),
        ("", [], "the input holds no Kubernetes object"),
        ("just a string\n", [], "expected a Kubernetes object"),
        ("metadata: {}\n", [], "a document has no kind"),
        (
            '{"kind": "AdmissionReview", "apiVersion": "admission.k8s.io/v1", "request": {}}',
            [],
            "AdmissionReview: request.uid is missing",
        ),
        (None, ["/nonexistent/pod.yaml"], "cannot read /nonexistent/pod.yaml"),
        ("[1, 2]", [], "expected a Kubernetes object, found a number"),
    ],
)
def test_bad_input_exits_2_with_one_line(stdin: str | None, args: list[str], message: str) -> None:
    done = in_process("preview", *(args or ["-"]), stdin=stdin or "")
    assert done.returncode == 2
    assert done.stdout == ""
    assert len(done.stderr.splitlines()) == 1
    assert message in done.stderr
    assert "Traceback" not in done.stderr


def test_migrate_fixes_runtimes_and_keeps_other_documents(tmp_path: Path) -> None:
    other = "# a comment that must survive\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: c\n"
    source = tmp_path / "stream.yaml"
    source.write_text(other + "---\n" + RUNTIME.read_text())
    done = cli("migrate", str(source))
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith(other + "---\n")
    fixed = list(yaml.safe_load_all(done.stdout))[1]
    assert fixed["spec"]["containers"][0]["command"][3] == names.HEAD_CONTAINER
    assert done.stderr.count(f"migrated {source}: ServingRuntime/") == 2

    (tmp_path / "fixed.yaml").write_text(done.stdout)
    assert cli("migrate", "--check", str(tmp_path / "fixed.yaml")).returncode == 0
    check = cli("migrate", "--check", str(source))
    assert (check.returncode, check.stderr) == (1, "")
    header, *rows, summary = check.stdout.splitlines()
    assert header.split() == ["FILE", "NAMESPACE", "OBJECT", "CONTAINER", "RULES"]
    runtime = "ServingRuntime/huggingface-multinode-legacy"
    assert [row.split()[:5] for row in rows] == [
        [str(source), "-", runtime, names.HEAD_CONTAINER, "(head)"],
        [str(source), "-", runtime, names.WORKER_CONTAINER, "(worker)"],
    ]
    assert summary == "2 containers in 1 runtime would change"


def _list_of(kind: str) -> str:
    runtime = yaml.safe_load(RUNTIME.read_text())
    return yaml.safe_dump({"apiVersion": "v1", "kind": kind, "items": [runtime]})


def test_migrate_check_of_a_cluster_tells_namespaces_and_cluster_runtimes_apart() -> None:
    runtime = yaml.safe_load(RUNTIME.read_text())
    items = []
    for namespace in ("team-a", "team-b", None):
        item = copy.deepcopy(runtime)
        if namespace is None:
            item["kind"] = "ClusterServingRuntime"
        else:
            item["metadata"]["namespace"] = namespace
        items.append(item)
    # What `kubectl get servingruntimes,clusterservingruntimes -A -o yaml` prints.
    stdin = yaml.safe_dump({"apiVersion": "v1", "kind": "List", "items": items})
    done = cli("migrate", "--check", "-", stdin=stdin)
    assert done.returncode == 1
    _, *rows, summary = done.stdout.splitlines()
    assert [row.split()[1:3] for row in rows[::2]] == [
        ["team-a", "ServingRuntime/huggingface-multinode-legacy"],
        ["team-b", "ServingRuntime/huggingface-multinode-legacy"],
        ["-", "ClusterServingRuntime/huggingface-multinode-legacy"],
    ]
    assert summary == "6 containers in 3 runtimes would change"
    assert cli("migrate", "--check", "-", stdin=CONFIGMAP).stdout == "no runtime would change\n"


@pytest.mark.parametrize("kind", ["List", "ServingRuntimeList"])
def test_migrate_check_looks_inside_lists(kind: str) -> None:
    done = cli("migrate", "--check", "-", stdin=_list_of(kind))
    assert done.returncode == 1, done.stdout
    assert "ServingRuntime/huggingface-multinode-legacy" in done.stdout


def test_migrate_in_place_rewrites_only_changed_files(tmp_path: Path) -> None:
    legacy, clean = tmp_path / "legacy.yaml", tmp_path / "clean.yaml"
    legacy.write_text(RUNTIME.read_text())
    clean.write_text("# untouched\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: c\n")
    before = clean.stat().st_mtime_ns
    done = cli("migrate", "-i", str(legacy), str(clean))
    assert (done.returncode, done.stdout) == (0, "")
    assert done.stderr.count(f"migrated {legacy}:") == 2
    assert done.stderr.splitlines()[-1] == "migrated 2 containers in 1 runtime"
    assert clean.stat().st_mtime_ns == before
    assert cli("migrate", "--check", str(legacy), str(clean)).returncode == 0
    refused = cli("migrate", str(legacy), str(clean))
    assert refused.returncode == 2
    assert "several files need -i/--in-place or --check" in refused.stderr


@pytest.mark.parametrize(
    ("stdin", "message"),
    [
        ("", "<stdin>: the input holds no Kubernetes object"),
        ("# only a comment\n", "<stdin>: the input holds no Kubernetes object"),
        ("just words\n", "<stdin>: expected a Kubernetes object, found a string"),
        (
            "kind: Pod\nmetadata:\n  name: a\nkind: Pod\n",
            "<stdin>:4:1: duplicate key 'kind' (a missing --- between two documents?)",
        ),
        ("a: [b\n", "<stdin>:2:1: invalid YAML"),
        ('{"kind": "Pod", "kind": "Pod"}', "<stdin>: duplicate key 'kind'"),
    ],
    ids=["empty", "comment-only", "scalar", "two-documents-without-marker", "unclosed", "json"],
)
@pytest.mark.parametrize("command", ["preview", "migrate"])
def test_unreadable_input_names_the_file_and_line(command: str, stdin: str, message: str) -> None:
    done = in_process(command, "-", stdin=stdin)
    assert done.returncode == 2, done.stdout
    [line] = done.stderr.strip().splitlines()
    assert line.startswith(f"multinode-webhook: error: {message}"), line
    assert "<unicode string>" not in line


def test_a_document_start_with_a_tag_is_read(tmp_path: Path) -> None:
    source = tmp_path / "tagged.yaml"
    source.write_text("--- !!map\n" + RUNTIME.read_text())
    done = cli("migrate", str(source))
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("--- !!map\n")
    assert done.stderr.count(f"migrated {source}:") == 2


def test_migrate_bad_input() -> None:
    done = cli("migrate", "-", stdin="a: [b\n")
    assert done.returncode == 2
    assert "invalid YAML" in done.stderr
    assert "Traceback" not in done.stderr


@pytest.mark.parametrize(
    "flags", [["-i", "--check"], ["--in-place", "--check=true"], ["--check", "--in-place=yes"]]
)
def test_migrate_refuses_in_place_with_check_and_leaves_the_file(
    tmp_path: Path, flags: list[str]
) -> None:
    source = tmp_path / "runtime.yaml"
    source.write_text(RUNTIME.read_text())
    line = one_line_error(cli("migrate", *flags, str(source)))
    assert line == (
        "multinode-webhook: error: -i/--in-place and --check do not go together: "
        "--check changes nothing"
    )
    assert source.read_text() == RUNTIME.read_text()


def test_help_explains_every_command() -> None:
    done = cli("--help")
    assert "preview" in done.stdout
    assert "migrate" in done.stdout
    assert "--namespace-label" in cli("preview", "--help").stdout


def test_an_unknown_mode_is_refused_naming_the_modes() -> None:
    done = cli("preview", "--mode", "everywhere", str(HEAD))
    assert done.returncode == 2
    assert "invalid choice: 'everywhere' (choose from 'opt-in', 'cluster-wide')" in done.stderr


def test_rules_narrow_preview_and_migrate(tmp_path: Path) -> None:
    [full] = preview_json(HEAD.read_text())
    [narrow] = preview_json(
        HEAD.read_text(), "--rules", "script-to-command", "--rules", "forward-args"
    )
    assert full["decision"] == narrow["decision"] == "patched"
    assert "${MODEL_DIR:-$MODEL_ID}" in full["object"]["spec"]["containers"][0]["command"][2]
    assert "${MODEL_DIR:-$MODEL_ID}" not in narrow["object"]["spec"]["containers"][0]["command"][2]
    migrated = cli("migrate", "--rules", "model-default", str(RUNTIME))
    assert migrated.returncode == 0
    assert "migrated" not in migrated.stderr  # model-default alone cannot reach a legacy script
    refused = cli("preview", "--rules", "everything", str(HEAD))
    assert refused.returncode == 2
    assert "invalid choice: 'everything'" in refused.stderr


@pytest.mark.parametrize(
    ("flags", "env"),
    [
        (["--max-script-bytes", "10"], {}),
        ([], {"MULTINODE_WEBHOOK_MAX_SCRIPT_BYTES": "10"}),
    ],
    ids=["flag", "environment"],
)
def test_the_script_limit_is_the_servers_setting(flags: list[str], env: dict[str, str]) -> None:
    done = cli("preview", "-", "-o", "json", *flags, stdin=HEAD.read_text(), env=env)
    [result] = json.loads(done.stdout)["results"]
    assert (result["decision"], result["reason"]) == (Action.UNCHANGED, Reason.SCRIPT_TOO_LARGE)
    migrated = cli("migrate", *flags, str(RUNTIME), env=env)
    assert (migrated.returncode, migrated.stderr) == (0, "no runtime changed\n")


def test_a_bad_script_limit_is_named_as_serve_names_it() -> None:
    line = one_line_error(cli("preview", "--max-script-bytes", "0", str(HEAD)))
    assert line == "multinode-webhook: error: --max-script-bytes: Input should be greater than 0"


EXAMPLE_FILES = ["legacy-head-pod.yaml", "legacy-worker-pod.yaml", "legacy-servingruntime.yaml"]


@pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl is not installed")
def test_preview_manifest_applies_with_kubectl(tmp_path: Path) -> None:
    stream = "---\n".join((EXAMPLES / name).read_text() for name in EXAMPLE_FILES)
    manifest = cli("preview", "-o", "manifest", "-", stdin=stream)
    assert manifest.returncode == 0, manifest.stderr
    objects = list(yaml.safe_load_all(manifest.stdout))
    assert objects == [r["object"] for r in preview_json(stream)]
    assert objects[0]["spec"]["containers"][0]["command"][3] == names.HEAD_CONTAINER
    with fakeapi.serving(tmp_path) as (_, kubeconfig):
        apply = ["apply", "--dry-run=client", "--validate=false", "-f", "-"]
        applied = subprocess.run(
            ["kubectl", "--kubeconfig", str(kubeconfig), *apply],
            input=manifest.stdout,
            capture_output=True,
            text=True,
            check=False,
            timeout=60,
        )
    assert applied.returncode == 0, applied.stderr
    assert applied.stdout.count("created (dry run)") == len(EXAMPLE_FILES)


def _opted_out() -> str:
    pod = example("legacy-head-pod.yaml")
    pod["metadata"]["labels"][names.INJECT_LABEL] = names.POD_OPT_OUT
    return yaml.safe_dump(pod)


CONFIGMAP = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: c\n"


@pytest.mark.parametrize(
    ("stdin", "warning", "unpatched"),
    [
        (HEAD.read_text(), 0, 0),
        ((TESTDATA / "pods" / "exact-in-command.yaml").read_text(), 0, 0),
        (CONFIGMAP, 0, 0),
        ((TESTDATA / "pods" / "no-launch-command.yaml").read_text(), 1, 1),
        ((TESTDATA / "pods" / "launch-in-function.yaml").read_text(), 1, 1),
        (_opted_out(), 0, 1),
        (HEAD.read_text() + "---\n" + _opted_out(), 0, 1),
    ],
    ids=["patched", "exact", "not-a-pod", "no-launch", "in-function", "opted-out", "mixed"],
)
def test_fail_on(stdin: str, warning: int, unpatched: int) -> None:
    assert in_process("preview", "-", stdin=stdin).returncode == 0
    assert in_process("preview", "--fail-on", "warning", "-", stdin=stdin).returncode == warning
    assert in_process("preview", "--fail-on", "unpatched", "-", stdin=stdin).returncode == unpatched
    both = in_process("preview", "--fail-on", "warning", "--fail-on", "unpatched", "-", stdin=stdin)
    assert both.returncode == max(warning, unpatched)


def test_preview_takes_the_server_container_and_namespace_settings() -> None:
    pod = example("legacy-head-pod.yaml")
    pod["spec"]["containers"][0]["name"] = "server"
    text = yaml.safe_dump(pod)
    assert preview_json(text)[0]["reason"] == Reason.NOT_A_TARGET
    assert preview_json(text, "--containers", "server")[0]["decision"] == Action.PATCHED
    own = preview_json(HEAD.read_text(), "--own-namespace", "models")[0]
    assert (own["decision"], own["reason"]) == (Action.SKIPPED, Reason.SYSTEM_NAMESPACE)


def test_preview_hints_at_migrate_for_a_runtime() -> None:
    done = cli("preview", "-", stdin=RUNTIME.read_text())
    assert done.returncode == 0
    [line] = done.stderr.strip().splitlines()
    assert line.startswith("multinode-webhook: hint: ")
    assert "`multinode-webhook migrate` rewrites ServingRuntimes" in line


def test_preview_renders_an_inference_service_with_its_runtime() -> None:
    isvc = str(EXAMPLES / "inferenceservice.yaml")
    done = cli("preview", isvc, "--runtime", str(RUNTIME))
    assert done.returncode == 0, done.stderr
    head, worker = json.loads(done.stdout)["results"]
    assert (head["decision"], worker["decision"]) == (Action.PATCHED, Action.PATCHED)
    assert head["launch"][0]["after"][-1] == '--override-generation-config={"temperature": 0.5}'
    assert one_line_error(cli("preview", isvc)).endswith(
        "names runtime 'huggingface-multinode-legacy', not among those given (none): "
        "pass it with --runtime FILE or in the same input"
    )


def test_preview_of_a_script_that_crashes_the_parser_exits_by_its_status() -> None:
    pod = example("legacy-head-pod.yaml")
    for serial in range(10):  # fresh processes: the parser's crash on such input is not certain
        pod["spec"]["containers"][0]["args"][0] = "${" + chr(0xC1113 + serial)
        done = cli("preview", "-", "-o", "yaml", "--fail-on", "warning", stdin=json.dumps(pod))
        assert done.returncode == 1, done.stderr
        [result] = yaml.safe_load(done.stdout)["results"]
        assert result["reason"] == Reason.UNSUPPORTED_CHARACTERS


def test_serve_names_the_port_it_cannot_listen_on_and_a_replaced_ca(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = str(taken.getsockname()[1])
        flags = ["--bind-address", "127.0.0.1", "--http-port", "0", "--preview-port", "0"]
        first = cli("serve", *flags, "--https-port", port, cwd=tmp_path)
        assert one_line_error(first) == (
            f"multinode-webhook: error: cannot listen on 127.0.0.1:{port} (--https-port): "
            "Address already in use"
        )
        assert "made a self-signed CA and certificate" in first.stdout
        again = cli("serve", *flags, "--https-port", port, "--san", "webhook.example", cwd=tmp_path)
        assert "the certificate does not name webhook.example" in again.stdout
        assert "the CA is new: update every caBundle" in again.stdout


@pytest.mark.parametrize(
    ("flags", "env", "blamed"),
    [
        ([], {"MULTINODE_WEBHOOK_HTTPS_PORT": "abc"}, "MULTINODE_WEBHOOK_HTTPS_PORT: "),
        (["--https-port", "70000"], {}, "--https-port: "),
    ],
)
def test_a_bad_setting_blames_where_it_came_from(
    flags: list[str], env: dict[str, str], blamed: str
) -> None:
    line = one_line_error(cli("serve", *flags, env=env))
    assert line.startswith(f"multinode-webhook: error: {blamed}"), line


def test_serve_help_speaks_of_every_listener() -> None:
    text = cli("serve", "--help").stdout
    assert "--preview-port" in text.split("options:")[0]
    assert "both listeners" not in text
    assert "default: None" not in text


@pytest.mark.parametrize("output", ["json", "diff", "patch"])
def test_fail_on_says_why_on_stderr_whatever_the_output(output: str) -> None:
    stdin = (TESTDATA / "pods" / "no-launch-command.yaml").read_text() + "---\n" + _opted_out()
    name = yaml.safe_load((TESTDATA / "pods" / "no-launch-command.yaml").read_text())["metadata"]
    done = cli(
        "preview", "-", "-o", output, "--fail-on", "warning", "--fail-on", "unpatched", stdin=stdin
    )
    assert done.returncode == 1
    head = example("legacy-head-pod.yaml")["metadata"]["name"]
    pod = name.get("name") or name.get("generateName")
    assert done.stderr.splitlines() == [
        f"multinode-webhook: --fail-on warning: Pod {pod}: container/kserve-container left "
        "unchanged, no-launch-command: no server launch command found in the script",
        f"multinode-webhook: --fail-on unpatched: Pod {pod}: unchanged (no-launch-command)",
        f"multinode-webhook: --fail-on unpatched: Pod {head}: skipped (pod-opted-out)",
    ]
