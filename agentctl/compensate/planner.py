"""Plan compensations from action records: one item per original action, per the tool's spec.

Input is any iterable of action records (``agentctl.trace.records.ActionRecord`` or anything with
the same attributes, see :class:`ActionLike`). Only actions that ran count: ``executed``, and
``failed`` ones that list effects (a tool that raised after changing something). Refused and
shadowed actions changed nothing. The same idempotency key seen twice (an agent retry the
downstream deduplicated) is one item.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

from agentctl.compensate.ledger import (
    LedgerRow,
    LedgerStatus,
    compensation_key,
    dispatch_key,
)
from agentctl.compensate.payload import canonical, lookup, payload_hash, render_json
from agentctl.errors import BadInputError
from agentctl.spec.models import AgentSpec, Tool
from agentctl.spec.release import Compensation, Mitigation

RAN = frozenset({"executed", "failed"})


class ActionLike(Protocol):
    agent: str
    ts: datetime
    tool: str
    args: dict[str, Any]
    result: Any
    status: Any
    idempotency_key: str
    effects: list[Any]
    action_id: str
    trace_id: str


@dataclass
class PlanProblem:
    action_id: str
    tool: str
    message: str

    def to_dict(self) -> dict[str, str]:
        return {"action_id": self.action_id, "tool": self.tool, "message": self.message}


@dataclass
class ToolSummary:
    tool: str
    noun: str
    what: str  # "compensation" or "mitigation"
    target: str
    count: int = 0
    amount: float = 0.0
    has_amount: bool = False
    currency: str = ""

    def phrase(self) -> str:
        verb = "to reverse" if self.what == "compensation" else "to follow up"
        total = f", {self.currency}{self.amount:,.2f}".replace(".00", "") if self.has_amount else ""
        return f"{self.count} {self.noun}{total} {verb}"

    def to_dict(self) -> dict[str, Any]:
        return {
            "tool": self.tool,
            "noun": self.noun,
            "what": self.what,
            "target": self.target,
            "count": self.count,
            "amount": round(self.amount, 2) if self.has_amount else None,
            "currency": self.currency,
        }


@dataclass
class CompensationPlan:
    agent: str
    since: datetime | None = None
    until: datetime | None = None
    where: str | None = None
    compensations: list[LedgerRow] = field(default_factory=list)
    mitigations: list[LedgerRow] = field(default_factory=list)
    problems: list[PlanProblem] = field(default_factory=list)
    summaries: dict[str, ToolSummary] = field(default_factory=dict)
    seen: int = 0  # action records read
    not_run: int = 0  # refused / shadowed: nothing to undo
    read_only: int = 0  # tools without side effects
    duplicates: int = 0  # same idempotency key again

    def headline(self) -> str:
        parts = [s.phrase() for s in self.summaries.values() if s.count]
        return "; ".join(parts) if parts else "nothing to compensate"

    def to_dict(self) -> dict[str, Any]:
        return {
            "agent": self.agent,
            "since": self.since.isoformat() if self.since else None,
            "until": self.until.isoformat() if self.until else None,
            "where": self.where,
            "headline": self.headline(),
            "actions_read": self.seen,
            "compensations": len(self.compensations),
            "mitigations": len(self.mitigations),
            "not_run": self.not_run,
            "read_only": self.read_only,
            "duplicates": self.duplicates,
            "per_tool": [s.to_dict() for s in self.summaries.values()],
            "problems": [p.to_dict() for p in self.problems],
        }


def _dump(value: Any) -> Any:
    if hasattr(value, "model_dump"):
        return value.model_dump(mode="json")
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, list):
        return [_dump(v) for v in value]
    if isinstance(value, dict):
        return {k: _dump(v) for k, v in value.items()}
    return value


def _status(action: ActionLike) -> str:
    status = action.status
    return str(getattr(status, "value", status))


def variables(agent: str, action: ActionLike, key: str) -> dict[str, Any]:
    """What a payload template sees. Everything here is data."""
    record = _dump(action) if hasattr(action, "model_dump") else None
    if not isinstance(record, dict):
        record = {
            "agent": action.agent,
            "ts": action.ts.isoformat(),
            "tool": action.tool,
            "args": _dump(action.args),
            "result": _dump(action.result),
            "status": _status(action),
            "idempotency_key": action.idempotency_key,
            "effects": _dump(action.effects),
            "action_id": action.action_id,
            "trace_id": action.trace_id,
        }
    return {
        "action": record,
        "args": record.get("args") or {},
        "result": record.get("result"),
        "effects": record.get("effects") or [],
        "agent": agent,
        "tool": action.tool,
        "idempotency_key": action.idempotency_key,
        "compensation_key": dispatch_key(key),
    }


def plan_compensations(
    spec: AgentSpec,
    actions: Iterable[ActionLike],
    *,
    since: datetime | None = None,
    until: datetime | None = None,
    where: str | None = None,
    incident_id: str | None = None,
) -> CompensationPlan:
    tools = {t.name: t for t in spec.tools}
    plan = CompensationPlan(agent=spec.name, since=since, until=until, where=where)
    keys: set[str] = set()
    for action in actions:
        plan.seen += 1
        tool = tools.get(action.tool)
        if tool is None:
            plan.problems.append(
                PlanProblem(action.action_id, action.tool, "tool not in the spec: not compensated")
            )
            continue
        if not tool.side_effects:
            plan.read_only += 1
            continue
        status = _status(action)
        if status not in RAN or (status == "failed" and not action.effects):
            plan.not_run += 1
            continue
        key = compensation_key(spec.name, tool.name, action.idempotency_key)
        if key in keys:
            plan.duplicates += 1
            continue
        keys.add(key)
        row = _row(spec.name, tool, action, key, incident_id, plan)
        if row is None:
            continue
        if row.kind == "mitigation":
            plan.mitigations.append(row)
        else:
            plan.compensations.append(row)
    return plan


def _summary(plan: CompensationPlan, tool: Tool) -> ToolSummary:
    summary = plan.summaries.get(tool.name)
    if summary is None:
        how: Compensation | Mitigation | None = tool.compensation or tool.mitigation
        assert how is not None
        if tool.compensation is not None:
            what, target = "compensation", _target_text(tool.compensation)
        else:
            assert tool.mitigation is not None
            what, target = "mitigation", tool.mitigation.kind.value
        summary = ToolSummary(
            tool=tool.name,
            noun=how.noun or f"{tool.name} actions",
            what=what,
            target=target,
            currency=how.currency,
        )
        plan.summaries[tool.name] = summary
    return summary


def _target_text(comp: Compensation) -> str:
    if comp.sqs is not None:
        return f"sqs {comp.sqs.queue}"
    if comp.events is not None:
        return f"events {comp.events.bus}/{comp.events.detail_type}"
    if comp.lambda_ is not None:
        return f"lambda {comp.lambda_.function}"
    if comp.http is not None:
        return f"http {comp.http.method} {comp.http.url}"
    if comp.python is not None:
        return f"python {comp.python.entry_point}"
    return ""


def _row(
    agent: str,
    tool: Tool,
    action: ActionLike,
    key: str,
    incident_id: str | None,
    plan: CompensationPlan,
) -> LedgerRow | None:
    vars_ = variables(agent, action, key)
    how: Compensation | Mitigation | None = tool.compensation or tool.mitigation
    assert how is not None
    try:
        if isinstance(how, Compensation):
            kind = how.kind.value
            if how.payload is not None:
                payload: Any = render_json(how.payload, vars_)
            else:
                payload = {
                    k: vars_["action"].get(k)
                    for k in ("action_id", "tool", "args", "result", "effects", "idempotency_key")
                }
                payload["compensation_key"] = vars_["compensation_key"]
            status = LedgerStatus.PENDING
        else:
            kind = "mitigation"
            details = render_json(how.details, vars_) if how.details is not None else None
            payload = {
                "mitigation": how.kind.value,
                "description": how.description,
                "details": details,
            }
            status = LedgerStatus.RECORDED
    except BadInputError as exc:
        plan.problems.append(PlanProblem(action.action_id, tool.name, exc.message))
        return None
    amount_value = lookup(vars_, how.amount) if how.amount else None
    amount = (
        float(amount_value)
        if isinstance(amount_value, int | float) and not isinstance(amount_value, bool)
        else None
    )
    summary = _summary(plan, tool)
    summary.count += 1
    if how.amount:
        summary.has_amount = True
        summary.amount += amount or 0.0
    text = canonical(payload)
    return LedgerRow(
        key=key,
        agent=agent,
        tool=tool.name,
        kind=kind,
        action_key=action.idempotency_key,
        action_id=action.action_id,
        dispatch_key=dispatch_key(key),
        payload=text,
        payload_hash=payload_hash(payload),
        status=status,
        incident_id=incident_id,
        action_ts=action.ts.isoformat(),
        amount=amount,
    )
