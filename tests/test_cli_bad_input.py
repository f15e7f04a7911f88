"""No traceback, ever: every command turns any input into a result or one line on stderr with
exit 2 (a corpus of bad inputs fed to each), and Ctrl-C ends any of them quietly with exit 130,
its worker processes included."""

from __future__ import annotations

import logging
import subprocess
import sys
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Final

import pytest
import yaml

from tests.support.builders import EXAMPLES
from tests.support.cli import cli, in_process, one_line_error
from tests.support.interrupts import interrupted, started
from tests.support.pace import patience
from webhook.cli import common, main, parser
from webhook.cli import preview_command as cli_preview
from webhook.cli.common import switch_values
from webhook.offline import documents


def _alias_bomb() -> str:
    """Nine levels of nine aliases each: 9**9 values from a few hundred bytes."""
    lines = ['l0: &l0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    for level in range(1, 9):
        lines.append(f"l{level}: &l{level} [{', '.join([f'*l{level - 1}'] * 9)}]")
    return "\n".join(lines) + "\n"


def _string_bomb() -> str:
    """One 50 KB string aliased 20,000 times: 20,003 values, a megabyte of text, a gigabyte
    of output."""
    return f"a: &s {'x' * 50_000}\nb: [{', '.join(['*s'] * 20_000)}]\n"


# Name, content (bytes), what the one line says (None: a result may be the answer too, as
# `migrate` gives for a mapping that is no runtime: nothing to change).
CORPUS: Final[list[tuple[str, bytes, str | None]]] = [
    ("deep-yaml", b"[" * 2000, "nested too deeply"),
    ("deep-json", b'{"a":' * 100_000 + b"1" + b"}" * 100_000, "nested too deeply"),
    ("alias-bomb", _alias_bomb().encode(), "aliases expand to more than"),
    ("string-bomb", _string_bomb().encode(), "aliases expand to more than"),
    ("binary", bytes(range(256)) * 16, "cannot read"),
    ("empty", b"", None),
    # Values YAML loads that JSON has no type for: -o json (the default off a terminal) writes
    # them as text, as the YAML output writes them as YAML.
    (
        "date",
        b"apiVersion: v1\nkind: Pod\nmetadata:\n  name: p\n  annotations: {released: 2024-05-01}\n",
        None,
    ),
    ("set", b"apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec: !!set {a, b}\n", None),
    (
        "binary-value",
        b"apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec: {x: !!binary aGVsbG8=}\n",
        None,
    ),
    ("nul", b'kind: Pod\nx: "a\x00b"\n', "invalid YAML"),
    ("long-number", b"kind: Pod\nspec: {x: " + b"9" * 5000 + b"}\n", "more than 4300 digits"),
    ("long-number-json", b'{"kind": "Pod", "x": ' + b"9" * 5000 + b"}", "more than 4300 digits"),
    ("hex-number", b"kind: Pod\nspec: {x: 0x" + b"f" * 5000 + b"}\n", "more than 4300 digits"),
    # A key JSON cannot hold: -o json says so, the other outputs write it.
    (
        "date-key",
        b"apiVersion: v1\nkind: Pod\nmetadata:\n  name: p\n  annotations: {2024-05-01: x}\n",
        None,
    ),
    # Fields of the wrong type where a runtime's are read: no runtime to change.
    ("kind-list", b"kind: [ServingRuntime]\nspec: {containers: []}\n", None),
    (
        "args-not-a-list",
        b"apiVersion: serving.kserve.io/v1alpha1\nkind: ServingRuntime\nmetadata: {name: r}\n"
        b"spec: {containers: [{name: kserve-container, command: [bash, -c], args: 5}]}\n",
        None,
    ),
    (
        "containers-not-a-list",
        b"apiVersion: serving.kserve.io/v1alpha1\nkind: ServingRuntime\nmetadata: {name: r}\n"
        b"spec: {containers: 5, workerSpec: {containers: 5}}\n",
        None,
    ),
    (
        "baserefs-number",
        b"apiVersion: serving.kserve.io/v1alpha1\nkind: LLMInferenceService\n"
        b"metadata: {name: x}\nspec: {baseRefs: 5}\n",
        None,
    ),
    ("huge", b"a: " + b"x" * (4 << 20) + b"\n", None),
    ("scalar", b"just words\n", None),
    # YAML text with bytes that are not UTF-8 in it, a tag no loader knows, a document that is
    # a list, one with nothing in it: each got past the kubeconfig reader of `certs bootstrap`.
    (
        "not-utf8",
        b"apiVersion: v1\nkind: Pod\nmetadata:\n  name: p\nx: \xff\xfe\x80\n",
        "cannot read",
    ),
    (
        "custom-tag",
        b"apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec: !foo {a: 1}\n",
        "invalid YAML",
    ),
    ("list", b"- a\n- b\n", None),
    ("empty-document", b"---\n", None),
]
# Each command, given the corpus file's path: where it reads a file.
COMMANDS: Final[dict[str, Callable[[str], list[str]]]] = {
    "preview": lambda f: ["preview", f],
    "preview --runtime": lambda f: [
        "preview",
        str(EXAMPLES / "inferenceservice.yaml"),
        "--runtime",
        f,
    ],
    "preview --preset": lambda f: [
        "preview",
        str(EXAMPLES / "legacy-head-pod.yaml"),
        "--preset",
        f,
    ],
    "migrate": lambda f: ["migrate", f],
    "migrate --check": lambda f: ["migrate", "--check", f],
    "policy": lambda f: ["policy", f],
    "check": lambda f: ["check", "--kubeconfig", f],
    # Without --namespace, these read the kubeconfig's context for one first.
    "check --pod": lambda f: ["check", "--pod", "p", "--kubeconfig", f],
    "certs bootstrap": lambda f: ["certs", "bootstrap", "--kubeconfig", f],
    "check --audit": lambda f: ["check", "--audit", "--kubeconfig", f],
    "policy --from-cluster": lambda f: ["policy", "--from-cluster", "--kubeconfig", f],
    "serve": lambda f: ["serve", "--cert-dir", f],
}


@pytest.mark.parametrize("command", COMMANDS)
@pytest.mark.parametrize(("name", "content", "says"), CORPUS, ids=[c[0] for c in CORPUS])
def test_every_command_answers_bad_input_with_one_line(
    command: str, name: str, content: bytes, says: str | None, tmp_path: Path
) -> None:
    path = tmp_path / name
    path.write_bytes(content)
    args = COMMANDS[command](str(path))
    done = in_process(*args, cwd=tmp_path)
    _answers_with_one_line(done, command, says)
    if "--kubeconfig" in args:
        assert str(path) in one_line_error(done)  # the file to fix, named


@pytest.mark.parametrize("command", COMMANDS)
@pytest.mark.parametrize("name", ["deep-json", "date"])
def test_every_command_process_ends_on_bad_input_with_one_line(
    command: str, name: str, tmp_path: Path
) -> None:
    """The table above, as a process, for an input past the readers' depth and for one that
    gets as far as a parse worker: its exit prints nothing more (a worker's own output goes
    to the process's stderr, which the table in the test process does not see)."""
    _, content, says = next(row for row in CORPUS if row[0] == name)
    path = tmp_path / name
    path.write_bytes(content)
    _answers_with_one_line(cli(*COMMANDS[command](str(path)), cwd=tmp_path), command, says)


def _answers_with_one_line(
    done: subprocess.CompletedProcess[str], command: str, says: str | None
) -> None:
    assert "Traceback" not in done.stderr
    assert "a bug" not in done.stderr  # the catch-all's words: an input no reader foresaw
    if says is None and done.returncode in (0, 1):
        return
    line = one_line_error(done)
    assert line.startswith("multinode-webhook: error: "), line
    # The cluster commands read a kubeconfig, serve a folder: they say so in their own words.
    assert (
        says is None or says in line or command.startswith(("check", "policy --", "serve", "certs"))
    )


@pytest.mark.parametrize("command", ["preview", "migrate", "policy"])
def test_stdin_that_is_not_utf8_is_refused_as_a_file_is(command: str, tmp_path: Path) -> None:
    content = "kind: Pod\n".encode("utf-16")
    (tmp_path / "utf16.yaml").write_bytes(content)
    lines = [
        subprocess.run(
            [sys.executable, "-m", "webhook", command, given],
            input=content,
            capture_output=True,
            timeout=patience(60),
            check=False,
        ).stderr.decode()
        for given in ("-", str(tmp_path / "utf16.yaml"))
    ]
    assert lines == [
        f"multinode-webhook: error: cannot read {name}: 'utf-8' codec can't decode byte 0xff in "
        "position 0: invalid start byte\n"
        for name in ("<stdin>", tmp_path / "utf16.yaml")
    ]


def test_a_file_that_is_not_there_is_named() -> None:
    for args in (
        ["preview", "/nope"],
        ["check", "--kubeconfig", "/nope"],
        ["check", "--pod", "p", "--kubeconfig", "/nope"],
        ["certs", "bootstrap", "--kubeconfig", "/nope"],
    ):
        assert "/nope" in one_line_error(cli(*args))


def test_aliases_expand_into_copies_of_their_own_under_a_bound() -> None:
    text = "a: &x [1, 2]\nb: *x\n"
    [loaded] = documents.load(text)
    assert loaded == {"a": [1, 2], "b": [1, 2]}
    assert loaded["a"] is not loaded["b"]  # an edit of one is not an edit of the other
    with pytest.raises(documents.InputError, match="aliases expand to more than"):
        documents.load(_alias_bomb())
    with pytest.raises(documents.InputError, match="aliases expand to more than 10000000 char"):
        documents.load(_string_bomb())
    for load in (documents.load, lambda text: documents.load_positioned(text, name="x")):
        with pytest.raises(documents.InputError, match="characters"):
            load(_string_bomb())
    # A long string without aliases, or aliased a few times, is the text's own size.
    assert documents.load(f"a: &s {'x' * 4_000_000}\nb: *s\nc: *s\n")


SHARED: Final = """\
apiVersion: v1
kind: List
items:
- apiVersion: serving.kserve.io/v1alpha1
  kind: ServingRuntime
  metadata: {name: a}
  spec: &spec
    containers:
    - name: kserve-container
      image: vllm
      command: ["bash", "-c"]
      args:
      - |
        ray start --head
        python -m vllm.entrypoints.openai.api_server --model x "$0" "$@"
- apiVersion: serving.kserve.io/v1alpha1
  kind: ServingRuntime
  metadata: {name: b}
  spec: *spec
"""


def test_migrate_repairs_two_runtimes_that_share_an_anchor(tmp_path: Path) -> None:
    source = tmp_path / "shared.yaml"
    source.write_text(SHARED)
    checked = cli("migrate", "--check", str(source))
    assert checked.returncode == 1, checked.stderr
    assert "ServingRuntime/a" in checked.stdout
    assert "ServingRuntime/b" in checked.stdout
    done = cli("migrate", str(source))
    assert done.returncode == 0, done.stderr
    assert "&spec" in done.stdout  # edited in place, once
    [listed] = yaml.safe_load_all(done.stdout)
    first, second = (item["spec"]["containers"][0] for item in listed["items"])
    assert first == second
    assert first["command"][:2] == ["bash", "-c"]
    assert "$0" not in first["command"][2]


# Ctrl-C at the moments start-up races it, workers being started: tests/test_interrupts.py.
def test_ctrl_c_ends_a_preview_waiting_on_stdin_quietly() -> None:
    with started("preview", stdin=subprocess.PIPE) as preview:
        time.sleep(1)
        code, err = interrupted(preview)
    assert (code, err) == (130, "")


# `python -m webhook` and what the console script runs (`from webhook.__main__ import run`).
_ENTRIES: Final = {
    "python -m webhook": ["-m", "webhook"],
    "console script": ["-c", "import sys; from webhook.__main__ import run; sys.exit(run())"],
}


@pytest.mark.parametrize("entry", _ENTRIES)
def test_ctrl_c_while_the_command_line_imports_ends_it_quietly(entry: str) -> None:
    # -X importtime reports each module as its import ends: the signal goes once the import of
    # the command line is under way (the core imported), long before the web framework is.
    process = subprocess.Popen(
        [sys.executable, "-X", "importtime", *_ENTRIES[entry], "preview"],
        stdin=subprocess.PIPE,  # left open: were the import done, preview would wait on it
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    assert process.stderr is not None
    seen = ""
    for line in process.stderr:
        seen += line
        if line.rstrip().endswith("webhook.core.names"):
            break
    assert seen.rstrip().endswith("webhook.core.names"), seen
    code, err = interrupted(process)
    assert (code, "Traceback" in err, "KeyboardInterrupt" in err) == (130, False, False), err


@pytest.mark.parametrize(
    ("given", "value"),
    [
        ([], None),
        (["--warm-up"], True),
        (["--warm-up=true"], True),
        (["--warm-up=False"], False),
        (["--no-warm-up"], False),
        (["--no-warm-up", "--warm-up"], True),
    ],
)
def test_boolean_flags_take_every_form_a_person_tries(given: list[str], value: bool | None) -> None:
    root = parser()
    assert root.parse_args(switch_values(root, ["serve", *given])).warm_up is value


@pytest.mark.parametrize(
    ("given", "value"),
    [
        (["-i"], True),
        (["-i=true"], True),
        (["-i=false"], False),
        (["--in-place=no"], False),
        (["--in-p=yes"], True),  # an abbreviation argparse takes, with a value too
        (["--in-p"], True),
        (["--no-in-p=true"], False),
        (["--no-in-place=false"], True),
    ],
)
def test_short_and_abbreviated_switches_take_a_value(given: list[str], value: bool) -> None:
    root = parser()
    assert root.parse_args(switch_values(root, ["migrate", *given, "f.yaml"])).in_place is value


def test_migrate_i_false_leaves_the_file_as_it_is(tmp_path: Path) -> None:
    source = tmp_path / "runtime.yaml"
    source.write_text((EXAMPLES / "legacy-servingruntime.yaml").read_text())
    before = source.read_text()
    done = cli("migrate", "-i=false", str(source))
    assert done.returncode == 0, done.stderr
    assert source.read_text() == before
    assert done.stdout not in ("", before)  # the repaired runtime went to stdout


def test_a_boolean_flag_refuses_another_value() -> None:
    assert "--events: expected true or false, got 'maybe'" in cli("serve", "--events=maybe").stderr


def test_a_switch_takes_no_separate_value(tmp_path: Path) -> None:
    # -i is a switch: the file after it stays the file.
    source = tmp_path / "runtime.yaml"
    source.write_text((EXAMPLES / "legacy-servingruntime.yaml").read_text())
    done = cli("migrate", "-i", str(source))
    assert done.returncode == 0, done.stderr
    assert "migrated 2 containers in 1 runtime" in done.stderr


def test_library_warnings_stay_off_the_terminal(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def warns(_args: object) -> int:
        # As urllib3 warns on each request to a server whose certificate is not verified.
        warnings.warn("Unverified HTTPS request", UserWarning, stacklevel=1)
        return 0

    monkeypatch.setattr(cli_preview, "run", warns)
    with warnings.catch_warnings():
        warnings.simplefilter("default")
        assert main(["preview"]) == 0
    assert "Unverified" not in capsys.readouterr().err


def test_json_output_writes_yaml_only_values_as_text(tmp_path: Path) -> None:
    source = tmp_path / "pod.yaml"
    source.write_text(
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: p\n  annotations: {released: 2024-05-01}\n"
        "spec: {x: !!binary aGVsbG8=, y: !!set {b, a}}\n"
    )
    done = cli("preview", "-o", "json", str(source))
    assert done.returncode == 0, done.stderr
    assert '"2024-05-01"' in done.stdout


@pytest.mark.parametrize(
    "command",
    [
        ["generate", "--service", "w", "--namespace", "n", "--out", "tls"],
        ["bootstrap", "--kubeconfig", "/nope"],
    ],
)
def test_certs_days_end_by_the_last_year_x509_writes(command: list[str], tmp_path: Path) -> None:
    line = one_line_error(cli("certs", *command, "--days", "3000000", cwd=tmp_path))
    assert "--days must be at most" in line, line


def _kubeconfig(tmp_path: Path, user: str) -> str:
    path = tmp_path / "kubeconfig"
    path.write_text(
        "apiVersion: v1\nkind: Config\n"
        'clusters: [{name: c, cluster: {server: "https://127.0.0.1:1"}}]\n'
        "contexts: [{name: x, context: {cluster: c, user: u}}]\ncurrent-context: x\n"
        f"users: [{{name: u, user: {user}}}]\n"
    )
    return str(path)


def test_library_logging_stays_off_the_terminal(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def logs(_args: object) -> int:
        # As the Kubernetes client logs a failed credential plugin on the root logger (which
        # configures it), then urllib3 each retry.
        logging.error("exec: process returned 1")
        logging.getLogger("urllib3.connectionpool").warning("Retrying")
        return 0

    monkeypatch.setattr(logging.getLogger(), "handlers", [])
    monkeypatch.setattr(cli_preview, "run", logs)
    assert main(["preview"]) == 0
    assert capsys.readouterr().err == ""


def test_a_failing_credential_plugin_is_a_credentials_error(tmp_path: Path) -> None:
    plugin = (
        "{exec: {apiVersion: client.authentication.k8s.io/v1beta1, command: sh, "
        'args: ["-c", "echo please log in >&2; exit 1"], interactiveMode: Never}}'
    )
    line = one_line_error(cli("check", "--kubeconfig", _kubeconfig(tmp_path, plugin)))
    assert "no cluster credentials" in line, line
    assert "credential plugin failed" in line, line


@pytest.mark.parametrize("command", ["preview", "migrate", "policy"])
def test_an_endless_input_ends_in_one_line(command: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(common, "INPUT_LIMIT", 1 << 20)
    line = one_line_error(in_process(command, "/dev/zero"))
    assert (
        line == "multinode-webhook: error: /dev/zero: larger than 1 MiB, more than a command reads"
    )
