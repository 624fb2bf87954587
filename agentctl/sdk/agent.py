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
import logging
import os
import reprlib
import time
from collections.abc import Awaitable, Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, TypeVar

from agentctl.sdk.keys import canonical, idempotency_key
from agentctl.sdk.killswitch import KillSwitch, Monotonic, SwitchState
from agentctl.sdk.sinks import Sink, Writer

SCHEMA_VERSION = 1
R = TypeVar("R")
_log = logging.getLogger("agentctl.sdk")


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


EffectList = list[dict[str, Any]]
# (call arguments, result) -> effects; may be `async def` for an `async def` tool
EffectsOf = Callable[[dict[str, Any], Any], EffectList | Awaitable[EffectList]]


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


def _collect(
    found: Iterable[Any],
    into: list[dict[str, Any]],
    body: dict[str, Any],
    source: str = "effects extractor returned",
) -> None:
    """The extractor's effects, one by one: when a generator fails part-way, the effects it
    yielded before are kept (they describe what the tool did) with the failure. An item that
    is not an effect is left out and noted in the record's ``error``: written as it is, it
    would make the whole record unreadable, and the executed call would vanish from
    ``actions`` and from rollback."""
    left_out: list[str] = []
    try:
        for item in found:
            effect = _as_effect(item)
            if isinstance(effect, dict):
                into.append(effect)
            else:
                left_out.append(effect)
    finally:  # the items before a failure are noted too
        if left_out:
            _note(
                body,
                f"{source} {len(left_out)} item(s) that are not effects, left out (build "
                f"them with make_effect): {left_out[0]}",
            )


# what the record model reads as true or false (pydantic's words, any case; 0 and 1)
_TRUE = frozenset({"1", "on", "t", "true", "y", "yes"})
_FALSE = frozenset({"0", "off", "f", "false", "n", "no"})


def _as_effect(item: Any) -> dict[str, Any] | str:
    """``item`` as the effect a record carries (a plain dict; ``reversible`` true or false;
    ``details`` a plain dict), or why it is not one: the checks of the record model, so a
    record the SDK writes is one the readers accept."""
    if not isinstance(item, Mapping):
        return f"{type(item).__name__} {reprlib.repr(item)}"
    effect = dict(item)
    for name in ("system", "resource_type", "resource_id", "operation"):
        if not isinstance(effect.get(name), str):
            return f"{name}={reprlib.repr(effect.get(name))} is not a string"
    reversible = effect.get("reversible")
    if isinstance(reversible, str) and reversible.lower() in _TRUE | _FALSE:
        effect["reversible"] = reversible.lower() in _TRUE
    elif isinstance(reversible, int | float) and reversible in (0, 1):  # True and False too
        effect["reversible"] = bool(reversible)
    else:
        return f"reversible={reprlib.repr(reversible)} is not true or false"
    if not isinstance(effect.get("idempotency_key"), str | None):
        return f"idempotency_key={reprlib.repr(effect.get('idempotency_key'))} is not a string"
    details = effect.get("details", {})
    if not isinstance(details, Mapping):
        return f"details={reprlib.repr(details)} is not an object"
    effect["details"] = dict(details)
    return effect


def _declared(p: _Pending) -> list[dict[str, Any]]:
    """The effects the tool declared with ``call.effect()``, checked like an extractor's (its
    arguments are not type-checked when it is called: the tool's work is done by then)."""
    checked: list[dict[str, Any]] = []
    _collect(p.call.effects, checked, p.body, "call.effect() declared")
    return checked


def _unstarted(awaitable: Any) -> bool:
    """A coroutine (``async def``, or a generator-based one) that has not begun: nothing of it
    ran yet."""
    if inspect.iscoroutine(awaitable):
        return inspect.getcoroutinestate(awaitable) == inspect.CORO_CREATED
    if inspect.isgenerator(awaitable):
        return inspect.getgeneratorstate(awaitable) == inspect.GEN_CREATED
    return False


def _note(body: dict[str, Any], text: str) -> None:
    body["error"] = f"{body['error']}; {text}" if body.get("error") else text


def _extractor_error(exc: BaseException) -> str:
    # an extractor bug must not break the agent: it is recorded on the action instead
    return f"effects extractor failed: {type(exc).__name__}: {exc}"


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
        (:meth:`KillSwitch.astate`), and never waits on the sink; its ``effects=`` extractor may
        be ``async def`` too (awaited). A call cancelled while the switch is read is recorded
        ``failed`` (the tool did not run) and the cancellation propagates. Generator functions
        are refused: their body would run after the guard had returned, unguarded and
        unrecorded; so is an ``async def`` extractor on a sync tool (nothing would await it).

        A sync tool that returns an awaitable: a coroutine object has not started, so it is
        closed, recorded ``failed`` and refused with :class:`UsageError`. Any other awaitable
        (a Future from ``loop.run_in_executor``, a Task) may already be doing its work, so the
        call is recorded ``executed`` (rollback treats it as done) with ``result`` a
        ``<pending ...>`` note and ``error`` saying its outcome was not recorded, a warning is
        logged, and the awaitable is returned unchanged: raising instead would hide the outcome
        of work that is already running from the caller. Guard the ``async def`` function
        itself to have the outcome recorded.
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
                    try:
                        state = await ks.astate() if ks is not None else SwitchState()
                    except BaseException as exc:  # CancelledError: the tool did not run
                        self._record_not_run(pending, exc, "before the kill switch was read")
                        raise
                    if self._gate(pending, state):
                        try:
                            result = _shadow_value(shadow_result, call_args)
                            if inspect.isawaitable(result):
                                result = await result
                        except BaseException as exc:  # cancelled too: the tool never runs
                            self._record_shadow_failed(pending, exc)
                            raise
                        self._record_shadowed(pending, result)
                        return result
                    t0 = time.perf_counter()
                    try:
                        result = await fn(*args, **kwargs, **pending.extra)
                    except BaseException as exc:  # CancelledError too: recorded, re-raised
                        self._record_failed(pending, exc, t0)
                        raise
                    if inspect.isawaitable(result):  # returned, not awaited, inside the tool
                        return self._unawaited(
                            pending, tool_name, result, t0, "await it inside the tool"
                        )
                    extracted: list[dict[str, Any]] = []
                    if effects is not None:
                        try:
                            found = effects(call_args, result)
                            if inspect.isawaitable(found):  # an `async def` extractor
                                found = await found
                            _collect(found, extracted, pending.body)
                        except BaseException as exc:  # the tool ran: still recorded executed
                            _note(pending.body, _extractor_error(exc))
                            if not isinstance(exc, Exception):  # cancelled while extracting
                                self._record_executed(pending, result, t0, extracted)
                                raise
                    self._record_executed(pending, result, t0, extracted)
                    return result

                guarded = guarded_async
            else:
                if effects is not None and inspect.iscoroutinefunction(effects):
                    raise UsageError(
                        f"tool {tool_name!r}: the effects= extractor is an `async def` function "
                        "but the tool is not; a sync guard cannot await it (use a plain function, "
                        "or make the tool `async def`)"
                    )

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

    def _record_shadow_failed(self, p: _Pending, exc: BaseException) -> None:
        """In shadow mode the tool never runs; a ``shadow_result`` that raised (or a call
        cancelled while awaiting it) is still a shadowed call, with the error."""
        p.body.update(
            status="shadowed",
            result=None,
            error=f"{type(exc).__name__}: {exc} (computing the shadow result; "
            "the tool did not run)",
        )
        self._submit(p.unit, p.span, p.unit.span_id, p.body, p.started)

    def _record_failed(self, p: _Pending, exc: BaseException, t0: float) -> None:
        p.body.update(
            status="failed",
            error=f"{type(exc).__name__}: {exc}",
            duration_ms=round((time.perf_counter() - t0) * 1000, 3),
        )
        p.body["effects"] = _declared(p)
        self._submit(p.unit, p.span, p.unit.span_id, p.body, p.started)

    def _record_not_run(self, p: _Pending, exc: BaseException, when: str) -> None:
        """The call ended (cancelled, typically) before the tool ran: ``failed``, no effects."""
        import asyncio  # only async guards get here; asyncio is not imported by the SDK

        what = "cancelled" if isinstance(exc, asyncio.CancelledError) else "interrupted"
        p.body.update(
            status="failed",
            error=f"{type(exc).__name__}: {what} {when}; the tool did not run",
        )
        self._submit(p.unit, p.span, p.unit.span_id, p.body, p.started)

    def _record_executed(
        self, p: _Pending, result: Any, t0: float, extracted: list[dict[str, Any]]
    ) -> None:
        p.body.update(
            status="executed",
            result=result,
            duration_ms=round((time.perf_counter() - t0) * 1000, 3),
        )
        p.body["effects"] = [*_declared(p), *extracted]
        self._submit(p.unit, p.span, p.unit.span_id, p.body, p.started)

    def _unawaited(self, p: _Pending, tool: str, result: Any, t0: float, hint: str) -> Any:
        """The tool handed back an awaitable the guard did not await (a sync tool's, or the
        value an ``async def`` tool returned). A coroutine that has not started ran nothing:
        it is closed, the call recorded ``failed`` and refused. Any other awaitable (a Future
        from run_in_executor, a Task, a coroutine already started) may be running its work:
        never "failed, nothing happened"; recorded executed with its outcome unknown, and
        handed back so the caller's await sees the real outcome."""
        if _unstarted(result):
            result.close()
            problem = UsageError(f"tool {tool!r} returned a coroutine: {hint}")
            self._record_failed(p, problem, t0)
            raise problem
        self._record_started(p, result, t0, hint)
        _log.warning(
            "agentctl: tool %r returned a %s the guard cannot await; recorded executed with its "
            "outcome unknown (%s)",
            tool,
            type(result).__qualname__,
            hint,
        )
        return result

    def _record_started(self, p: _Pending, awaitable: Any, t0: float, hint: str) -> None:
        """The tool handed back an awaitable that is not a coroutine (a Future, a Task, ...):
        its work may already be running, so the call is recorded ``executed`` (rollback treats
        it as done); what it will return and change is not known to the guard."""
        kind = f"{type(awaitable).__module__}.{type(awaitable).__qualname__}"
        p.body.update(
            status="executed",
            result=f"<pending {kind}>",
            error=(
                f"the tool returned an awaitable ({kind}) the guard does not await: its work may "
                f"have run; its outcome and any effects it has not declared are not recorded "
                f"({hint})"
            ),
            duration_ms=round((time.perf_counter() - t0) * 1000, 3),
        )
        p.body["effects"] = _declared(p)
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
            try:
                result = _shadow_value(shadow_result, call_args)
            except BaseException as exc:
                self._record_shadow_failed(p, exc)
                raise
            self._record_shadowed(p, result)
            return result
        t0 = time.perf_counter()
        try:
            result = fn(*args, **kwargs, **p.extra)
        except BaseException as exc:
            self._record_failed(p, exc, t0)
            raise
        if inspect.isawaitable(result):
            return self._unawaited(
                p,
                tool,
                result,
                t0,
                "guard the `async def` function itself so the guard can await it",
            )
        extracted: list[dict[str, Any]] = []
        if effects_of is not None:
            try:  # an `async def` extractor was refused when the tool was decorated
                _collect(effects_of(call_args, result), extracted, p.body)  # type: ignore[arg-type]
            except BaseException as exc:  # an extractor bug must not break the agent: recorded
                _note(p.body, _extractor_error(exc))
                if not isinstance(exc, Exception):  # interrupted while extracting: the tool ran
                    self._record_executed(p, result, t0, extracted)
                    raise
        self._record_executed(p, result, t0, extracted)
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
