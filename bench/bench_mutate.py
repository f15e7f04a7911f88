"""Time `mutate()` on a realistic legacy head pod (~10 KB with managedFields) and a skipped pod.

Prints microseconds per call, the median of many timed batches. Run: python bench/bench_mutate.py
The first two figures are what every pod of a known runtime costs (its decision is cached);
the last is the first pod of a new runtime, with the decision and script caches emptied.
"""

from __future__ import annotations

import copy
import json
import statistics
import timeit
from pathlib import Path
from typing import Any

import yaml

from webhook.core.model import Options
from webhook.core.mutate import Decisions, mutate
from webhook.core.parsed import ParsedScripts
from webhook.core.view import pod_view

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "legacy-head-pod.yaml"


def realistic_head_pod() -> dict[str, Any]:
    """The example head pod dressed as the API server sends it: managedFields, owner, status."""
    pod: dict[str, Any] = yaml.safe_load(EXAMPLE.read_text())
    container = pod["spec"]["containers"][0]
    container["env"] += [{"name": f"EXTRA_{i}", "value": "x" * 40} for i in range(50)]
    container["livenessProbe"] = {"exec": {"command": ["bash", "-c", "curl -sf localhost:8080"]}}
    fields: dict[str, Any] = {
        f"f:{key}": {} for key in ("command", "args", "env", "image", "resources")
    }
    pod["metadata"].update(
        uid="3f1c7a5e-0d1b-4f7e-9a55-1d2b8f7e6c01",
        ownerReferences=[
            {
                "apiVersion": "apps/v1",
                "kind": "ReplicaSet",
                "name": "llama-rs",
                "uid": "9b0c",
                "controller": True,
                "blockOwnerDeletion": True,
            }
        ],
        managedFields=[
            {
                "manager": f"manager-{i}",
                "operation": "Update",
                "apiVersion": "v1",
                "time": "2026-11-24T10:00:00Z",
                "fieldsType": "FieldsV1",
                "fieldsV1": {"f:spec": {"f:containers": {'k:{"name":"kserve-container"}': fields}}},
            }
            for i in range(16)
        ],
    )
    pod["spec"]["tolerations"] = [{"key": f"t{i}", "operator": "Exists"} for i in range(8)]
    return pod


def per_call_us(pod: dict[str, Any], *, batch: int, batches: int, cold: bool = False) -> float:
    view = pod_view(pod)
    # The server's stores: kept across calls, or new for each call (a replica's first pod).
    decisions, scripts = Decisions(Options()), ParsedScripts()

    def call() -> None:
        nonlocal decisions, scripts
        if cold:
            decisions, scripts = Decisions(Options()), ParsedScripts()
        mutate(view, rewrites=scripts.rewrite, decisions=decisions)

    timer = timeit.Timer(call)
    return statistics.median(t / batch * 1e6 for t in timer.repeat(repeat=batches, number=batch))


def main() -> None:
    head = realistic_head_pod()
    skipped = copy.deepcopy(head)
    del skipped["metadata"]["labels"]["serving.kserve.io/inferenceservice"]
    assert mutate(pod_view(head), rewrites=ParsedScripts().rewrite).action == "patched"
    assert mutate(pod_view(skipped), rewrites=ParsedScripts().rewrite).action == "skipped"
    size = len(json.dumps(head))
    print(f"head pod: {size / 1024:.1f} KiB JSON")
    patched_us = per_call_us(head, batch=500, batches=30)
    skipped_us = per_call_us(skipped, batch=5000, batches=30)
    print(f"mutate patched: {patched_us:8.1f} us/call (target <= 200)")
    cold_us = per_call_us(head, batch=20, batches=15, cold=True)
    print(f"mutate skipped: {skipped_us:8.1f} us/call (target <= 20)")
    print(f"mutate patched, cold caches: {cold_us:8.1f} us/call")


if __name__ == "__main__":
    main()
