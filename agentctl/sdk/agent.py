"""Guarding tool calls and recording the decision trace. Standard library only.

    agent = Agent("refund-agent", release_id="rel-7", ssm=ssm_client,
                  registry_parameter="/agents/refund-agent/tools",
                  shadow_parameter="/agents/refund-agent/mode",
                  sink=LocalJsonlSink("audit/refund-agent"))

    @agent.tool()
    def issue_refund(order_id: str, amount: float, *, idempotency_key: str, call: ToolCall):
        refund = payments.refund(order_id, amount, idempotency_key=idempotency_key)
        call.effect("payments", "refund", refund["id"], "create", reversible=True,
                    details={"amount": amount})
        return refund

    with agent.unit_of_work("T-1042", input=ticket):
        agent.record_model_call(model_requested="claude-x", model_answered="claude-x-2026",
                                prompt_template="refund-triage", prompt_version="v12")
        issue_refund("o-7", 30)

A guarded call: (1) binds the arguments to the function's parameters (defaults applied) and
canonicalises them; (2) derives the idempotency key from agent, unit of work, tool and arguments;
(3) reads the kill switch through its cache; (4) revoked (or switch unreadable, fail-closed):
records ``refused`` and raises :class:`ToolRevoked`; shadow: records ``shadowed`` and returns
``shadow_result`` without running the tool; live: runs the tool, passing ``idempotency_key=`` and
``call=`` if the function declares them, and records ``executed`` with result and effects, or
``failed`` with the error (the exception is re-raised unchanged). Records go to a bounded,
batched :class:`~agentctl.sdk.sinks.Writer`: recording never blocks or raises into the agent.

``async def`` tools are guarded by an ``async def`` wrapper with the same semantics::

    @agent.tool()
    async def issue_refund(order_id: str, amount: float, *, idempotency_key: str):
        return await payments.refund(order_id, amount, idempotency_key=idempotency_key)

    async def handle(ticket):
        with agent.unit_of_work(ticket["id"]):  # a ContextVar: each asyncio task has its own
            await issue_refund("o-7", 30)

In the async wrapper nothing blocks the event loop: records are queued in memory (the writer's
thread does the I/O), a fresh kill-switch state is read from the cache, and a refresh (a blocking
SSM call) runs in a worker thread (:meth:`KillSwitch.astate`). Use :meth:`Agent.aflush` /
:meth:`Agent.aclose` rather than ``flush`` / ``close`` from inside a running loop.
"""

from __future__ import annotations

import contextvars
import functools
import inspect
import os
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, TypeVar

from agentctl.sdk.keys import canonical, idempotency_key
from agentctl.sdk.killswitch import KillSwitch, Monotonic, SwitchState
from agentctl.sdk.sinks import Sink, Writer

SCHEMA_VERSION = 1
R = TypeVar("R")


class SdkError(Exception):
    """Root of the SDK's own exceptions."""


class ToolRevoked(SdkError):
    """The kill switch refused this call: the tool was not executed."""

    def __init__(self, tool: str, reason: str, idempotency_key: str) -> None:
        super().__init__(f"tool {tool!r} refused by the agentctl kill switch: {reason}")
        self.tool = tool
        self.reason = reason
        self.idempotency_key = idempotency_key


class UsageError(SdkError):
    """The SDK was used wrongly (e.g. a guarded call outside ``unit_of_work``)."""


def _utcnow() -> datetime:
    return datetime.now(UTC)


def _iso(ts: datetime) -> str:
    return ts.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _span_id() -> str:
    return os.urandom(8).hex()


@dataclass
class Unit:
    """The unit of work in progress (a ticket, a conversation turn): one trace."""

    id: str
    trace_id: str
    span_id: str


@dataclass
class ToolCall:
    """Handed to a guarded tool that declares a ``call`` parameter."""

    tool: str
    idempotency_key: str
    unit_of_work: str
    effects: list[dict[str, Any]] = field(default_factory=list)

    def effect(
        self,
        system: str,
        resource_type: str,
        resource_id: str,
        operation: str,
        *,
        reversible: bool,
        idempotency_key: str | None = None,
        details: Mapping[str, Any] | None = None,
    ) -> None:
        """Declare one change this call made to another system (what rollback compensates)."""
        self.effects.append(
            make_effect(
                system,
                resource_type,
                resource_id,
                operation,
                reversible=reversible,
                idempotency_key=idempotency_key or self.idempotency_key,
                details=details,
            )
        )


def make_effect(
    system: str,
    resource_type: str,
    resource_id: str,
    operation: str,
    *,
    reversible: bool,
    idempotency_key: str | None = None,
    details: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """An effect entry (for ``effects=`` extractors)."""
    return {
        "system": system,
        "resource_type": resource_type,
        "resource_id": str(resource_id),
        "operation": operation,
        "reversible": bool(reversible),
        "idempotency_key": idempotency_key,
        "details": dict(details or {}),
    }


EffectsOf = Callable[[dict[str, Any], Any], list[dict[str, Any]]]


@dataclass
class _Pending:
    """One guarded call between the key derivation and its record."""

    unit: Unit
    span: str
    started: datetime
    body: dict[str, Any]
    call: ToolCall
    extra: dict[str, Any]  # idempotency_key= / call= for the tool


def _shadow_value(shadow_result: Any, call_args: dict[str, Any]) -> Any:
    return shadow_result(call_args) if callable(shadow_result) else shadow_result


class Agent:
    """One agent's guard and recorder. Thread-safe; one per process is typical."""

    def __init__(
        self,
        name: str,
        *,
        release_id: str | None = None,
        sink: Sink | None = None,
        writer: Writer | None = None,
        ssm: Any | None = None,
        registry_parameter: str | None = None,
        shadow_parameter: str | None = None,
        ttl: float = 1.0,
        killswitch: KillSwitch | None = None,
        monotonic: Monotonic = time.monotonic,
        now: Callable[[], datetime] = _utcnow,
    ) -> None:
        if writer is None and sink is None:
            raise UsageError("pass a sink (e.g. LocalJsonlSink(path)) or a writer")
        self.name = name
        self.release_id = release_id
        self.writer = writer or Writer(sink)  # type: ignore[arg-type]
        if killswitch is None and ssm is not None:
            killswitch = KillSwitch(
                ssm,
                registry_parameter=registry_parameter,
                shadow_parameter=shadow_parameter,
                ttl=ttl,
                monotonic=monotonic,
            )
        self.killswitch = killswitch
        self.now = now
        self._unit: contextvars.ContextVar[Unit | None] = contextvars.ContextVar(
            f"agentctl-unit-{name}", default=None
        )

    # --- units of work -------------------------------------------------------------------------

    @contextmanager
    def unit_of_work(
        self,
        unit_id: str,
        *,
        input: Any = None,
        channel: str | None = None,
        trace_id: str | None = None,
    ) -> Iterator[Unit]:
        """Everything recorded inside belongs to this ticket/conversation (one trace)."""
        unit = Unit(str(unit_id), trace_id or os.urandom(16).hex(), _span_id())
        token = self._unit.set(unit)
        try:
            self._submit(
                unit,
                unit.span_id,
                None,
                {"record_type": "input", "channel": channel, "content": input},
            )
            yield unit
        finally:
            self._unit.reset(token)

    def current_unit(self) -> Unit:
        unit = self._unit.get()
        if unit is None:
            raise UsageError(
                f"{self.name}: guarded calls and records need `with agent.unit_of_work(id):`"
            )
        return unit

    # --- records -------------------------------------------------------------------------------

    def _submit(
        self,
        unit: Unit,
        span_id: str,
        parent: str | None,
        body: dict[str, Any],
        ts: datetime | None = None,
    ) -> None:
        record = {
            "schema_version": SCHEMA_VERSION,
            "agent": self.name,
            "release_id": self.release_id,
            "trace_id": unit.trace_id,
            "span_id": span_id,
            "parent_span_id": parent,
            "ts": _iso(ts or self.now()),
            "unit_of_work": unit.id,
            **body,
        }
        self.writer.submit(record)

    def record_model_call(
        self,
        *,
        model_requested: str,
        model_answered: str | None = None,
        prompt_template: str | None = None,
        prompt_version: str | None = None,
        input: Any = None,
        output: Any = None,
        input_tokens: int | None = None,
        output_tokens: int | None = None,
        finish_reason: str | None = None,
    ) -> str:
        """Record one model call; returns its span id."""
        unit = self.current_unit()
        span = _span_id()
        self._submit(
            unit,
            span,
            unit.span_id,
            {
                "record_type": "model_call",
                "model_requested": model_requested,
                "model_answered": model_answered,
                "prompt_template": prompt_template,
                "prompt_version": prompt_version,
                "input": input,
                "output": output,
                "input_tokens": input_tokens,
                "output_tokens": output_tokens,
                "finish_reason": finish_reason,
            },
        )
        return span

    def record_retrieval(
        self,
        *,
        source: str,
        query: str | None = None,
        documents: list[Mapping[str, Any]] | None = None,
    ) -> str:
        """Record retrieved context (documents: dicts with id, score, source, content)."""
        unit = self.current_unit()
        span = _span_id()
        docs = [dict(d) for d in documents or []]
        self._submit(
            unit,
            span,
            unit.span_id,
            {
                "record_type": "retrieval",
                "source": source,
                "query": query,
                "documents": docs,
            },
        )
        return span

    # --- guarded tools -------------------------------------------------------------------------

    def tool(
        self,
        name: str | None = None,
        *,
        effects: EffectsOf | None = None,
        shadow_result: Any = None,
    ) -> Callable[[Callable[..., R]], Callable[..., R]]:
        """Decorator: guard a tool function (see the module docstring). The guarded function
        is called without ``idempotency_key`` / ``call``: the guard supplies them, and they are
        left out of the guarded function's signature (frameworks that build a tool schema from
        the signature do not show them to the model).

        An ``async def`` tool gets an ``async def`` guard: it awaits the tool and records what
        it returned or raised, reads a stale kill switch off the event loop
        (:meth:`KillSwitch.astate`), and never waits on the sink. Generator functions are
        refused: their body would run after the guard had returned, unguarded and unrecorded.
        """

        def decorate(fn: Callable[..., R]) -> Callable[..., R]:
            tool_name = name or fn.__name__
            if inspect.isasyncgenfunction(fn) or inspect.isgeneratorfunction(fn):
                raise UsageError(
                    f"tool {tool_name!r} is a generator function: its body would run outside "
                    "the guard; guard a function that performs the call and returns its result"
                )
            sig = inspect.signature(fn)
            wants_key = "idempotency_key" in sig.parameters
            wants_call = "call" in sig.parameters
            injected = {"idempotency_key", "call"}

            def bind(args: tuple[Any, ...], kwargs: dict[str, Any]) -> dict[str, Any]:
                bound = sig.bind_partial(*args, **kwargs)
                bound.apply_defaults()
                return {k: v for k, v in bound.arguments.items() if k not in injected}

            guarded: Any
            if inspect.iscoroutinefunction(fn):

                @functools.wraps(fn)
                async def guarded_async(*args: Any, **kwargs: Any) -> Any:
                    call_args = bind(args, kwargs)
                    pending = self._begin(tool_name, call_args, wants_key, wants_call)
                    ks = self.killswitch
                    state = await ks.astate() if ks is not None else SwitchState()
                    if self._gate(pending, state):
                        result = _shadow_value(shadow_result, call_args)
                        if inspect.isawaitable(result):
                            result = await result
                        self._record_shadowed(pending, result)
                        return result
                    t0 = time.perf_counter()
                    try:
                        result = await fn(*args, **kwargs, **pending.extra)
                    except BaseException as exc:  # CancelledError too: recorded, re-raised
                        self._record_failed(pending, exc, t0)
                        raise
                    self._record_executed(pending, result, t0, effects, call_args)
                    return result

                guarded = guarded_async
            else:

                @functools.wraps(fn)
                def guarded_sync(*args: Any, **kwargs: Any) -> Any:
                    return self._guarded_call(
                        tool_name,
                        fn,
                        args,
                        kwargs,
                        bind(args, kwargs),
                        wants_key,
                        wants_call,
                        effects,
                        shadow_result,
                    )

                guarded = guarded_sync
            public = [p for p in sig.parameters.values() if p.name not in injected]
            guarded.__signature__ = sig.replace(parameters=public)
            guarded.__annotations__ = {
                k: v for k, v in getattr(fn, "__annotations__", {}).items() if k not in injected
            }
            return guarded

        return decorate

    def _begin(
        self, tool: str, call_args: dict[str, Any], wants_key: bool, wants_call: bool
    ) -> _Pending:
        """Everything a guarded call knows before the kill switch is read."""
        unit = self.current_unit()
        canon = canonical(call_args)
        key = idempotency_key(self.name, unit.id, tool, canon)
        body: dict[str, Any] = {
            "record_type": "action",
            "action_id": "act-" + os.urandom(8).hex(),
            "tool": tool,
            "args": canon,
            "idempotency_key": key,
            "result": None,
            "error": None,
            "effects": [],
        }
        call = ToolCall(tool, key, unit.id)
        extra: dict[str, Any] = {}
        if wants_key:
            extra["idempotency_key"] = key
        if wants_call:
            extra["call"] = call
        return _Pending(unit, _span_id(), self.now(), body, call, extra)

    def _gate(self, p: _Pending, state: SwitchState) -> bool:
        """Refused: record it and raise :class:`ToolRevoked`. Returns True in shadow mode."""
        tool = p.call.tool
        if not state.ok or not state.tool_enabled(tool):
            reason = (
                f"kill switch unreadable ({state.error}); failing closed"
                if not state.ok
                else "revoked in the tool registry"
            )
            p.body.update(status="refused", error=reason)
            self._submit(p.unit, p.span, p.unit.span_id, p.body, p.started)
            raise ToolRevoked(tool, reason, p.call.idempotency_key)
        return state.shadow

    def _record_shadowed(self, p: _Pending, result: Any) -> None:
        p.body.update(status="shadowed", result=result)
        self._submit(p.unit, p.span, p.unit.span_id, p.body, p.started)

    def _record_failed(self, p: _Pending, exc: BaseException, t0: float) -> None:
        p.body.update(
            status="failed",
            error=f"{type(exc).__name__}: {exc}",
            effects=p.call.effects,
            duration_ms=round((time.perf_counter() - t0) * 1000, 3),
        )
        self._submit(p.unit, p.span, p.unit.span_id, p.body, p.started)

    def _record_executed(
        self,
        p: _Pending,
        result: Any,
        t0: float,
        effects_of: EffectsOf | None,
        call_args: dict[str, Any],
    ) -> None:
        found = list(p.call.effects)
        if effects_of is not None:
            try:
                found.extend(effects_of(call_args, result))
            except Exception as exc:  # an extractor bug must not break the agent: recorded
                p.body["error"] = f"effects extractor failed: {type(exc).__name__}: {exc}"
        p.body.update(
            status="executed",
            result=result,
            effects=found,
            duration_ms=round((time.perf_counter() - t0) * 1000, 3),
        )
        self._submit(p.unit, p.span, p.unit.span_id, p.body, p.started)

    def _guarded_call(
        self,
        tool: str,
        fn: Callable[..., Any],
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        call_args: dict[str, Any],
        wants_key: bool,
        wants_call: bool,
        effects_of: EffectsOf | None,
        shadow_result: Any,
    ) -> Any:
        p = self._begin(tool, call_args, wants_key, wants_call)
        state = self.killswitch.state() if self.killswitch is not None else SwitchState()
        if self._gate(p, state):
            result = _shadow_value(shadow_result, call_args)
            self._record_shadowed(p, result)
            return result
        t0 = time.perf_counter()
        try:
            result = fn(*args, **kwargs, **p.extra)
        except BaseException as exc:
            self._record_failed(p, exc, t0)
            raise
        if inspect.isawaitable(result):
            # a sync-looking callable that returns a coroutine (a wrapper around an async
            # function): nothing has run yet. Refuse instead of recording a coroutine object.
            close = getattr(result, "close", None)
            if callable(close):
                close()
            problem = UsageError(
                f"tool {tool!r} returned an awaitable: guard the `async def` function itself "
                "so the guard can await it"
            )
            self._record_failed(p, problem, t0)
            raise problem
        self._record_executed(p, result, t0, effects_of, call_args)
        return result

    # --- lifecycle -----------------------------------------------------------------------------

    def flush(self) -> bool:
        """Write buffered records now; True when everything was written."""
        return self.writer.flush()

    def close(self) -> None:
        self.writer.close()

    async def aflush(self) -> bool:
        """:meth:`flush` for asyncio code: the sink I/O runs in a worker thread."""
        import asyncio

        return await asyncio.to_thread(self.writer.flush)

    async def aclose(self) -> None:
        """:meth:`close` for asyncio code: the last flush runs in a worker thread."""
        import asyncio

        await asyncio.to_thread(self.writer.close)
