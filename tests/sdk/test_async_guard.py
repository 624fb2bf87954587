"""The guard on ``async def`` tools: the same kill switch, shadow and record semantics as the sync
guard, per-task units of work, and nothing that blocks the event loop."""

from __future__ import annotations

import asyncio
import inspect
import threading
from typing import Any

import pytest

from agentctl.ops import Agentctl
from agentctl.sdk import ToolCall, ToolRevoked, UsageError
from agentctl.trace.query import iter_actions
from agentctl.trace.records import ActionRecord, InputRecord
from agentctl.trace.scan import ScanStats, decode_lines, validate
from tests.sdk.conftest import Rig, window


def actions(rig: Rig) -> list[ActionRecord]:
    assert rig.agent.flush()
    stats = ScanStats()
    found = list(iter_actions(str(rig.audit), "refund-agent", *window(rig.clock), stats=stats))
    assert stats.bad_total == 0, stats.to_dict()
    return found


def inputs(rig: Rig) -> list[InputRecord]:
    assert rig.agent.flush()
    stats = ScanStats()
    out = []
    for path in sorted(rig.audit.rglob("decisions-*.jsonl")):
        with path.open() as text:
            for number, data in decode_lines(path.name, text, stats):
                record = validate(path.name, number, data, stats)
                if isinstance(record, InputRecord):
                    out.append(record)
    return out


def async_refund(rig: Rig, **tool_options: Any) -> Any:
    """An async refund tool over the rig's payments (it yields to the loop before and after)."""

    @rig.agent.tool("issue_refund", **tool_options)
    async def issue_refund(
        order_id: str, amount: float, *, idempotency_key: str, call: ToolCall
    ) -> dict[str, Any]:
        await asyncio.sleep(0)
        r = rig.payments.refund(order_id, amount, idempotency_key)
        await asyncio.sleep(0)
        call.effect("payments", "refund", r["id"], "create", reversible=True)
        return {"refund_id": r["id"]}

    return issue_refund


def test_live_async_call_is_awaited_and_recorded_with_its_result_key_and_effects(
    rig: Rig,
) -> None:
    issue_refund = async_refund(rig)
    assert inspect.iscoroutinefunction(issue_refund)  # frameworks dispatch on this

    async def main() -> Any:
        with rig.agent.unit_of_work("T-1"):
            return await issue_refund("o-1", 25.0)

    assert asyncio.run(main()) == {"refund_id": "re_1"}
    [record] = actions(rig)
    assert record.status == "executed"
    assert record.result == {"refund_id": "re_1"}  # the awaited value, not a coroutine
    assert record.args == {"order_id": "o-1", "amount": 25}
    assert record.idempotency_key == rig.payments.refunds[0]["key"]
    assert [(e.system, e.resource_id) for e in record.effects] == [("payments", "re_1")]
    assert record.unit_of_work == "T-1" and record.error is None


def test_async_tool_exception_is_recorded_with_its_effects_and_re_raised(rig: Rig) -> None:
    @rig.agent.tool()
    async def send_email(to: str, *, call: ToolCall) -> None:
        await asyncio.sleep(0)
        call.effect("email", "message", "m-1", "send", reversible=False)
        raise ConnectionError("smtp dropped the connection after DATA")

    async def main() -> None:
        with rig.agent.unit_of_work("T-2"):
            await send_email("a@example.com")

    with pytest.raises(ConnectionError, match="after DATA"):
        asyncio.run(main())
    [record] = actions(rig)
    assert record.status == "failed"
    assert record.error == "ConnectionError: smtp dropped the connection after DATA"
    assert [e.resource_id for e in record.effects] == ["m-1"]  # what it did before raising


def test_cancelled_async_tool_is_recorded_as_failed_and_the_cancellation_propagates(
    rig: Rig,
) -> None:
    async def main() -> None:
        entered = asyncio.Event()

        @rig.agent.tool()
        async def slow_lookup(order_id: str) -> None:
            entered.set()
            await asyncio.Event().wait()  # never set: only cancellation ends it

        with rig.agent.unit_of_work("T-3"):
            task = asyncio.create_task(slow_lookup("o-3"))
            await entered.wait()
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task

    asyncio.run(main())
    [record] = actions(rig)
    assert record.status == "failed" and (record.error or "").startswith("CancelledError")


def test_shadow_mode_executes_nothing_and_awaits_an_async_shadow_result(
    rig: Rig, agentctl: Agentctl
) -> None:
    async def would_be(args: dict[str, Any]) -> dict[str, Any]:
        await asyncio.sleep(0)
        return {"shadow": True, "order": args["order_id"]}

    issue_refund = async_refund(rig, shadow_result=would_be)
    agentctl.execute(agentctl.plan_shadow("refund-agent"), reason="test")

    async def main() -> Any:
        with rig.agent.unit_of_work("T-4"):
            return await issue_refund("o-9", 99)

    assert asyncio.run(main()) == {"shadow": True, "order": "o-9"}
    assert rig.payments.refunds == []
    [record] = actions(rig)
    assert record.status == "shadowed" and record.effects == []
    assert record.result == {"shadow": True, "order": "o-9"}


def test_a_call_cancelled_while_its_shadow_result_is_awaited_is_still_recorded(
    rig: Rig, agentctl: Agentctl
) -> None:
    awaiting: list[asyncio.Event] = []

    async def slow(args: dict[str, Any]) -> dict[str, Any]:
        awaiting[0].set()
        await asyncio.sleep(3600)
        return {"never": True}

    issue_refund = async_refund(rig, shadow_result=slow)
    agentctl.execute(agentctl.plan_shadow("refund-agent"), reason="test")

    async def main() -> None:
        awaiting.append(asyncio.Event())
        with rig.agent.unit_of_work("T-5"):
            task = asyncio.ensure_future(issue_refund("o-10", 5))
            await asyncio.wait_for(awaiting[0].wait(), 10)  # the guard is awaiting `slow`
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task

    asyncio.run(main())
    assert rig.payments.refunds == []
    [record] = actions(rig)
    assert record.status == "shadowed" and record.result is None
    assert record.error is not None and record.error.startswith("CancelledError")
    assert "the tool did not run" in record.error


def test_a_shadow_result_that_raises_is_recorded_shadowed_with_the_error(
    rig: Rig, agentctl: Agentctl
) -> None:
    def broken(args: dict[str, Any]) -> Any:
        raise KeyError("amount")

    @rig.agent.tool("issue_refund", shadow_result=broken)
    def issue_refund(order_id: str) -> None:
        raise AssertionError("never runs in shadow mode")

    agentctl.execute(agentctl.plan_shadow("refund-agent"), reason="test")
    with rig.agent.unit_of_work("T-6"), pytest.raises(KeyError):
        issue_refund("o-11")
    [record] = actions(rig)
    assert record.status == "shadowed" and "KeyError" in (record.error or "")


def test_contain_reaches_a_running_async_agent_through_the_cache(
    rig: Rig, agentctl: Agentctl
) -> None:
    issue_refund = async_refund(rig)

    async def call(order: str) -> str:
        with rig.agent.unit_of_work(f"T-{order}"):
            try:
                await issue_refund(order, 5)
            except ToolRevoked as exc:
                return f"refused: {exc.reason}"
            return "executed"

    assert asyncio.run(call("o-1")) == "executed"  # reads the switch: live
    result = agentctl.execute(agentctl.plan_contain("refund-agent"), reason="test")
    assert int(result.exit_code) == 0
    rig.clock.advance(0.5)
    assert asyncio.run(call("o-2")) == "executed"  # inside the 1 s cache: the old state
    rig.clock.advance(0.5)
    assert asyncio.run(call("o-3")) == "refused: revoked in the tool registry"

    assert [r["order"] for r in rig.payments.refunds] == ["o-1", "o-2"]
    assert [(r.args["order_id"], r.status) for r in actions(rig)] == [
        ("o-1", "executed"),
        ("o-2", "executed"),
        ("o-3", "refused"),
    ]


def test_concurrent_tasks_each_record_their_own_unit_of_work(rig: Rig) -> None:
    issue_refund = async_refund(rig)

    async def handle(ticket: str) -> None:
        with rig.agent.unit_of_work(ticket, input={"ticket": ticket}):
            for n in range(3):  # each call yields twice: the tasks interleave
                await issue_refund(f"{ticket}/o-{n}", 10 + n)

    async def main() -> None:
        await asyncio.gather(*(handle(f"T-{i}") for i in range(8)))

    asyncio.run(main())
    records = actions(rig)
    assert len(records) == 24 and len(rig.payments.refunds) == 24
    traces = {r.unit_of_work: r.trace_id for r in inputs(rig)}
    assert len(traces) == 8 and len(set(traces.values())) == 8
    for r in records:
        assert r.args["order_id"].startswith(r.unit_of_work + "/")
        assert r.trace_id == traces[r.unit_of_work]


def test_a_stale_kill_switch_is_refreshed_off_the_event_loop(rig: Rig) -> None:
    """While SSM is being read, the loop keeps running other tasks. The refresh below waits
    until a coroutine on the loop releases it: run on the loop thread, it would wait out its
    timeout instead and `released` would be False."""
    issue_refund = async_refund(rig)
    ssm = rig.agent.killswitch.ssm  # type: ignore[union-attr]
    started, release = threading.Event(), threading.Event()
    seen: list[tuple[int, bool]] = []

    def during_read(**_: Any) -> None:
        started.set()
        seen.append((threading.get_ident(), release.wait(timeout=10)))

    ssm.meta.events.register("before-call.ssm.GetParameters", during_read)
    try:

        async def main() -> tuple[int, Any]:
            with rig.agent.unit_of_work("T-5"):
                task = asyncio.create_task(issue_refund("o-5", 5))
                assert await asyncio.to_thread(started.wait, 10)
                release.set()  # runs only if the loop is free while SSM is read
                return threading.get_ident(), await task

        loop_thread, result = asyncio.run(main())
    finally:
        ssm.meta.events.unregister("before-call.ssm.GetParameters", during_read)
    assert result == {"refund_id": "re_1"}
    [(read_thread, released)] = seen
    assert released and read_thread != loop_thread


def test_tasks_that_find_the_cache_stale_together_share_one_refresh(rig: Rig) -> None:
    """20 tasks find the cache stale while SSM is slow: one worker thread reads it for all of
    them (not one blocked thread each, which would exhaust the loop's default executor)."""
    issue_refund = async_refund(rig)
    ssm = rig.agent.killswitch.ssm  # type: ignore[union-attr]
    started, release = threading.Event(), threading.Event()
    reads: list[int] = []

    def slow_read(**_: Any) -> None:
        reads.append(threading.get_ident())
        started.set()
        release.wait(timeout=10)

    def workers() -> int:
        return sum(t.name.startswith("asyncio_") for t in threading.enumerate())

    async def burst(tag: str) -> int:
        async def one(i: int) -> None:
            with rig.agent.unit_of_work(f"T-{tag}-{i}"):
                await issue_refund(f"o-{tag}-{i}", 1)

        tasks = [asyncio.create_task(one(i)) for i in range(20)]
        while not started.is_set():  # no to_thread here: it would take a worker itself
            await asyncio.sleep(0)
        for _ in range(5):  # every task reaches the kill switch
            await asyncio.sleep(0)
        busy = workers()
        release.set()
        await asyncio.gather(*tasks)
        return busy

    ssm.meta.events.register("before-call.ssm.GetParameters", slow_read)
    try:
        assert asyncio.run(burst("a")) == 1
        assert len(reads) == 1
        rig.clock.advance(1.0)  # the cache expires: the next burst refreshes once more
        started.clear()
        release.clear()
        assert asyncio.run(burst("b")) == 1
    finally:
        ssm.meta.events.unregister("before-call.ssm.GetParameters", slow_read)
    assert len(reads) == 2 and len(rig.payments.refunds) == 40


def test_guarded_signature_hides_what_the_guard_supplies(rig: Rig) -> None:
    issue_refund = async_refund(rig)
    assert list(inspect.signature(issue_refund).parameters) == ["order_id", "amount"]
    assert "idempotency_key" not in issue_refund.__annotations__
    assert issue_refund.__name__ == "issue_refund"


def test_generator_tools_are_refused_at_decoration(rig: Rig) -> None:
    with pytest.raises(UsageError, match="generator"):

        @rig.agent.tool()
        async def stream_refunds(order_id: str) -> Any:
            yield order_id

    with pytest.raises(UsageError, match="generator"):

        @rig.agent.tool()
        def list_refunds(order_id: str) -> Any:
            yield order_id


def test_a_sync_wrapper_returning_a_coroutine_is_refused_and_nothing_runs(rig: Rig) -> None:
    ran: list[str] = []

    async def real(order_id: str) -> str:
        ran.append(order_id)
        return "done"

    @rig.agent.tool("issue_refund")
    def hidden(order_id: str) -> Any:  # looks sync, returns an un-awaited coroutine
        return real(order_id)

    with rig.agent.unit_of_work("T-6"), pytest.raises(UsageError, match="coroutine"):
        hidden("o-6")
    assert ran == []
    [record] = actions(rig)
    assert record.status == "failed" and "async def" in (record.error or "")


def test_aflush_writes_from_inside_the_loop(rig: Rig) -> None:
    issue_refund = async_refund(rig)

    async def main() -> bool:
        with rig.agent.unit_of_work("T-7"):
            await issue_refund("o-7", 7)
        return await rig.agent.aflush()

    assert asyncio.run(main())
    assert rig.agent.writer.stats.written == 2  # the input record and the action
    assert [r.status for r in actions(rig)] == ["executed"]
