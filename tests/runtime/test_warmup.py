"""Warm start's inbox: bounded, and holding only the newest script of each object's
containers, however often the objects change or however many there are."""

from __future__ import annotations

import asyncio
from typing import Any

from webhook.core.model import Options
from webhook.core.parsed import ParsedScripts
from webhook.runtime.parsepool import ParsePool
from webhook.runtime.warmup import WarmUp
from webhook.transport.metrics import Metrics


def _runtime(name: str, revision: int) -> dict[str, Any]:
    """A legacy ServingRuntime whose head script is of this revision."""
    script = f"# revision {revision}\npython -m huggingfaceserver --model_dir=/mnt/models\n"
    container = {"name": "kserve-container", "command": ["bash", "-c"], "args": [script]}
    return {
        "apiVersion": "serving.kserve.io/v1alpha1",
        "kind": "ServingRuntime",
        "metadata": {"name": name, "namespace": "models", "uid": f"uid-{name}"},
        "spec": {"containers": [container]},
    }


def _warm() -> WarmUp:
    pool = ParsePool(workers=1, budget=1.0, queue_limit=8, tenant_limit=8, scripts=ParsedScripts())
    return WarmUp(cluster=None, pool=pool, options=Options(), seconds=1.0, parsed=lambda: None)


def test_an_object_changed_many_times_waits_with_its_newest_script_only() -> None:
    async def body() -> None:
        warm = _warm()
        for revision in range(500):
            warm._scripts_of(_runtime("llama", revision))
        assert len(warm._inbox) == 1
        assert "# revision 499\n" in (await warm._inbox.get()).script

    asyncio.run(body())


def test_the_inbox_is_bounded_and_counts_what_it_drops() -> None:
    async def body() -> None:
        warm = _warm()
        for serial in range(5000):
            warm._scripts_of(_runtime(f"d{serial}", 0))
        assert len(warm._inbox) == 1024
        assert warm.dropped == 5000 - 1024
        metrics = Metrics()
        metrics.warm_dropped(warm.dropped)
        metrics.warm_dropped(warm.dropped)  # caught up once, however often it is read
        total = metrics.registry.get_sample_value("multinode_webhook_warm_scripts_dropped_total")
        assert total == 5000 - 1024

    asyncio.run(body())
