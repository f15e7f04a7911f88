"""The parse pool: a budget for every parse, tenants served in turn, a bounded queue."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import pytest

from tests.support.crash import SLOW, crashing_script, rewrite_or_crash, rewrite_slowly, slow_script
from webhook.core.names import Reason, Rule
from webhook.core.parsed import Needed, ParsedScripts
from webhook.core.script import ScriptRewrite, rewrite_script
from webhook.runtime.parsepool import Late, ParsePool, Shed

RULES = frozenset(Rule)
LONG = 60.0  # a deadline no test reaches


def _missing(script: str) -> Needed:
    return Needed(script, RULES, "kserve-container")


def _pool(
    rewrite: Callable[[str, frozenset[Rule]], ScriptRewrite] = rewrite_slowly, **limits: float
) -> ParsePool:
    settings = {"workers": 1, "budget": 5.0, "queue_limit": 64, "tenant_limit": 8, **limits}
    return ParsePool(
        workers=int(settings["workers"]),
        budget=settings["budget"],
        queue_limit=int(settings["queue_limit"]),
        tenant_limit=int(settings["tenant_limit"]),
        scripts=ParsedScripts(),
        rewrite=rewrite,
        timeout_kept=settings.get("timeout_kept", LONG),
    )


def _queued(
    pool: ParsePool, script: str, *, tenant: str, deadline: float
) -> asyncio.Task[ScriptRewrite]:
    """The script's parse, asked for in a task of its own."""
    return asyncio.create_task(pool.parse(_missing(script), tenant=tenant, deadline=deadline))


async def _taken(pool: ParsePool, *, left: int = 0) -> None:
    """Until the workers have taken every script queued so far but `left`."""
    await asyncio.sleep(0)  # the tasks just made queue their scripts
    while pool.queued > left:
        await asyncio.sleep(0.01)


def _run(pool: ParsePool, body: Callable[[ParsePool, float], Awaitable[None]]) -> None:
    """Run `body(pool, now)` on a fresh loop, the pool's workers started and closed with it."""
    pool.start()

    async def main() -> None:
        try:
            await body(pool, asyncio.get_running_loop().time())
        finally:
            pool.close()

    asyncio.run(main())


def test_a_parse_over_its_budget_is_stopped_and_remembered() -> None:
    slow = slow_script(30)

    async def body(pool: ParsePool, now: float) -> None:
        await pool.parse(_missing(slow), tenant="a", deadline=now + LONG)
        rewritten = pool.scripts.get(slow, RULES)
        assert rewritten is not None
        assert rewritten.reason is Reason.PARSE_TIMEOUT
        assert pool.counts.timeouts == 1
        pool.scripts.clear()  # forgotten by the store, not by the pool: no worker is asked again
        again = await pool.parse(_missing(slow), tenant="a", deadline=now + LONG)
        assert again.reason is Reason.PARSE_TIMEOUT
        assert pool.counts.timeouts == 1
        # The killed worker was replaced: the next script is parsed.
        good = slow_script(0, serial=1)
        await pool.parse(_missing(good), tenant="a", deadline=now + LONG)
        parsed = pool.scripts.get(good, RULES)
        assert parsed is not None
        assert parsed.rules == (Rule.FORWARD_ARGS,)

    _run(_pool(budget=0.5), body)


def test_a_crash_is_parser_failed_and_remembered() -> None:
    pool = _pool(rewrite_or_crash, queue_limit=4, tenant_limit=4)
    script = crashing_script(20)

    async def body(pool: ParsePool, now: float) -> None:
        for _ in range(2):
            await pool.parse(_missing(script), tenant="a", deadline=now + LONG)
            rewritten = pool.scripts.get(script, RULES)
            assert rewritten is not None
            assert rewritten.reason is Reason.PARSER_FAILED
        assert pool.counts.crashes == 1

    _run(pool, body)


def test_tenants_take_turns() -> None:
    """One tenant's eight slow scripts, queued first, hold another's script for at most the
    parse already running: the other's is the next one parsed."""
    done: list[str] = []

    async def parse(pool: ParsePool, tenant: str, script: str, now: float) -> None:
        await pool.parse(_missing(script), tenant=tenant, deadline=now + LONG)
        done.append(tenant)

    async def body(pool: ParsePool, now: float) -> None:
        flood = [
            asyncio.create_task(parse(pool, "flood", slow_script(0.2, serial=i), now))
            for i in range(8)
        ]
        await asyncio.sleep(0)  # every flood script is queued before the other tenant's
        await parse(pool, "legit", slow_script(0, serial=99), now)
        await asyncio.gather(*flood)

    _run(_pool(), body)
    assert done.index("legit") <= 1, done
    assert len(done) == 9


def test_a_full_queue_sheds_at_once_and_only_the_tenant_over_its_share() -> None:
    async def body(pool: ParsePool, now: float) -> None:
        def queue(seconds: float, serial: int, tenant: str) -> asyncio.Task[ScriptRewrite]:
            return _queued(pool, slow_script(seconds, serial), tenant=tenant, deadline=now + LONG)

        busy = queue(0.5, 0, "flood")
        await _taken(pool)
        queued = [queue(0, serial, "flood") for serial in (1, 2)]  # its share of the queue
        await asyncio.sleep(0)
        with pytest.raises(Shed, match="namespace's queue"):
            await queue(0, 3, "flood")
        await queue(0, 4, "legit")
        await asyncio.gather(busy, *queued)
        assert pool.counts.shed == 1

    _run(_pool(tenant_limit=2), body)


def test_the_whole_queue_is_bounded() -> None:
    async def body(pool: ParsePool, now: float) -> None:
        def queue(seconds: float, serial: int, tenant: str) -> asyncio.Task[ScriptRewrite]:
            return _queued(pool, slow_script(seconds, serial), tenant=tenant, deadline=now + LONG)

        busy = queue(0.5, 10, "t0")
        await _taken(pool)
        queued = [queue(0, 11, "t1"), queue(0, 12, "t2")]
        await asyncio.sleep(0)
        with pytest.raises(Shed, match="the queue"):
            await queue(0, 13, "other")
        # Namespaces shed leave no queue behind: none holds memory for them.
        for serial in range(100):
            with pytest.raises(Shed, match="the queue"):
                await queue(0, 100 + serial, f"shed-{serial}")
        assert pool.namespaces_waiting == 2
        await asyncio.gather(busy, *queued)
        assert pool.namespaces_waiting == 0

    _run(_pool(queue_limit=2), body)


def test_a_review_stops_waiting_at_its_deadline() -> None:
    async def body(pool: ParsePool, now: float) -> None:
        busy = asyncio.create_task(
            pool.parse(_missing(slow_script(1.0, 70)), tenant="a", deadline=now + LONG)
        )
        await _taken(pool)
        loop = asyncio.get_running_loop()
        with pytest.raises(Late):
            await pool.parse(_missing(slow_script(0, 71)), tenant="b", deadline=loop.time() + 0.1)
        assert not busy.done()  # it did not wait for the busy worker's parse
        assert pool.counts.late == 1
        await busy

    _run(_pool(), body)


def test_reviews_of_one_script_share_its_parse() -> None:
    script = slow_script(0.2, 80)

    async def body(pool: ParsePool, now: float) -> None:
        await asyncio.gather(
            *(pool.parse(_missing(script), tenant=f"t{i}", deadline=now + LONG) for i in range(5))
        )
        assert pool.counts.parsed == 1

    _run(_pool(workers=2), body)


def test_a_failure_is_told_once_however_many_reviews_waited_for_it() -> None:
    told: list[tuple[str, Reason, str]] = []
    pool = ParsePool(
        workers=2,
        budget=5,
        queue_limit=8,
        tenant_limit=8,
        scripts=ParsedScripts(),
        rewrite=rewrite_or_crash,
        on_failure=lambda missing, reason, tenant: told.append((missing.container, reason, tenant)),
    )
    script = crashing_script(90)

    async def body(pool: ParsePool, now: float) -> None:
        await asyncio.gather(
            *(pool.parse(_missing(script), tenant="a", deadline=now + LONG) for _ in range(4))
        )

    _run(pool, body)
    assert told == [("kserve-container", Reason.PARSER_FAILED, "a")]


def _fail_on_marker(script: str, rules: frozenset[Rule]) -> ScriptRewrite:
    if "# fail" in script:
        raise ValueError("a parse that fails on purpose")
    return rewrite_script(script, rules)


def _slow_then_fail(script: str, rules: frozenset[Rule]) -> ScriptRewrite:
    return _fail_on_marker(script, rules) if rewrite_slowly(script, rules) else _never()


def _never() -> ScriptRewrite:
    raise AssertionError("a parse always returns")


def test_an_error_in_a_parse_reaches_its_reviews_and_the_worker_goes_on() -> None:
    pool = _pool(_fail_on_marker, queue_limit=4, tenant_limit=4)

    async def body(pool: ParsePool, now: float) -> None:
        with pytest.raises(ValueError, match="on purpose"):
            await pool.parse(_missing("# fail\nvllm serve\n"), tenant="a", deadline=now + LONG)
        await pool.parse(_missing("vllm serve\n"), tenant="a", deadline=now + LONG)
        assert pool.scripts.get("vllm serve\n", RULES) is not None

    _run(pool, body)


def test_a_parse_over_its_budget_is_tried_again_once_its_memory_lapses() -> None:
    slow = slow_script(30, serial=7)

    async def body(pool: ParsePool, now: float) -> None:
        await pool.parse(_missing(slow), tenant="a", deadline=now + LONG)
        assert pool.counts.timeouts == 1
        await asyncio.sleep(0.3)  # past `timeout_kept`: the pool and the cache let it go
        assert pool.scripts.get(slow, RULES) is None
        await pool.parse(_missing(slow), tenant="a", deadline=now + LONG)
        assert pool.counts.timeouts == 2

    _run(_pool(budget=0.5, timeout_kept=0.2), body)


def test_a_shared_script_is_parsed_at_the_first_turn_of_a_tenant_waiting_for_it() -> None:
    """A flood queues a runtime's script behind its own eight: another tenant asking for the
    same script has it parsed at its own turn, not at the flood's."""
    done: list[str] = []
    shared = slow_script(0, serial=199)

    async def parse(pool: ParsePool, tenant: str, script: str, now: float) -> None:
        await pool.parse(_missing(script), tenant=tenant, deadline=now + LONG)
        done.append(f"{tenant}:{'shared' if script == shared else 'own'}")

    async def body(pool: ParsePool, now: float) -> None:
        flood = [
            asyncio.create_task(parse(pool, "flood", slow_script(0.2, serial=100 + i), now))
            for i in range(8)
        ]
        flood.append(asyncio.create_task(parse(pool, "flood", shared, now)))
        await asyncio.sleep(0)  # the flood's nine scripts are queued, the shared one last
        await parse(pool, "legit", shared, now)
        await asyncio.gather(*flood)

    pool = _pool(tenant_limit=16)
    _run(pool, body)
    assert done.index("legit:shared") <= 2, done
    assert sorted(d for d in done if d.endswith("shared")) == ["flood:shared", "legit:shared"]
    assert pool.counts.parsed == 9, "the shared script was parsed more than once"
    assert (pool.queued, pool.namespaces_waiting) == (0, 0), "a place outlived its job"


def test_a_newcomer_is_served_before_any_tenant_has_a_second_turn() -> None:
    """One worker: A queues four scripts and B one; while A's first is parsed, N arrives. The
    round goes on with B, then N, and only then A again."""
    done: list[str] = []

    async def parse(pool: ParsePool, label: str, script: str, now: float) -> None:
        await pool.parse(_missing(script), tenant=label[0], deadline=now + LONG)
        done.append(label)

    async def body(pool: ParsePool, now: float) -> None:
        tasks = [
            asyncio.create_task(parse(pool, f"A{i}", slow_script(0.2, serial=300 + i), now))
            for i in range(1, 5)
        ]
        tasks.append(asyncio.create_task(parse(pool, "B1", slow_script(0, serial=310), now)))
        await _taken(pool, left=4)  # A1 is being parsed
        tasks.append(asyncio.create_task(parse(pool, "N1", slow_script(0, serial=320), now)))
        await asyncio.gather(*tasks)

    _run(_pool(), body)
    assert done[:4] == ["A1", "B1", "N1", "A2"], done


def test_a_review_joins_a_queued_parse_even_with_its_own_queue_full() -> None:
    """Tenant b's queue is full; the script it asks for is queued in a's: b waits for it, and
    is answered when it is parsed, never shed."""

    async def body(pool: ParsePool, now: float) -> None:
        running = _queued(pool, slow_script(0.3, 400), tenant="a", deadline=now + LONG)
        await _taken(pool)
        shared = slow_script(0, 401)
        queued = _queued(pool, shared, tenant="a", deadline=now + LONG)
        own = _queued(pool, slow_script(0, 402), tenant="b", deadline=now + LONG)
        await asyncio.sleep(0)  # b's one place is taken by its own script
        joined = await pool.parse(_missing(shared), tenant="b", deadline=now + LONG)
        assert joined.rules == (Rule.FORWARD_ARGS,)
        await asyncio.gather(running, queued, own)
        assert pool.counts.shed == 0

    _run(_pool(tenant_limit=1), body)


def test_a_parse_that_fails_after_its_reviews_left_logs_nothing_unretrieved(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Every review waiting gave up (Late) before the parse failed: the failure is read by the
    pool itself, so asyncio has no "exception was never retrieved" to log."""
    pool = _pool(_slow_then_fail, queue_limit=4, tenant_limit=4)

    async def body(pool: ParsePool, now: float) -> None:
        await _taken(pool)
        script = f"{SLOW}0.3\n# fail\nvllm serve\n"
        with pytest.raises(Late):
            await pool.parse(_missing(script), tenant="a", deadline=now + 0.05)
        # The parse goes on without the review, and fails.
        await asyncio.sleep(1.5)

    _run(pool, body)
    import gc  # noqa: PLC0415 - the unretrieved exception is logged when the future is freed

    gc.collect()
    assert "never retrieved" not in caplog.text


def test_a_script_taken_at_one_tenants_turn_costs_no_other_tenant_a_turn() -> None:
    """A flood queues three scripts b also waits for, then four of its own; b waits for the
    three, then for one of its own. Each shared script is parsed at the first of the two
    tenants' turns, and its place in the other's queue goes with it: b's turns are not spent on
    scripts already parsed, and b's own script comes before the flood's own."""
    done: list[str] = []

    async def parse(pool: ParsePool, label: str, script: str, tenant: str, now: float) -> None:
        await pool.parse(_missing(script), tenant=tenant, deadline=now + LONG)
        done.append(label)

    async def body(pool: ParsePool, now: float) -> None:
        first = asyncio.create_task(parse(pool, "f0", slow_script(0.2, 510), "flood", now))
        await _taken(pool)
        shared = [slow_script(0.1, serial=500 + i) for i in range(3)]
        tasks = [
            asyncio.create_task(parse(pool, f"S{i}", script, "flood", now))
            for i, script in enumerate(shared)
        ]
        tasks += [
            asyncio.create_task(parse(pool, f"f{i + 1}", slow_script(0.1, 511 + i), "flood", now))
            for i in range(4)
        ]
        await asyncio.sleep(0)
        tasks += [
            asyncio.create_task(parse(pool, f"b:S{i}", script, "b", now))
            for i, script in enumerate(shared)
        ]
        await asyncio.sleep(0)
        tasks.append(asyncio.create_task(parse(pool, "b:own", slow_script(0, 520), "b", now)))
        await asyncio.gather(first, *tasks)

    pool = _pool(tenant_limit=16)
    _run(pool, body)
    assert done.index("b:own") < done.index("f1"), done
    assert (pool.queued, pool.namespaces_waiting) == (0, 0)
