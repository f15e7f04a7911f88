"""Runtime migration: the same rewrite on ServingRuntimes, ClusterServingRuntimes, Templates."""

from __future__ import annotations

import copy
import difflib
from pathlib import Path

import pytest
import yaml

from tests.support import kserve
from tests.support.builders import EXAMPLES, admit, example
from tests.support.kserve import build_pod
from webhook.core import names
from webhook.core.names import Reason
from webhook.offline import documents
from webhook.offline.migrate import migrate_document, migrate_text


def test_runtime_is_fixed_and_builds_pods_that_need_no_webhook() -> None:
    runtime = example("legacy-servingruntime.yaml")
    original = copy.deepcopy(runtime)
    migration = migrate_document(runtime)
    assert runtime == original
    assert len(migration.changes) == 2
    fixed = migration.document
    for role in ("head", "worker"):
        pod = build_pod(fixed, role=role, user_args=["--x"])
        assert admit(pod).reason == Reason.ALREADY_MIGRATED
    assert migrate_document(fixed).document is None


def test_template_objects_are_walked() -> None:
    runtime = example("legacy-servingruntime.yaml")
    template = {
        "apiVersion": "template.openshift.io/v1",
        "kind": "Template",
        "objects": [{"kind": "Secret"}, runtime],
    }
    migration = migrate_document(template)
    assert migration.document["objects"][0] == {"kind": "Secret"}
    head = migration.document["objects"][1]["spec"]["containers"][0]
    assert head["command"][3] == names.HEAD_CONTAINER
    assert "args" not in head


def test_other_kinds_are_untouched() -> None:
    pod = example("legacy-head-pod.yaml")
    assert migrate_document(pod).document is None
    assert migrate_document("text").document is None


def _target_lines(root: yaml.Node) -> set[int]:
    """The lines (0-based) of every target container's `command` and `args`."""
    lines: set[int] = set()
    stack = [root]
    while stack:
        node = stack.pop()
        if isinstance(node, yaml.MappingNode):
            keys = {getattr(k, "value", None): (k, v) for k, v in node.value}
            named = keys.get("name")
            if named and getattr(named[1], "value", None) in names.DEFAULT_TARGET_CONTAINERS:
                for key in ("command", "args"):
                    if key in keys:
                        k, v = keys[key]
                        lines.update(range(k.start_mark.line, v.end_mark.line + 1))
            stack.extend(v for _, v in node.value)
        elif isinstance(node, yaml.SequenceNode):
            stack.extend(node.value)
    return lines


def _corpus_text(path: Path) -> str:
    text = path.read_text()
    return kserve.render_helm(text) if path.name.endswith(".tmpl") else text


CORPUS_FILES = sorted(kserve.CORPUS.glob("*.yaml*")) if kserve.CORPUS.is_dir() else []
needs_corpus = pytest.mark.skipif(not CORPUS_FILES, reason="shared runtime corpus not found")


def changed_lines(path: Path) -> int:
    """Migrate a corpus file as text and check the result; the number of lines it changed."""
    before = _corpus_text(path)
    after, changes = migrate_text(before, name=path.name)
    old = documents.load_positioned(before, name=path.name)
    new = documents.load_positioned(after, name=path.name)
    # Object for object what the value-level migration makes of each document.
    assert [d for _, d in new] == [migrate_document(d).document or d for _, d in old]
    assert bool(changes) is (not path.name.startswith(kserve.EXACT_PREFIXES))
    lines_before, lines_after = before.splitlines(), after.splitlines()
    allowed_before = set().union(*(_target_lines(root) for root, _ in old))
    allowed_after = set().union(*(_target_lines(root) for root, _ in new))
    changed = 0
    matcher = difflib.SequenceMatcher(None, lines_before, lines_after, autojunk=False)
    for tag, i1, i2, j1, j2 in matcher.get_opcodes():
        if tag != "equal":
            assert set(range(i1, i2)) <= allowed_before, lines_before[i1:i2]
            assert set(range(j1, j2)) <= allowed_after, lines_after[j1:j2]
            changed += max(i2 - i1, j2 - j1)
    comments = [line for line in lines_before if line.lstrip().startswith("#")]
    assert all(comment in lines_after for comment in comments)
    return changed


@needs_corpus
@pytest.mark.parametrize("path", CORPUS_FILES, ids=lambda p: p.name)
def test_migrated_text_changes_only_command_and_args_lines(path: Path) -> None:
    changed_lines(path)


@needs_corpus
def test_changed_lines_per_file() -> None:
    counts = {path.name: changed_lines(path) for path in CORPUS_FILES}
    # The ODH v2.21 template was re-dumped whole before: a 468-line diff for 279 lines.
    assert counts["odh-model-controller-odh-v2.21-vllm-multinode-template.yaml"] <= 40


@pytest.mark.parametrize(
    ("chomp", "after", "tail"),
    [("|-", "", "|-"), ("|", "", "|"), ("|+", "\n", "|+")],
    ids=["strip", "clip", "keep"],
)
def test_a_literal_script_keeps_its_chomping(chomp: str, after: str, tail: str) -> None:
    text = (
        "kind: ServingRuntime\nmetadata:\n  name: rt\nspec:\n  containers:\n"
        "    - name: kserve-container\n      command: [bash, -c]\n      args:\n"
        f"        - {chomp}\n          ray start --head\n"
        f"          python3 -m huggingfaceserver --model_dir=/mnt/models\n{after}"
    )
    migrated, _ = migrate_text(text, name="rt.yaml")
    block = migrated.split("command:\n", 1)[1]
    assert block == (
        "        - bash\n        - -c\n"
        f"        - {tail}\n          ray start --head\n"
        '          python3 -m huggingfaceserver --model_dir=/mnt/models "$@"\n'
        # With keep, the blank line that ended the old args block stays where it stood.
        f"{after}        - kserve-container\n{after}"
    )
    script = yaml.safe_load(text)["spec"]["containers"][0]["args"][0]
    new = yaml.safe_load(migrated)["spec"]["containers"][0]["command"][2]
    assert new == script.replace("/mnt/models", '/mnt/models "$@"', 1)


@pytest.mark.parametrize(
    ("name", "where"),
    [
        ("legacy-servingruntime.yaml", ["kserve-container (head)", "worker-container (worker)"]),
        # A preset's leader and worker both call their container `main`.
        ("llminferenceservice-preset.yaml", ["main (template)", "main (worker)"]),
        ("llminferenceservice.yaml", ["main (template)"]),
    ],
)
def test_each_change_names_its_container_with_its_role(name: str, where: list[str]) -> None:
    _, changes = migrate_text((EXAMPLES / name).read_text(), name=name)
    assert [change.where for change in changes] == where
    # As `migrate` lists each change on stderr.
    assert all(f" {change.where}: " in str(change) for change in changes)
