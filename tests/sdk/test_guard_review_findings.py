"""Review findings on the async guard: a started future handed back by a sync tool, a call
cancelled while the kill switch is read, event loops closed mid-refresh, ``async def`` effect
extractors."""

from __future__ import annotations

import asyncio
import gc
import inspect
import logging
import threading
import warnings
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from agentctl.compensate.planner import plan_compensations
from agentctl.sdk import ToolCall, UsageError, make_effect
from agentctl.spec import load_agent
from agentctl.trace.records import ActionRecord
from tests.sdk.conftest import Rig
from tests.sdk.test_async_guard import actions, async_refund


def rollback_plan(runbooks: Path, records: list[ActionRecord]) -> Any:
    return plan_compensations(load_agent("refund-agent", runbooks), records)


def block_switch_reads(rig: Rig) -> tuple[threading.Event, threading.Event]:
    """Every SSM read of the kill switch waits for ``release``; ``started`` says one began."""
    ssm = rig.agent.killswitch.ssm  # type: ignore[union-attr]
    started, release = threading.Event(), threading.Event()

    def slow_read(**_: Any) -> None:
        started.set()
        release.wait(timeout=10)

    ssm.meta.events.register("before-call.ssm.GetParameters", slow_read)
    return started, release


async def wait_for_event(event: threading.Event) -> None:
    while not event.is_set():  # no to_thread: it would take a worker of the loop itself
        await asyncio.sleep(0)


# --- 1. a sync tool that returns a started Future -----------------------------------------------


def test_a_sync_tool_returning_a_started_future_is_recorded_executed_for_rollback(
    rig: Rig, runbooks: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The refund runs in the executor as soon as the tool returns: the record must not say
    'failed, nothing happened' (rollback would skip a refund that really happened)."""

    @rig.agent.tool("issue_refund")
    def issue_refund(order_id: str, amount: float, *, idempotency_key: str) -> Any:
        def blocking_refund() -> dict[str, Any]:
            return {"refund_id": rig.payments.refund(order_id, amount, idempotency_key)["id"]}

        return asyncio.get_running_loop().run_in_executor(None, blocking_refund)

    async def main() -> Any:
        with rig.agent.unit_of_work("T-F"):
            return await issue_refund("o-F", 30.0)

    with caplog.at_level(logging.WARNING, logger="agentctl.sdk"):
        assert asyncio.run(main()) == {"refund_id": "re_1"}  # the caller sees the real outcome
    assert [r["order"] for r in rig.payments.refunds] == ["o-F"]
    [record] = actions(rig)
    assert record.status == "executed"
    assert str(record.result).startswith("<pending ") and "Future" in str(record.result)
    assert "may have run" in (record.error or "") and "async def" in (record.error or "")
    assert record.idempotency_key == rig.payments.refunds[0]["key"]
    assert any("cannot await" in r.getMessage() for r in caplog.records)
    # rollback does not count it as "did not run": the refund id is unknown to the guard, so
    # the compensation cannot be rendered and the operator is told about this action
    plan = rollback_plan(runbooks, [record])
    assert plan.not_run == 0
    assert [p.action_id for p in plan.problems] == [record.action_id]


def test_a_started_future_keeps_the_effects_the_tool_declared_before_returning(
    rig: Rig, runbooks: Path
) -> None:
    @rig.agent.tool("issue_refund")
    def issue_refund(order_id: str, amount: float, *, idempotency_key: str, call: ToolCall) -> Any:
        r = rig.payments.refund(order_id, amount, idempotency_key)
        call.effect("payments", "refund", r["id"], "create", reversible=True)
        done = asyncio.get_running_loop().create_future()
        done.set_result({"refund_id": r["id"]})
        return done

    async def main() -> Any:
        with rig.agent.unit_of_work("T-G"):
            return await issue_refund("o-G", 12.0)

    assert asyncio.run(main()) == {"refund_id": "re_1"}
    [record] = actions(rig)
    assert record.status == "executed"
    assert [(e.system, e.resource_id) for e in record.effects] == [("payments", "re_1")]
    plan = rollback_plan(runbooks, [record])
    assert plan.not_run == 0 and plan.seen == 1


# --- 2. cancelled while the kill switch is read ---------------------------------------------------


def test_a_call_cancelled_while_the_kill_switch_is_read_is_recorded_not_run(
    rig: Rig, runbooks: Path
) -> None:
    issue_refund = async_refund(rig)
    rig.clock.advance(5)  # the cached switch state is stale: the call waits for a refresh
    started, release = block_switch_reads(rig)

    async def main() -> None:
        with rig.agent.unit_of_work("T-C"):
            task = asyncio.create_task(issue_refund("o-C", 1))
            await wait_for_event(started)
            task.cancel()
            try:
                with pytest.raises(asyncio.CancelledError):  # the cancellation propagates
                    await task
            finally:
                release.set()

    asyncio.run(main())
    assert rig.payments.refunds == []
    [record] = actions(rig)
    assert record.status == "failed" and record.effects == []
    assert record.error is not None and record.error.startswith("CancelledError")
    assert "before the kill switch was read" in record.error and "did not run" in record.error
    assert record.unit_of_work == "T-C" and record.args == {"order_id": "o-C", "amount": 1}
    assert rollback_plan(runbooks, [record]).not_run == 1


# --- 3. event loops closed while their refresh is in flight ---------------------------------------


def test_loops_closed_during_a_refresh_are_not_kept_and_leave_no_pending_task(
    rig: Rig, caplog: pytest.LogCaptureFixture
) -> None:
    """Loops managed by hand (run_until_complete, then close) while SSM is slow: the switch
    must not keep them (and their pending refresh) for ever, nor leave a task to be destroyed
    pending (asyncio logs 'Task was destroyed but it is pending!')."""
    issue_refund = async_refund(rig)
    ks = rig.agent.killswitch
    assert ks is not None
    started, release = block_switch_reads(rig)

    async def one(i: int) -> None:
        with rig.agent.unit_of_work(f"T-L{i}"):
            task = asyncio.create_task(issue_refund(f"o-L{i}", 1))
            await wait_for_event(started)
            for _ in range(3):  # the task reaches the kill switch and waits on the refresh
                await asyncio.sleep(0)
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task

    executors = []
    with caplog.at_level(logging.WARNING, logger="asyncio"):
        try:
            for i in range(3):
                rig.clock.advance(2)  # stale again: each loop starts its own refresh
                executor = ThreadPoolExecutor(max_workers=1)
                executors.append(executor)
                loop = asyncio.new_event_loop()
                loop.set_default_executor(executor)
                loop.run_until_complete(one(i))
                loop.close()
                assert len(ks._flights) <= 1  # only the loop closed last: the others dropped
        finally:
            release.set()
            for executor in executors:
                executor.shutdown(wait=True)  # every refresh has landed
        gc.collect()
    assert ks._flights == {}
    assert not [r for r in caplog.records if "pending" in r.getMessage()]
    assert rig.payments.refunds == []
    assert [r.status for r in actions(rig)] == ["failed"] * 3


def test_a_loop_that_stays_open_still_shares_and_then_frees_its_refresh(rig: Rig) -> None:
    issue_refund = async_refund(rig)
    ks = rig.agent.killswitch
    assert ks is not None
    rig.clock.advance(5)

    async def main() -> None:
        with rig.agent.unit_of_work("T-O"):
            await asyncio.gather(*(issue_refund(f"o-O{i}", 1) for i in range(3)))

    asyncio.run(main())
    assert ks._flights == {}
    assert ks.stats.reads == 1 and len(rig.payments.refunds) == 3


# --- 4. effects= extractors -----------------------------------------------------------------------


async def async_refund_effects(args: dict[str, Any], result: Any) -> list[dict[str, Any]]:
    await asyncio.sleep(0)
    return [make_effect("payments", "refund", result["refund_id"], "create", reversible=True)]


def refund_effects(args: dict[str, Any], result: Any) -> list[dict[str, Any]]:
    return [make_effect("payments", "refund", result["refund_id"], "create", reversible=True)]


def plain_sync_refund(rig: Rig, **tool_options: Any) -> Any:
    @rig.agent.tool("issue_refund", **tool_options)
    def issue_refund(order_id: str, *, idempotency_key: str) -> dict[str, Any]:
        return {"refund_id": rig.payments.refund(order_id, 1, idempotency_key)["id"]}

    return issue_refund


def plain_async_refund(rig: Rig, **tool_options: Any) -> Any:
    @rig.agent.tool("issue_refund", **tool_options)
    async def issue_refund(order_id: str, *, idempotency_key: str) -> dict[str, Any]:
        await asyncio.sleep(0)
        return {"refund_id": rig.payments.refund(order_id, 1, idempotency_key)["id"]}

    return issue_refund


@pytest.mark.parametrize("extractor", [async_refund_effects, refund_effects])
def test_an_async_tool_records_the_effects_of_its_extractor(rig: Rig, extractor: Any) -> None:
    issue_refund = plain_async_refund(rig, effects=extractor)

    async def main() -> Any:
        with rig.agent.unit_of_work("T-X"):
            return await issue_refund("o-X")

    assert asyncio.run(main()) == {"refund_id": "re_1"}
    [record] = actions(rig)
    assert record.status == "executed" and record.error is None
    assert [(e.system, e.resource_id) for e in record.effects] == [("payments", "re_1")]


def test_a_failing_async_extractor_is_recorded_on_the_executed_action(rig: Rig) -> None:
    async def broken(args: dict[str, Any], result: Any) -> list[dict[str, Any]]:
        raise KeyError("id")

    issue_refund = plain_async_refund(rig, effects=broken)

    async def main() -> Any:
        with rig.agent.unit_of_work("T-Y"):
            return await issue_refund("o-Y")

    assert asyncio.run(main()) == {"refund_id": "re_1"}  # the agent is not broken by it
    [record] = actions(rig)
    assert record.status == "executed" and record.effects == []
    assert record.error == "effects extractor failed: KeyError: 'id'"


def test_a_call_cancelled_in_its_async_extractor_is_still_recorded_executed(rig: Rig) -> None:
    """The tool ran (the refund happened): cancelling the extractor must not lose that."""

    async def main() -> None:
        never, entered = asyncio.Event(), asyncio.Event()

        async def waits(args: dict[str, Any], result: Any) -> list[dict[str, Any]]:
            entered.set()
            await never.wait()
            return []

        issue_refund = plain_async_refund(rig, effects=waits)
        with rig.agent.unit_of_work("T-Z"):
            task = asyncio.create_task(issue_refund("o-Z"))
            await asyncio.wait(
                [task, asyncio.create_task(entered.wait())], return_when="FIRST_COMPLETED"
            )
            assert entered.is_set(), "the extractor was never awaited"
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task

    asyncio.run(main())
    assert len(rig.payments.refunds) == 1
    [record] = actions(rig)
    assert record.status == "executed" and record.result == {"refund_id": "re_1"}
    assert (record.error or "").startswith("effects extractor failed: CancelledError")


def test_a_sync_tool_records_the_effects_of_its_extractor(rig: Rig) -> None:
    issue_refund = plain_sync_refund(rig, effects=refund_effects)

    with rig.agent.unit_of_work("T-S"):
        assert issue_refund("o-S") == {"refund_id": "re_1"}
    [record] = actions(rig)
    assert [(e.system, e.resource_id) for e in record.effects] == [("payments", "re_1")]


def test_a_sync_tool_refuses_an_async_extractor_when_decorated(rig: Rig) -> None:
    with pytest.raises(UsageError, match="effects= extractor is an `async def`"):

        @rig.agent.tool("issue_refund", effects=async_refund_effects)
        def issue_refund(order_id: str) -> dict[str, Any]:
            return {"refund_id": "never"}


def _yields_one_then_fails(args: dict[str, Any], result: Any) -> Any:
    yield make_effect("payments", "refund", result["refund_id"], "create", reversible=True)
    raise KeyError("email_id")  # e.g. the second effect's id is missing from the result


@pytest.mark.parametrize("kind", ["sync", "async"])
def test_a_generator_extractor_failing_part_way_keeps_the_effects_it_yielded(
    rig: Rig, runbooks: Path, kind: str
) -> None:
    """The refund it yielded before failing happened: rollback must still see it."""
    tool = rig.agent.tool("issue_refund", effects=_yields_one_then_fails)
    if kind == "async":

        @tool
        async def async_refund(order_id: str, amount: float, *, idempotency_key: str) -> Any:
            await asyncio.sleep(0)
            return {"refund_id": rig.payments.refund(order_id, amount, idempotency_key)["id"]}

        async def main() -> Any:
            with rig.agent.unit_of_work("T-G"):
                return await async_refund("o-G", 12.5)

        assert asyncio.run(main()) == {"refund_id": "re_1"}
    else:

        @tool
        def sync_refund(order_id: str, amount: float, *, idempotency_key: str) -> Any:
            return {"refund_id": rig.payments.refund(order_id, amount, idempotency_key)["id"]}

        with rig.agent.unit_of_work("T-G"):
            assert sync_refund("o-G", 12.5) == {"refund_id": "re_1"}
    [record] = actions(rig)
    assert record.status == "executed"
    assert [(e.system, e.resource_id, e.operation) for e in record.effects] == [
        ("payments", "re_1", "create")
    ]
    assert record.error == "effects extractor failed: KeyError: 'email_id'"
    plan = rollback_plan(runbooks, [record])
    assert [c.action_id for c in plan.compensations] == [record.action_id]
    assert plan.problems == []


def test_an_async_tool_returning_an_unawaited_coroutine_is_refused_and_nothing_runs(
    rig: Rig,
) -> None:
    """`return refund(...)` instead of `return await refund(...)`: the refund never started.
    Recording it executed with a coroutine's repr as its result would be a lie."""

    async def refund(order_id: str, key: str) -> dict[str, Any]:
        return {"refund_id": rig.payments.refund(order_id, 1, key)["id"]}

    @rig.agent.tool("issue_refund")
    async def issue_refund(order_id: str, *, idempotency_key: str) -> Any:
        return refund(order_id, idempotency_key)  # forgot `await`

    async def main() -> None:
        with (
            rig.agent.unit_of_work("T-C"),
            pytest.raises(UsageError, match="returned a coroutine: await it inside"),
        ):
            await issue_refund("o-C")

    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)  # "coroutine was never awaited"
        asyncio.run(main())
        gc.collect()
    assert rig.payments.refunds == []
    [record] = actions(rig)
    assert record.status == "failed" and "returned a coroutine" in (record.error or "")


def test_an_async_tool_returning_a_started_future_is_recorded_executed(
    rig: Rig, caplog: pytest.LogCaptureFixture
) -> None:
    @rig.agent.tool("issue_refund")
    async def issue_refund(order_id: str, *, idempotency_key: str) -> Any:
        def blocking_refund() -> dict[str, Any]:
            return {"refund_id": rig.payments.refund(order_id, 1, idempotency_key)["id"]}

        return asyncio.get_running_loop().run_in_executor(None, blocking_refund)  # not awaited

    async def main() -> Any:
        with rig.agent.unit_of_work("T-D"):
            return await (await issue_refund("o-D"))

    with caplog.at_level(logging.WARNING, logger="agentctl.sdk"):
        assert asyncio.run(main()) == {"refund_id": "re_1"}
    assert [r["order"] for r in rig.payments.refunds] == ["o-D"]
    [record] = actions(rig)
    assert record.status == "executed" and str(record.result).startswith("<pending ")
    assert "may have run" in (record.error or "") and "await it inside the tool" in record.error
    assert any("cannot await" in r.getMessage() for r in caplog.records)


def _junk_then_one(args: dict[str, Any], result: Any) -> Any:
    yield "oops"
    yield None
    yield {"system": "payments", "resource_type": "refund", "resource_id": 7, "operation": "x"}
    yield make_effect("payments", "refund", result["refund_id"], "create", reversible=True)


def _junk_then_fails(args: dict[str, Any], result: Any) -> Any:
    yield "oops"
    raise KeyError("email_id")


@pytest.mark.parametrize(
    ("extractor", "error"),
    [
        (
            _junk_then_one,
            "effects extractor returned 3 item(s) that are not effects, left out (build them "
            "with make_effect): str 'oops'",
        ),
        (
            _junk_then_fails,
            "effects extractor returned 1 item(s) that are not effects, left out (build them "
            "with make_effect): str 'oops'; effects extractor failed: KeyError: 'email_id'",
        ),
    ],
)
def test_items_an_extractor_returns_that_are_not_effects_are_left_out_and_noted(
    rig: Rig, extractor: Any, error: str
) -> None:
    """Written as they are, they would make the record unreadable: the refund would vanish
    from `actions` and from rollback (`actions(rig)` reads it back with no bad line)."""

    issue_refund = plain_sync_refund(rig, effects=extractor)

    with rig.agent.unit_of_work("T-J"):
        assert issue_refund("o-J") == {"refund_id": "re_1"}
    [record] = actions(rig)
    assert record.status == "executed" and record.error == error
    expected = [("re_1",)] if extractor is _junk_then_one else []
    assert [(e.resource_id,) for e in record.effects] == expected


def test_an_interrupt_in_a_sync_extractor_still_records_the_executed_call(rig: Rig) -> None:
    def interrupted(args: dict[str, Any], result: Any) -> Any:
        yield make_effect("payments", "refund", result["refund_id"], "create", reversible=True)
        raise KeyboardInterrupt

    issue_refund = plain_sync_refund(rig, effects=interrupted)

    with rig.agent.unit_of_work("T-K"), pytest.raises(KeyboardInterrupt):
        issue_refund("o-K")
    [record] = actions(rig)  # the refund happened: rollback must see it
    assert record.status == "executed" and [e.resource_id for e in record.effects] == ["re_1"]
    assert record.error == "effects extractor failed: KeyboardInterrupt: "


def test_effects_the_record_model_accepts_are_kept_in_the_form_it_reads(rig: Rig) -> None:
    """A `details` mapping that is not a dict would be written as a string (unreadable
    record); `reversible` 1, "true" or "Yes" is true to the model and stays an effect."""
    from collections import UserDict
    from types import MappingProxyType

    def effects(args: dict[str, Any], result: Any) -> Any:
        base = {"system": "payments", "resource_type": "refund", "operation": "create"}
        yield base | {"resource_id": "re_a", "reversible": 1, "details": UserDict(amount=5)}
        yield base | {"resource_id": "re_b", "reversible": "Yes", "details": MappingProxyType({})}
        yield base | {"resource_id": "re_c", "reversible": "false"}
        yield base | {"resource_id": "re_d", "reversible": 2}  # not true or false: left out

    issue_refund = plain_sync_refund(rig, effects=effects)

    with rig.agent.unit_of_work("T-E"):
        issue_refund("o-E")
    [record] = actions(rig)  # readable: no bad line
    assert [(e.resource_id, e.reversible, e.details) for e in record.effects] == [
        ("re_a", True, {"amount": 5}),
        ("re_b", True, {}),
        ("re_c", False, {}),
    ]
    assert record.error == (
        "effects extractor returned 1 item(s) that are not effects, left out (build them with "
        "make_effect): reversible=2 is not true or false"
    )


def test_an_unstarted_generator_based_coroutine_is_refused_and_a_started_one_is_not(
    rig: Rig,
) -> None:
    """Only a coroutine that has not begun ran nothing: one already started may have done
    its work (recorded executed, outcome unknown, handed back)."""
    import types

    @types.coroutine
    def old_style_refund(order_id: str, key: str) -> Any:
        yield  # a generator-based coroutine: nothing runs until it is driven
        return {"refund_id": rig.payments.refund(order_id, 1, key)["id"]}

    @rig.agent.tool("issue_refund")
    async def forgot_await(order_id: str, *, idempotency_key: str) -> Any:
        return old_style_refund(order_id, idempotency_key)

    async def started_coroutine(order_id: str, key: str) -> Any:
        rig.payments.refund(order_id, 1, key)  # done before its first await
        await asyncio.sleep(0)
        return "rest"

    @rig.agent.tool("issue_refund")
    async def half_driven(order_id: str, *, idempotency_key: str) -> Any:
        coro = started_coroutine(order_id, idempotency_key)
        coro.send(None)  # runs up to its first await: the refund is made
        return coro

    async def main() -> None:
        with rig.agent.unit_of_work("T-O"):
            with pytest.raises(UsageError, match="returned a coroutine"):
                await forgot_await("o-1")
            handed_back = await half_driven("o-2")
            assert inspect.getcoroutinestate(handed_back) == inspect.CORO_SUSPENDED
            handed_back.close()

    asyncio.run(main())
    assert [r["order"] for r in rig.payments.refunds] == ["o-2"]
    statuses = sorted((r.unit_of_work, r.status, r.args["order_id"]) for r in actions(rig))
    assert statuses == [("T-O", "executed", "o-2"), ("T-O", "failed", "o-1")]


def test_an_effect_declared_with_bad_types_is_left_out_and_the_call_stays_readable(
    rig: Rig,
) -> None:
    """call.effect() is not type-checked when the tool calls it (the refund is made by then):
    a None system would make the record unreadable and the refund vanish from rollback."""

    @rig.agent.tool("issue_refund")
    def issue_refund(order_id: str, *, idempotency_key: str, call: ToolCall) -> Any:
        refund = rig.payments.refund(order_id, 1, idempotency_key)
        call.effect(None, "refund", refund["id"], "create", reversible=True)  # type: ignore[arg-type]
        call.effect("payments", "refund", refund["id"], "create", reversible=True)
        return {"refund_id": refund["id"]}

    with rig.agent.unit_of_work("T-B"):
        issue_refund("o-B")
    [record] = actions(rig)  # readable: no bad line
    assert record.status == "executed"
    assert [(e.system, e.resource_id) for e in record.effects] == [("payments", "re_1")]
    assert record.error == (
        "call.effect() declared 1 item(s) that are not effects, left out (build them with "
        "make_effect): system=None is not a string"
    )
