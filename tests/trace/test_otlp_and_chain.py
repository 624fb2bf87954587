"""OTLP JSON import round trip, foreign GenAI spans, and the decision chain of one action."""

from __future__ import annotations

import gzip
import json
import os
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from agentctl.clock import FakeClock
from agentctl.sdk import Agent, FanOutSink, LocalJsonlSink, OtlpJsonSink, ToolCall, Writer
from agentctl.sdk.keys import idempotency_key
from agentctl.trace.chain import ActionNotFoundError, decision_chain, find_actions
from agentctl.trace.query import iter_actions
from agentctl.trace.scan import ScanStats

ENGINES = ["python", "duckdb"]


def run_agent(clock: FakeClock, *sinks: Any) -> None:
    agent = Agent(
        "refund-agent",
        release_id="rel-7",
        now=clock.now,
        writer=Writer(FanOutSink(*sinks), background=False),
    )

    @agent.tool()
    def issue_refund(order_id: str, amount: int, *, call: ToolCall) -> dict[str, str]:
        call.effect(
            "payments",
            "refund",
            f"re_{order_id}",
            "create",
            reversible=True,
            details={"amount": amount},
        )
        return {"refund_id": f"re_{order_id}"}

    for n in range(3):
        with agent.unit_of_work(
            f"T-{n}", input={"ticket": f"please refund order {n}"}, channel="sqs"
        ):
            clock.advance(1)
            agent.record_retrieval(
                source="policies", query="refund policy", documents=[{"id": "pol-1", "score": 0.9}]
            )
            clock.advance(1)
            agent.record_model_call(
                model_requested="claude-x",
                model_answered="claude-x-1025",
                prompt_template="refund",
                prompt_version="v12",
                output={"decision": "refund"},
                input_tokens=900,
                output_tokens=40,
                finish_reason="stop",
            )
            clock.advance(1)
            issue_refund(f"o-{n}", 10 * (n + 1))
    assert agent.flush()


@pytest.mark.parametrize("engine", ENGINES)
def test_otlp_export_reads_back_as_the_same_records(
    tmp_path: Path, clock: FakeClock, engine: str
) -> None:
    run_agent(clock, LocalJsonlSink(tmp_path / "jsonl"), OtlpJsonSink(tmp_path / "otlp"))
    window = (clock.now() - timedelta(hours=1), clock.now() + timedelta(hours=1))
    stats = ScanStats()
    from_jsonl = list(iter_actions(str(tmp_path / "jsonl"), "refund-agent", *window, engine=engine))
    from_otlp = list(
        iter_actions(str(tmp_path / "otlp"), "refund-agent", *window, stats=stats, engine=engine)
    )
    assert len(from_otlp) == 3 and stats.bad_total == 0
    assert [r.model_dump() for r in from_otlp] == [r.model_dump() for r in from_jsonl]

    action = from_otlp[1]
    chain_otlp = decision_chain(str(tmp_path / "otlp"), action, engine=engine)
    chain_jsonl = decision_chain(str(tmp_path / "jsonl"), action, engine=engine)
    assert [r.record_type for r in chain_otlp.records] == [
        "input",
        "retrieval",
        "model_call",
        "action",
    ]
    assert [r.model_dump() for r in chain_otlp.records] == [
        r.model_dump() for r in chain_jsonl.records
    ]


def foreign_export(tmp: Path) -> Path:
    """A file as a third-party GenAI instrumentation would write it: no agentctl attributes."""

    def attr(k: str, v: Any) -> dict[str, Any]:
        return {
            "key": k,
            "value": {"intValue": str(v)} if isinstance(v, int) else {"stringValue": v},
        }

    t = "5b8efff798038103d269b633813fc60c"
    base = 1_795_482_000_000_000_000  # 2026-11-24T01:00:00Z
    spans = [
        {
            "traceId": t,
            "spanId": "a000000000000001",
            "name": "invoke_agent support-bot",
            "startTimeUnixNano": str(base),
            "endTimeUnixNano": str(base + 5_000_000_000),
            "attributes": [
                attr("gen_ai.operation.name", "invoke_agent"),
                attr("gen_ai.agent.name", "support-bot"),
                attr("gen_ai.conversation.id", "conv-9"),
            ],
        },
        {
            "traceId": t,
            "spanId": "a000000000000002",
            "parentSpanId": "a000000000000001",
            "name": "chat gpt-x",
            "startTimeUnixNano": str(base + 1_000_000_000),
            "attributes": [
                attr("gen_ai.operation.name", "chat"),
                attr("gen_ai.request.model", "gpt-x"),
                attr("gen_ai.response.model", "gpt-x-2026-09"),
                attr("gen_ai.usage.input_tokens", 120),
            ],
        },
        {
            "traceId": t,
            "spanId": "a000000000000003",
            "parentSpanId": "a000000000000001",
            "name": "execute_tool close_ticket",
            "startTimeUnixNano": str(base + 2_000_000_000),
            "endTimeUnixNano": str(base + 2_500_000_000),
            "status": {"code": 2, "message": "ticket locked"},
            "attributes": [
                attr("gen_ai.operation.name", "execute_tool"),
                attr("gen_ai.tool.name", "close_ticket"),
                attr("gen_ai.tool.call.id", "call_77"),
                attr("gen_ai.tool.call.arguments", '{"ticket": "T-9"}'),
            ],
        },
        {
            "traceId": t,
            "spanId": "a000000000000004",
            "parentSpanId": "a000000000000003",
            "name": "POST /tickets",
            "startTimeUnixNano": str(base + 2_100_000_000),
            "attributes": [attr("http.request.method", "POST")],
        },
    ]
    doc = {
        "resourceSpans": [
            {
                "resource": {"attributes": [attr("service.name", "svc")]},
                "scopeSpans": [{"spans": spans}],
            }
        ]
    }
    part = tmp / "dt=2026-11-24"
    part.mkdir(parents=True)
    path = part / "export.otlp.json"
    # the collector file exporter writes one request per line; a corrupt line is counted
    path.write_text(json.dumps(doc) + "\n{truncated\n")
    return path


@pytest.mark.parametrize("engine", ENGINES)
def test_foreign_genai_spans_are_normalised_with_documented_defaults(
    tmp_path: Path, engine: str
) -> None:
    foreign_export(tmp_path)
    stats = ScanStats()
    [action] = find_actions(str(tmp_path), "call_77", stats=stats, engine=engine)
    assert action.agent == "support-bot"  # inherited from the invoke_agent span
    assert action.unit_of_work == "conv-9"
    assert action.status == "failed" and action.error == "ticket locked"
    assert action.args == {"ticket": "T-9"} and action.duration_ms == 500.0
    assert action.idempotency_key == idempotency_key(
        "support-bot", "conv-9", "close_ticket", {"ticket": "T-9"}
    )
    assert stats.bad["not_json"] == 1 and stats.skipped == 1  # the HTTP span is not a record

    chain = decision_chain(str(tmp_path), action, engine=engine)
    [model] = [r for r in chain.records if r.record_type == "model_call"]
    assert (model.model_requested, model.model_answered) == ("gpt-x", "gpt-x-2026-09")


@pytest.mark.parametrize("engine", ENGINES)
def test_a_gzip_otlp_export_is_read_and_one_cut_short_keeps_what_came_before(
    tmp_path: Path, engine: str
) -> None:
    # a collector's file exporter may gzip its output: export.otlp.json.gz
    plain = foreign_export(tmp_path)
    whole = plain.read_bytes()
    plain.unlink()
    (plain.parent / "export.otlp.json.gz").write_bytes(gzip.compress(whole))
    stats = ScanStats()
    [action] = find_actions(str(tmp_path), "call_77", stats=stats, engine=engine)
    assert action.agent == "support-bot" and action.status == "failed"
    assert stats.bad["not_json"] == 1 and stats.skipped == 1

    # a second export whose writer died in its second request: the first one is kept
    first = whole.split(b"\n")[0].replace(b"support-bot", b"support-bot-2")
    cut = gzip.compress(first + b"\n" + os.urandom(100_000).hex().encode() + b"\n")
    (plain.parent / "late.otlp.json.gz").write_bytes(cut[: len(cut) * 9 // 10])
    stats = ScanStats()
    got = find_actions(str(tmp_path), "call_77", stats=stats, engine=engine)
    assert dict(stats.bad) == {"not_json": 1, "truncated_gzip": 1}
    assert sorted(a.agent for a in got) == ["support-bot", "support-bot-2"]
    window = (datetime(2026, 11, 24, tzinfo=UTC), datetime(2026, 11, 25, tzinfo=UTC))
    listed = list(iter_actions(str(tmp_path), "support-bot", *window, engine=engine))
    assert [a.tool for a in listed] == ["close_ticket"]


@pytest.mark.parametrize("engine", ENGINES)
def test_lookup_by_idempotency_key_finds_every_attempt(
    tmp_path: Path, clock: FakeClock, engine: str
) -> None:
    agent = Agent(
        "refund-agent", now=clock.now, writer=Writer(LocalJsonlSink(tmp_path), background=False)
    )
    attempts = {"n": 0}

    @agent.tool()
    def issue_refund(order_id: str) -> str:
        attempts["n"] += 1
        if attempts["n"] == 1:
            raise TimeoutError("gateway timeout")
        return "ok"

    with agent.unit_of_work("T-1"):
        with pytest.raises(TimeoutError):
            issue_refund("o-1")
        clock.advance(2)
        issue_refund("o-1")
    agent.flush()
    key = idempotency_key("refund-agent", "T-1", "issue_refund", {"order_id": "o-1"})
    found = find_actions(str(tmp_path), key, engine=engine)
    assert [a.status for a in found] == ["failed", "executed"]
    assert find_actions(str(tmp_path), found[1].action_id, engine=engine) == [found[1]]
    with pytest.raises(ActionNotFoundError):
        find_actions(str(tmp_path), "act-missing", engine=engine)


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize(
    "ts",
    [datetime(1, 1, 1, tzinfo=UTC), datetime(9999, 12, 31, 23, 59, 59, 999999, tzinfo=UTC)],
)
def test_the_chain_of_an_action_in_the_first_or_last_day_a_timestamp_holds(
    tmp_path: Path, engine: str, ts: datetime
) -> None:
    # the chain reads the day before and a second after: past the ends, an OverflowError was
    # an internal error instead of the chain
    from tests.trace.helpers import action, write

    write(tmp_path, [action(1, ts=ts)])
    [found] = find_actions(str(tmp_path), "act-000001", engine=engine)
    chain = decision_chain(str(tmp_path), found, engine=engine)
    assert chain.action.ts == ts and [r.span_id for r in chain.records] == [found.span_id]
