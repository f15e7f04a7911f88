"""Runtime migration: the same rewrite on ServingRuntimes, ClusterServingRuntimes, Templates."""

from __future__ import annotations

import copy

from tests.support.builders import example
from tests.support.kserve import build_pod
from webhook.core import names
from webhook.core.mutate import mutate
from webhook.core.names import Reason
from webhook.offline.migrate import migrate_document


def test_runtime_is_fixed_and_builds_pods_that_need_no_webhook() -> None:
    runtime = example("legacy-servingruntime.yaml")
    original = copy.deepcopy(runtime)
    migration = migrate_document(runtime)
    assert runtime == original
    assert len(migration.changes) == 2
    fixed = migration.document
    for role in ("head", "worker"):
        pod = build_pod(fixed, role=role, user_args=["--x"])
        assert mutate(pod).reason == Reason.ALREADY_MIGRATED
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
