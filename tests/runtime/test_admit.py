"""The admission pass: what it answers and what it says happened, for metrics to count."""

from __future__ import annotations

import asyncio
import time
import uuid

from tests.support.builders import example, review
from webhook.core.admission import parse_review
from webhook.core.model import Options
from webhook.core.parsed import ParsedScripts
from webhook.runtime.admit import QUEUE_FULL, Admission, Answer
from webhook.runtime.parsepool import ParsePool


def _answer(pool: ParsePool) -> Answer:
    pod = example("legacy-head-pod.yaml")
    container = pod["spec"]["containers"][0]
    container["args"][0] = f"# release {uuid.uuid4()}\n" + container["args"][0]
    request = parse_review(review(pod, namespace="models"))
    admission = Admission(options=Options(), pool=pool, deadline_seconds=5, deny=False)

    async def main() -> Answer:
        try:
            return await admission.answer(request, shadow=False, started=time.perf_counter())
        finally:
            pool.close()

    return asyncio.run(main())


def test_a_first_seen_script_that_finds_no_room_is_still_counted() -> None:
    pool = ParsePool(workers=1, budget=1, queue_limit=0, tenant_limit=4, scripts=ParsedScripts())
    answer = _answer(pool)
    assert (answer.decision, answer.shed, answer.first_seen) == (None, QUEUE_FULL, 1)
    assert answer.response["response"]["allowed"] is True
