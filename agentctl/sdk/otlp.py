"""agentctl records as OpenTelemetry GenAI spans in OTLP JSON. Standard library only.

Mapping (semantic conventions for GenAI; ``agentctl.*`` attributes carry what they lack):

========== ===================== ==========================================================
record     span name             attributes
========== ===================== ==========================================================
input      ``invoke_agent A``    gen_ai.operation.name=invoke_agent, gen_ai.agent.name,
                                 gen_ai.conversation.id (unit of work), agentctl.input
retrieval  ``retrieval S``       gen_ai.operation.name=retrieval, gen_ai.data_source.id,
                                 agentctl.retrieval.query, agentctl.retrieval.documents
model_call ``chat M``            gen_ai.operation.name=chat, gen_ai.request.model,
                                 gen_ai.response.model, gen_ai.usage.input_tokens/output_tokens,
                                 gen_ai.response.finish_reasons, gen_ai.input.messages,
                                 gen_ai.output.messages, agentctl.prompt.template/.version
action     ``execute_tool T``    gen_ai.operation.name=execute_tool, gen_ai.tool.name,
                                 gen_ai.tool.call.id (action id), gen_ai.tool.call.arguments,
                                 gen_ai.tool.call.result, agentctl.idempotency_key,
                                 agentctl.status, agentctl.effects, error.type
========== ===================== ==========================================================

Every span also has gen_ai.agent.name, gen_ai.conversation.id, agentctl.release_id and
agentctl.schema_version. JSON-valued attributes are JSON-encoded strings.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

SCOPE = "agentctl.sdk"


def _ns(ts: str) -> str:
    dt = datetime.fromisoformat(ts.replace("Z", "+00:00"))
    return str(int(dt.timestamp()) * 1_000_000_000 + dt.microsecond * 1000)


def _value(v: Any) -> dict[str, Any]:
    if isinstance(v, bool):
        return {"boolValue": v}
    if isinstance(v, int):
        return {"intValue": str(v)}
    if isinstance(v, float):
        return {"doubleValue": v}
    if isinstance(v, list) and all(isinstance(x, str) for x in v):
        return {"arrayValue": {"values": [{"stringValue": x} for x in v]}}
    return {"stringValue": v if isinstance(v, str) else json.dumps(v, default=str)}


def _attrs(pairs: dict[str, Any]) -> list[dict[str, Any]]:
    return [{"key": k, "value": _value(v)} for k, v in pairs.items() if v is not None]


def record_to_span(r: dict[str, Any]) -> dict[str, Any]:
    kind = r.get("record_type")
    common = {
        "gen_ai.agent.name": r.get("agent"),
        "gen_ai.conversation.id": r.get("unit_of_work"),
        "agentctl.release_id": r.get("release_id"),
        "agentctl.schema_version": r.get("schema_version"),
    }
    status: dict[str, Any] = {}
    if kind == "action":
        name = f"execute_tool {r.get('tool')}"
        attrs = {
            "gen_ai.operation.name": "execute_tool",
            "gen_ai.tool.name": r.get("tool"),
            "gen_ai.tool.call.id": r.get("action_id"),
            "gen_ai.tool.call.arguments": json.dumps(r.get("args", {}), default=str),
            "gen_ai.tool.call.result": json.dumps(r.get("result"), default=str),
            "agentctl.idempotency_key": r.get("idempotency_key"),
            "agentctl.status": r.get("status"),
            "agentctl.effects": json.dumps(r.get("effects", []), default=str),
            "agentctl.error": r.get("error"),
            "agentctl.duration_ms": r.get("duration_ms"),
        }
        if r.get("status") == "failed":
            attrs["error.type"] = "tool_error"
            status = {"code": 2, "message": str(r.get("error") or "")}
    elif kind == "model_call":
        name = f"chat {r.get('model_requested')}"
        attrs = {
            "gen_ai.operation.name": "chat",
            "gen_ai.request.model": r.get("model_requested"),
            "gen_ai.response.model": r.get("model_answered"),
            "gen_ai.usage.input_tokens": r.get("input_tokens"),
            "gen_ai.usage.output_tokens": r.get("output_tokens"),
            "gen_ai.response.finish_reasons": (
                [r["finish_reason"]] if r.get("finish_reason") else None
            ),
            "gen_ai.input.messages": json.dumps(r.get("input"), default=str),
            "gen_ai.output.messages": json.dumps(r.get("output"), default=str),
            "agentctl.prompt.template": r.get("prompt_template"),
            "agentctl.prompt.version": r.get("prompt_version"),
        }
    elif kind == "retrieval":
        name = f"retrieval {r.get('source')}"
        attrs = {
            "gen_ai.operation.name": "retrieval",
            "gen_ai.data_source.id": r.get("source"),
            "agentctl.retrieval.query": r.get("query"),
            "agentctl.retrieval.documents": json.dumps(r.get("documents", []), default=str),
        }
    else:
        name = f"invoke_agent {r.get('agent')}"
        attrs = {
            "gen_ai.operation.name": "invoke_agent",
            "agentctl.input.channel": r.get("channel"),
            "agentctl.input": json.dumps(r.get("content"), default=str),
        }
    start = _ns(str(r["ts"]))
    duration_ns = int(float(r.get("duration_ms") or 0) * 1_000_000)
    span: dict[str, Any] = {
        "traceId": r.get("trace_id"),
        "spanId": r.get("span_id"),
        "name": name,
        "kind": 1,
        "startTimeUnixNano": start,
        "endTimeUnixNano": str(int(start) + duration_ns),
        "attributes": _attrs({**common, **attrs}),
    }
    if r.get("parent_span_id"):
        span["parentSpanId"] = r["parent_span_id"]
    if status:
        span["status"] = status
    return span


def records_to_otlp(
    records: list[dict[str, Any]], *, service_name: str | None = None
) -> dict[str, Any]:
    """An OTLP JSON ``ExportTraceServiceRequest`` holding one span per record."""
    service = service_name or (records[0].get("agent") if records else None) or "agent"
    return {
        "resourceSpans": [
            {
                "resource": {"attributes": _attrs({"service.name": service})},
                "scopeSpans": [
                    {"scope": {"name": SCOPE}, "spans": [record_to_span(r) for r in records]}
                ],
            }
        ]
    }
