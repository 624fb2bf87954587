"""SDK fixtures: an agent guarded by the seeded sandbox's SSM parameters, on a fake clock."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from agentctl.aws import Aws
from agentctl.clock import FakeClock
from agentctl.sdk import Agent, LocalJsonlSink, ToolCall, Writer

REGISTRY = "/agents/refund-agent/tools"
MODE = "/agents/refund-agent/mode"


@dataclass
class Payments:
    """The downstream system the refund tool changes: records what really ran."""

    refunds: list[dict[str, Any]] = field(default_factory=list)

    def refund(self, order_id: str, amount: float, key: str) -> dict[str, Any]:
        if any(r["key"] == key for r in self.refunds):  # downstream dedupe on the key
            return next(r for r in self.refunds if r["key"] == key)
        r = {"id": f"re_{len(self.refunds) + 1}", "order": order_id, "amount": amount, "key": key}
        self.refunds.append(r)
        return r


@dataclass
class Rig:
    agent: Agent
    clock: FakeClock
    payments: Payments
    audit: Path
    issue_refund: Any


@pytest.fixture
def rig(seeded: Aws, tmp_path: Path, clock: FakeClock) -> Rig:
    audit = tmp_path / "audit"
    agent = Agent(
        "refund-agent",
        release_id="rel-7",
        writer=Writer(LocalJsonlSink(audit, writer_id="w1"), background=False),
        ssm=seeded.client("ssm"),
        registry_parameter=REGISTRY,
        shadow_parameter=MODE,
        ttl=1.0,
        monotonic=clock.monotonic,
        now=clock.now,
    )
    payments = Payments()

    @agent.tool(shadow_result={"shadow": True})
    def issue_refund(
        order_id: str,
        amount: float,
        currency: str = "EUR",
        *,
        idempotency_key: str,
        call: ToolCall,
    ) -> dict[str, Any]:
        r = payments.refund(order_id, amount, idempotency_key)
        call.effect(
            "payments",
            "refund",
            r["id"],
            "create",
            reversible=True,
            details={"amount": amount, "currency": currency},
        )
        return {"refund_id": r["id"]}

    return Rig(agent, clock, payments, audit, issue_refund)


def window(clock: FakeClock) -> tuple[datetime, datetime]:
    from datetime import timedelta

    now = clock.now()
    return now - timedelta(hours=1), now + timedelta(hours=1)
