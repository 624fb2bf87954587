"""Demo scenes for ``make demo``: a synthetic refund agent guarded by ``agentctl.sdk``.

``agent_runs(demo)`` starts the agent in a background thread against the sandbox's SSM (its tool
registry and shadow flag), writing JSONL to the spec's audit location. It works through tickets,
and release ``rel-13`` has a bad prompt: some refunds exceed the $30 limit. The lead runs
``agentctl contain`` next; ``after_contain(demo)`` then shows the agent refusing within the
kill-switch cache window, lists the wrong refunds with ``agentctl actions --where`` and shows the
decision chain of one of them with ``agentctl trace``.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from agentctl.sdk import Agent, LocalJsonlSink, ToolCall, ToolRevoked, Writer

AGENT = "refund-agent"
# What the tickets ask for, and what the broken prompt makes the agent refund.
AMOUNTS = [12, 25, 48, 18, 75, 22, 64, 9, 41, 27, 55, 15, 33, 19, 88, 24]
LIMIT = 30
TICKET_PAUSE = 0.15  # seconds between tickets
CACHE_TTL = 1.0


@dataclass
class Bot:
    """The running agent and what it saw (shared between the two scenes)."""

    agent: Agent
    audit: Path
    thread: threading.Thread | None = None
    stop: threading.Event = field(default_factory=threading.Event)
    lock: threading.Lock = field(default_factory=threading.Lock)
    executed: list[tuple[float, str, int]] = field(default_factory=list)  # (t, ticket, amount)
    refused: list[tuple[float, str]] = field(default_factory=list)
    progressed: threading.Condition = field(default_factory=threading.Condition)


def _audit_dir(demo: Any) -> Path:
    from agentctl.spec.loader import find_spec, load_agent

    spec = load_agent(AGENT, demo.runbooks)
    if spec.audit is None or spec.audit.is_s3:
        raise RuntimeError(f"{AGENT} needs a local audit location for the demo")
    return Path(spec.audit.resolve(find_spec(AGENT, demo.runbooks).parent))


def _build(demo: Any) -> Bot:
    from agentctl.spec.loader import load_agent

    spec = load_agent(AGENT, demo.runbooks)
    audit = _audit_dir(demo)
    agent = Agent(
        AGENT,
        release_id="rel-13",
        writer=Writer(LocalJsonlSink(audit), flush_interval=0.2),
        ssm=demo.aws.client("ssm"),
        registry_parameter=spec.tool_registry.parameter if spec.tool_registry else None,
        shadow_parameter=spec.shadow_flag.parameter if spec.shadow_flag else None,
        ttl=CACHE_TTL,
    )
    bot = Bot(agent, audit)

    @agent.tool()
    def issue_refund(
        order_id: str, amount: int, currency: str = "USD", *, idempotency_key: str, call: ToolCall
    ) -> dict[str, Any]:
        refund_id = "re_" + idempotency_key[4:16]  # the payments API dedupes on the key
        call.effect(
            "payments",
            "refund",
            refund_id,
            "create",
            reversible=True,
            details={"amount": amount, "currency": currency, "order_id": order_id},
        )
        return {"refund_id": refund_id, "status": "succeeded"}

    def work() -> None:
        n = 0
        while not bot.stop.is_set():
            amount = AMOUNTS[n % len(AMOUNTS)]
            ticket = f"T-{1040 + n}"
            with agent.unit_of_work(
                ticket, input={"ticket": ticket, "text": "refund please"}, channel="sqs"
            ):
                agent.record_retrieval(
                    source="refund-policy",
                    query="refund limit without approval",
                    documents=[{"id": "policy-7", "score": 0.82, "content": "max $30 refund"}],
                )
                agent.record_model_call(
                    model_requested="anthropic.claude-sonnet",
                    model_answered="claude-sonnet-4-5",
                    prompt_template="refund-decision",
                    prompt_version="v13",
                    output={"decision": "refund", "amount": amount},
                    input_tokens=1830,
                    output_tokens=42,
                    finish_reason="tool_use",
                )
                try:
                    issue_refund(f"o-{5000 + n}", amount)
                    with bot.lock:
                        bot.executed.append((time.time(), ticket, amount))
                except ToolRevoked:
                    with bot.lock:
                        bot.refused.append((time.time(), ticket))
                        if len(bot.refused) >= 3:
                            bot.stop.set()  # a real agent would back off; the demo stops
            with bot.progressed:
                bot.progressed.notify_all()
            n += 1
            bot.stop.wait(TICKET_PAUSE)

    bot.thread = threading.Thread(target=work, name="demo-refund-agent", daemon=True)
    return bot


_BOTS: dict[int, Bot] = {}


def agent_runs(demo: Any) -> None:
    """Start the synthetic refund agent; return once it has made a few (partly wrong) refunds."""
    bot = _build(demo)
    _BOTS[id(demo)] = bot
    demo.say(
        f"The refund agent runs release rel-13 through agentctl.sdk: every refund is guarded by "
        f"the kill switch (cache {CACHE_TTL:g} s) and recorded in {bot.audit}"
    )
    assert bot.thread is not None
    bot.thread.start()
    with bot.progressed:
        bot.progressed.wait_for(lambda: len(bot.executed) >= 8, timeout=10)
    with bot.lock:
        wrong = [a for _, _, a in bot.executed if a > LIMIT]
        print(
            f"{len(bot.executed)} refunds so far, {len(wrong)} over the ${LIMIT} limit "
            f"({', '.join(f'${a}' for a in wrong)}); the agent keeps going...",
            flush=True,
        )


def after_contain(demo: Any) -> None:
    """After ``agentctl contain``: the agent refuses, then ``actions`` and ``trace`` explain."""
    bot = _BOTS.pop(id(demo), None)
    if bot is None:
        raise RuntimeError("run agent_runs(demo) before after_contain(demo)")
    demo.say("The running agent picks up the revoked tool registry within its cache window")
    with bot.progressed:
        bot.progressed.wait_for(lambda: bool(bot.refused), timeout=5 + CACHE_TTL)
    bot.stop.set()
    if bot.thread is not None:
        bot.thread.join(timeout=5)
    bot.agent.close()
    changed_at = _registry_changed_at(demo)
    with bot.lock:
        if bot.refused and changed_at is not None:
            first = bot.refused[0][0]
            after = [t for t, _, _ in bot.executed if t > changed_at]
            print(
                f"`contain` changed the tool registry; the agent's first refused call came "
                f"{first - changed_at:.1f} s later (cache {CACHE_TTL:g} s); "
                f"{len(after)} refunds executed in between, {len(bot.refused)} calls refused",
                flush=True,
            )
        else:
            print("the agent never saw the revocation: check the tool registry", flush=True)
    demo.say("Which refunds broke the $30 limit? (the on-call's first question)")
    demo.run("actions", AGENT, "--since", "15m", "--where", f"args.amount > {LIMIT}")
    demo.run("actions", AGENT, "--since", "15m", "--where", "status = 'refused'", "--count")
    from datetime import UTC, datetime, timedelta

    from agentctl.trace.query import iter_actions

    now = datetime.now(UTC)
    wrong = list(
        iter_actions(
            str(bot.audit),
            AGENT,
            now - timedelta(minutes=15),
            now + timedelta(minutes=1),
            where=f"args.amount > {LIMIT} and status = 'executed'",
        )
    )
    if wrong:
        demo.say("Why did it refund that much? The decision chain of one wrong refund")
        demo.run("trace", wrong[-1].action_id)


def _registry_changed_at(demo: Any) -> float | None:
    """When the tool registry was last written (by `contain`), as a Unix time."""
    from agentctl.spec.loader import load_agent

    spec = load_agent(AGENT, demo.runbooks)
    if spec.tool_registry is None:
        return None
    param = demo.aws.client("ssm").get_parameter(Name=spec.tool_registry.parameter)["Parameter"]
    return float(param["LastModifiedDate"].timestamp())
