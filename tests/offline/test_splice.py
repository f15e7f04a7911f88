"""Edits of YAML text in place: what they insert is written as the text around it is."""

from __future__ import annotations

import pytest
import yaml

from webhook.offline import documents
from webhook.offline.migrate import migrate_document, migrate_text

HEAD = (
    "apiVersion: serving.kserve.io/v1alpha1\nkind: LLMInferenceService\nmetadata:\n"
    "  name: granite  # kept\nspec:\n  parallelism: {data: 2}\n  template:\n    containers:\n"
    "    - name: main\n"
)
WORKER = "  worker:\n    containers:\n    - name: main\n"
# Each way migrate edits: a key in the place of args, an item appended, a value extended, a
# command and a literal script written anew, and a document written out again whole.
TEXTS = {
    "env in the place of args": HEAD + "      args:\n      - --a=1\n" + WORKER,
    "env appended": HEAD
    + "      env:\n      - name: A\n        value: b\n      args: [--a]\n"
    + WORKER,
    "value extended": HEAD
    + "      env:\n      - name: VLLM_ADDITIONAL_ARGS\n        value: --x\n      args: [--a]\n"
    + WORKER,
    "runtime script": (
        "kind: ServingRuntime\nmetadata:\n  name: rt\nspec:\n  containers:\n"
        "    - name: kserve-container\n      command: [bash, -c]\n      args:\n"
        "        - |\n          ray start --head\n"
        "          python3 -m huggingfaceserver --model_dir=/mnt/models\n"
    ),
    "document written whole": (
        "kind: ConfigMap  # kept\napiVersion: v1\nmetadata: {name: c}\n---\n"
        + HEAD
        + "      env: [{name: A, value: b}]\n      args: [--a]\n"
        + WORKER
    ),
}


@pytest.mark.parametrize("line_break", ["\n", "\r\n"], ids=["lf", "crlf"])
@pytest.mark.parametrize("text", TEXTS.values(), ids=TEXTS.keys())
def test_migrate_writes_the_lines_it_changes_with_the_texts_line_break(
    text: str, line_break: str
) -> None:
    given = text.replace("\n", line_break)
    migrated, changes = migrate_text(given, name="x.yaml")
    assert changes
    lines = migrated.splitlines(keepends=True)
    assert all(line.endswith(line_break) for line in lines), [
        line for line in lines if not line.endswith(line_break)
    ]
    expected = [migrate_document(d).document or d for d in yaml.safe_load_all(given)]
    assert [d for _, d in documents.load_positioned(migrated, name="x.yaml")] == expected
    # Line for line what the same text with LF line breaks becomes.
    assert migrated.replace(line_break, "\n") == migrate_text(text, name="x.yaml")[0]
