"""OTLP JSON exports of OpenTelemetry GenAI spans, normalised to agentctl records.

Accepts one ``ExportTraceServiceRequest`` per file (``{"resourceSpans": [...]}``) or one per line
(what the collector's file exporter writes). Spans are mapped by ``gen_ai.operation.name`` (or the
first word of the span name): ``invoke_agent`` → input, ``chat`` / ``text_completion`` /
``generate_content`` → model_call, ``retrieval`` → retrieval, ``execute_tool`` → action. Other
spans (HTTP, DB, ...) are not decision records: they are counted as ``skipped``, not as bad.

What a foreign span lacks is filled in, and the rule is fixed: agent = ``gen_ai.agent.name``, else
the nearest ``invoke_agent`` ancestor's, else the resource's ``service.name``; unit of work =
``gen_ai.conversation.id``, else the ancestor's, else the trace id; action id =
``gen_ai.tool.call.id``, else the span id; idempotency key = ``agentctl.idempotency_key``, else
derived from (agent, unit of work, tool, arguments) with the SDK's rule; status =
``agentctl.status``, else ``failed`` when the span status is ERROR, else ``executed``; effects =
``agentctl.effects``, else none.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

from agentctl.sdk.keys import idempotency_key
from agentctl.trace.scan import ScanStats
from agentctl.trace.schema import SCHEMA_VERSION

MODEL_OPS = {"chat", "text_completion", "generate_content"}


def _value(v: dict[str, Any]) -> Any:
    if "stringValue" in v:
        return v["stringValue"]
    if "intValue" in v:
        return int(v["intValue"])
    if "doubleValue" in v:
        return float(v["doubleValue"])
    if "boolValue" in v:
        return bool(v["boolValue"])
    if "arrayValue" in v:
        return [_value(x) for x in v["arrayValue"].get("values", [])]
    if "kvlistValue" in v:
        return {kv["key"]: _value(kv.get("value", {})) for kv in v["kvlistValue"].get("values", [])}
    return None


def _attrs(items: list[dict[str, Any]] | None) -> dict[str, Any]:
    return {a["key"]: _value(a.get("value", {})) for a in items or []}


def _json(text: Any, default: Any) -> Any:
    if not isinstance(text, str):
        return default if text is None else text
    try:
        return json.loads(text)
    except ValueError:
        return text


def _ts(nanos: Any) -> str:
    n = int(nanos)
    dt = datetime.fromtimestamp(n // 1_000_000_000, tz=UTC).replace(
        microsecond=(n % 1_000_000_000) // 1000
    )
    return dt.isoformat().replace("+00:00", "Z")


def documents(text: str) -> Iterator[tuple[int, Any]]:
    """(line, decoded document) for a whole-file or one-per-line OTLP JSON export."""
    try:
        yield 1, json.loads(text)
        return
    except ValueError:
        pass
    for number, line in enumerate(text.splitlines(), start=1):
        if line.strip():
            try:
                yield number, json.loads(line)
            except ValueError as exc:
                yield number, exc


def normalise(name: str, text: str, stats: ScanStats) -> list[dict[str, Any]]:
    """The records (as JSON objects) in one OTLP JSON file; bad input counted in ``stats``."""
    out: list[dict[str, Any]] = []
    for number, doc in documents(text):
        if isinstance(doc, ValueError):
            stats.add_bad(name, number, "not_json", str(doc))
            continue
        if not isinstance(doc, dict) or not isinstance(doc.get("resourceSpans"), list):
            stats.add_bad(name, number, "not_otlp", "no resourceSpans")
            continue
        for rs in doc["resourceSpans"]:
            resource = _attrs((rs.get("resource") or {}).get("attributes"))
            spans = [s for ss in rs.get("scopeSpans", []) for s in ss.get("spans", [])]
            by_id: dict[Any, Any] = {s.get("spanId"): s for s in spans}
            for span in spans:
                try:
                    record = _record(span, by_id, resource)
                except (KeyError, TypeError, ValueError) as exc:
                    stats.add_bad(name, number, "invalid", f"span {span.get('spanId')}: {exc}")
                    continue
                if record is None:
                    stats.skipped += 1
                else:
                    out.append(record)
    return out


def _inherited(span: dict[str, Any], by_id: dict[Any, Any], key: str) -> Any:
    seen = 0
    cur = by_id.get(span.get("parentSpanId"))
    while cur is not None and seen < 64:
        value = _attrs(cur.get("attributes")).get(key)
        if value is not None:
            return value
        cur = by_id.get(cur.get("parentSpanId"))
        seen += 1
    return None


def _record(
    span: dict[str, Any], by_id: dict[str, Any], resource: dict[str, Any]
) -> dict[str, Any] | None:
    a = _attrs(span.get("attributes"))
    op = a.get("gen_ai.operation.name") or str(span.get("name", "")).split(" ")[0]
    if op not in MODEL_OPS | {"invoke_agent", "execute_tool", "retrieval"}:
        return None
    trace_id, span_id = span["traceId"], span["spanId"]
    if not trace_id or not span_id:
        raise ValueError("span without traceId/spanId")
    agent = (
        a.get("gen_ai.agent.name")
        or _inherited(span, by_id, "gen_ai.agent.name")
        or resource.get("service.name")
    )
    if not agent:
        raise ValueError("no gen_ai.agent.name and no service.name")
    unit = (
        a.get("gen_ai.conversation.id")
        or _inherited(span, by_id, "gen_ai.conversation.id")
        or trace_id
    )
    base: dict[str, Any] = {
        "schema_version": int(a.get("agentctl.schema_version") or SCHEMA_VERSION),
        "agent": str(agent),
        "release_id": a.get("agentctl.release_id"),
        "trace_id": trace_id,
        "span_id": span_id,
        "parent_span_id": span.get("parentSpanId") or None,
        "ts": _ts(span["startTimeUnixNano"]),
        "unit_of_work": str(unit),
    }
    if op == "execute_tool":
        tool = a.get("gen_ai.tool.name") or str(span.get("name", "")).partition(" ")[2]
        if not tool:
            raise ValueError("execute_tool span without gen_ai.tool.name")
        args = _json(a.get("gen_ai.tool.call.arguments"), {})
        if not isinstance(args, dict):
            args = {"value": args}
        failed = (span.get("status") or {}).get("code") in (2, "STATUS_CODE_ERROR")
        start, end = int(span["startTimeUnixNano"]), int(span.get("endTimeUnixNano") or 0)
        return base | {
            "record_type": "action",
            "action_id": a.get("gen_ai.tool.call.id") or span_id,
            "tool": tool,
            "args": args,
            "result": _json(a.get("gen_ai.tool.call.result"), None),
            "status": a.get("agentctl.status") or ("failed" if failed else "executed"),
            "error": a.get("agentctl.error")
            or ((span.get("status") or {}).get("message") if failed else None),
            "idempotency_key": a.get("agentctl.idempotency_key")
            or idempotency_key(str(agent), str(unit), tool, args),
            "effects": _json(a.get("agentctl.effects"), []),
            "duration_ms": a.get("agentctl.duration_ms")
            or (round((end - start) / 1e6, 3) if end >= start else None),
        }
    if op in MODEL_OPS:
        reasons = a.get("gen_ai.response.finish_reasons")
        return base | {
            "record_type": "model_call",
            "model_requested": a.get("gen_ai.request.model") or "unknown",
            "model_answered": a.get("gen_ai.response.model"),
            "prompt_template": a.get("agentctl.prompt.template"),
            "prompt_version": a.get("agentctl.prompt.version"),
            "input": _json(a.get("gen_ai.input.messages"), None),
            "output": _json(a.get("gen_ai.output.messages"), None),
            "input_tokens": a.get("gen_ai.usage.input_tokens"),
            "output_tokens": a.get("gen_ai.usage.output_tokens"),
            "finish_reason": reasons[0] if isinstance(reasons, list) and reasons else None,
        }
    if op == "retrieval":
        return base | {
            "record_type": "retrieval",
            "source": a.get("gen_ai.data_source.id") or "unknown",
            "query": a.get("agentctl.retrieval.query"),
            "documents": _json(a.get("agentctl.retrieval.documents"), []),
        }
    return base | {
        "record_type": "input",
        "channel": a.get("agentctl.input.channel"),
        "content": _json(a.get("agentctl.input") or a.get("gen_ai.input.messages"), None),
    }
