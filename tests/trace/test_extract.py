"""Effects derived from the spec's per-tool extractors for action records that list none: the pure
extraction, then what `agentctl actions`, `agentctl trace` and rollback read."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from agentctl.aws import Aws
from agentctl.compensate.rollback import RollbackOptions
from agentctl.compensate.source import load_actions
from agentctl.errors import ExitCode, SpecError
from agentctl.ops import Agentctl
from agentctl.spec.loader import parse_spec
from agentctl.spec.models import AgentSpec
from agentctl.trace.extract import Extraction, ExtractStats
from agentctl.trace.records import ActionRecord
from agentctl.trace.service import Traces
from tests.trace.helpers import T0, action, write

SPEC = """version: 1
name: refund-agent
owner: payments
role: refund-agent-role
tools:
  - name: lookup_order
    side_effects: false
  - name: issue_refund
    side_effects: true
    mitigation: {kind: flag, description: check it}
    effects:
      - system: payments
        resource_type: refund
        resource_id: result.refund.id
        operation: create
        reversible: true
        details: {amount: args.amount, currency: result.refund.currency}
      - system: orders
        resource_type: order
        resource_id: args.order_id
        operation: update
        reversible: true
        idempotency_key: result.order_key
audit: {location: ../audit/refund-agent}
"""

WINDOW = (T0, T0 + timedelta(days=1))


def spec() -> AgentSpec:
    return parse_spec(SPEC, "refund-agent.yaml")


def bare(n: int, **over: Any) -> ActionRecord:
    """An action as an agent without the SDK writes it: no effects."""
    fields: dict[str, Any] = {
        "args": {"order_id": f"o-{n}", "amount": n * 5},
        "result": {"refund": {"id": f"re_{n}", "currency": "EUR"}, "order_key": f"ok-{n}"},
        "effects": [],
    }
    fields.update(over)
    return action(n, **fields)


def effects_of(record: ActionRecord) -> list[dict[str, Any]]:
    return [e.model_dump(mode="json") for e in record.effects]


# -- the pure extraction -------------------------------------------------------------------------


def test_effects_are_read_from_args_and_result_and_marked_derived() -> None:
    derive = Extraction(spec())
    got = derive(bare(3))
    assert effects_of(got) == [
        {
            "system": "payments",
            "resource_type": "refund",
            "resource_id": "re_3",
            "operation": "create",
            "reversible": True,
            "idempotency_key": got.idempotency_key,  # the action's, by default
            "details": {"amount": 15, "currency": "EUR"},
            "derived": True,
        },
        {
            "system": "orders",
            "resource_type": "order",
            "resource_id": "o-3",
            "operation": "update",
            "reversible": True,
            "idempotency_key": "ok-3",  # declared path
            "details": {},
            "derived": True,
        },
    ]
    assert derive.stats.to_dict() | {"missing_by_path": [], "examples": []} == {
        "candidates": 1,
        "derived_actions": 1,
        "effects": 2,
        "missing": 0,
        "missing_by_path": [],
        "examples": [],
    }


def test_recorded_effects_are_left_exactly_as_they_are() -> None:
    recorded = action(4)  # the SDK wrote an effect
    derive = Extraction(spec())
    assert derive(recorded) is recorded
    assert "derived" not in effects_of(recorded)[0]
    assert derive.stats.candidates == 0


@pytest.mark.parametrize("status", ["failed", "refused", "shadowed"])
def test_only_executed_actions_get_derived_effects(status: str) -> None:
    record = bare(5, status=status)
    derive = Extraction(spec())
    assert derive(record) is record and record.effects == []
    assert derive.stats.candidates == 0


def test_tools_without_extractors_and_agents_without_a_spec_are_untouched() -> None:
    lookup = bare(6, tool="lookup_order")
    assert Extraction(spec())(lookup) is lookup
    record = bare(7)
    assert not Extraction(None) and Extraction(None)(record) is record


def test_missing_values_are_counted_not_dropped_silently_and_not_fatal() -> None:
    derive = Extraction(spec())
    no_refund = derive(bare(8, result={"order_key": "ok-8"}))  # refund id absent
    null_result = derive(bare(9, result=None))  # e.g. an OTLP span without a result
    object_id = derive(bare(10, result={"refund": {"id": {"nested": 1}}, "order_key": "ok-10"}))

    # the orders effect still comes from args; the refund effect needs result.refund.id
    assert [e.system for e in no_refund.effects] == ["orders"]
    assert null_result.effects == []  # neither: the order key path is missing as well
    assert [e.system for e in object_id.effects] == ["orders"]
    [order] = object_id.effects
    assert order.details == {}

    stats = derive.stats
    assert (stats.candidates, stats.derived_actions, stats.effects) == (3, 2, 2)
    assert stats.missing_total == 4
    by_path = {
        (m["field"], m["path"], m["reason"]): m["count"] for m in stats.to_dict()["missing_by_path"]
    }
    assert by_path == {
        ("resource_id", "result.refund.id", "missing"): 2,
        ("resource_id", "result.refund.id", "not_scalar"): 1,
        ("idempotency_key", "result.order_key", "missing"): 1,
    }
    assert [m.action_id for m in stats.examples][:2] == ["act-000008", "act-000009"]


def test_a_missing_detail_is_left_out_and_counted() -> None:
    derive = Extraction(spec())
    got = derive(bare(11, result={"refund": {"id": "re_11"}, "order_key": "ok"}))
    assert got.effects[0].details == {"amount": 55}
    assert derive.stats.missing == {
        ("issue_refund", "details.currency", "result.refund.currency", "missing"): 1
    }


def test_values_are_data_never_evaluated() -> None:
    hostile = "{{ 7 * 7 }}"
    derive = Extraction(spec())
    got = derive(
        bare(12, result={"refund": {"id": hostile, "currency": "__import__('os')"}, "order_key": 1})
    )
    assert got.effects[0].resource_id == hostile
    assert got.effects[0].details["currency"] == "__import__('os')"
    # paths follow keys of JSON objects only, never attributes of Python objects
    text = SPEC.replace("resource_id: result.refund.id", "resource_id: result.__class__")
    attr = Extraction(parse_spec(text, "x.yaml"))
    assert [e.system for e in attr(bare(13)).effects] == ["orders"]
    assert attr.stats.missing_total == 1


def test_ids_are_text_whole_floats_as_integers_and_list_indexes_work() -> None:
    text = SPEC.replace("resource_id: result.refund.id", "resource_id: result.refunds.1")
    derive = Extraction(parse_spec(text, "x.yaml"))
    got = derive(bare(14, result={"refunds": [7, 1042.0], "order_key": 5}))
    assert [(e.resource_id, e.idempotency_key) for e in got.effects] == [
        ("1042", got.idempotency_key),
        ("o-14", "5"),
    ]
    boolean = derive(bare(15, result={"refunds": [True, False], "order_key": "k"}))
    assert [e.system for e in boolean.effects] == ["orders"]  # a boolean is not an id
    assert derive.stats.missing == {
        ("issue_refund", "resource_id", "result.refunds.1", "not_scalar"): 1,
        # the first call's refund effect was derived without its currency
        ("issue_refund", "details.currency", "result.refund.currency", "missing"): 1,
    }


# -- what readers show ---------------------------------------------------------------------------


@pytest.fixture
def books(tmp_path: Path) -> Path:
    """A runbooks directory holding the spec above; its audit location next to it."""
    root = tmp_path / "books"
    root.mkdir()
    (root / "refund-agent.yaml").write_text(SPEC)
    return root


def audit_dir(books: Path) -> Path:
    return books.parent / "audit" / "refund-agent"


@pytest.mark.parametrize("engine", ["duckdb", "python"])
def test_actions_show_derived_and_recorded_effects_with_counts(books: Path, engine: str) -> None:
    write(audit_dir(books), [bare(1), action(2), bare(3, result={"order_key": "k"})])
    result = Traces(runbooks_dir=books).actions("refund-agent", *WINDOW, engine=engine)
    out = result.to_dict()
    assert out["count"] == 3
    derived = [[e.get("derived", False) for e in a["effects"]] for a in out["actions"]]
    assert derived == [[True, True], [False], [True]]
    assert out["actions"][1]["effects"][0]["resource_id"] == "re_2"  # as the agent recorded it
    assert out["derived_effects"]["effects"] == 3
    assert out["derived_effects"]["missing"] == 1
    assert out["derived_effects"]["examples"][0]["action_id"] == "act-000003"


def test_a_source_read_of_an_agent_without_a_spec_derives_nothing(books: Path) -> None:
    other = books.parent / "elsewhere"
    write(other, [bare(1, agent="pricing-agent")])
    result = Traces(runbooks_dir=books).actions(
        "pricing-agent", *WINDOW, source=str(other), engine="python"
    )
    assert result.count == 1 and result.actions[0].effects == []
    assert result.to_dict()["derived_effects"]["candidates"] == 0


def test_an_invalid_spec_is_an_error_not_a_silent_skip(books: Path) -> None:
    write(audit_dir(books), [bare(1)])
    spec_file = books / "refund-agent.yaml"
    spec_file.write_text(SPEC.replace("resource_id: args.order_id", "resource_id: order_id"))
    with pytest.raises(SpecError) as info:
        Traces(runbooks_dir=books).actions(
            "refund-agent", *WINDOW, source=str(audit_dir(books)), engine="python"
        )
    [problem] = info.value.problems
    assert problem.field == "tools[1].effects[1].resource_id" and problem.line == 20


def otlp_export(root: Path) -> None:
    """An agent instrumented with OpenTelemetry GenAI only: tool spans carry no effects."""

    def attr(k: str, v: str) -> dict[str, Any]:
        return {"key": k, "value": {"stringValue": v}}

    base = int(T0.timestamp() * 1e9)
    trace = "7" * 32
    spans = [
        {
            "traceId": trace,
            "spanId": "b000000000000001",
            "name": "invoke_agent refund-agent",
            "startTimeUnixNano": str(base),
            "attributes": [
                attr("gen_ai.operation.name", "invoke_agent"),
                attr("gen_ai.agent.name", "refund-agent"),
                attr("gen_ai.conversation.id", "T-77"),
            ],
        },
        {
            "traceId": trace,
            "spanId": "b000000000000002",
            "parentSpanId": "b000000000000001",
            "name": "execute_tool issue_refund",
            "startTimeUnixNano": str(base + 2_000_000_000),
            "endTimeUnixNano": str(base + 2_300_000_000),
            "attributes": [
                attr("gen_ai.operation.name", "execute_tool"),
                attr("gen_ai.tool.name", "issue_refund"),
                attr("gen_ai.tool.call.id", "call_77"),
                attr("gen_ai.tool.call.arguments", '{"order_id": "o-77", "amount": 30}'),
                attr(
                    "gen_ai.tool.call.result",
                    '{"refund": {"id": "re_77", "currency": "USD"}, "order_key": "ok-77"}',
                ),
            ],
        },
    ]
    doc = {"resourceSpans": [{"scopeSpans": [{"spans": spans}]}]}
    part = root / "dt=2026-11-24"
    part.mkdir(parents=True)
    (part / "spans.otlp.json").write_text(json.dumps(doc))


@pytest.mark.parametrize("engine", ["duckdb", "python"])
def test_otlp_imported_actions_get_derived_effects_in_actions_and_trace(
    books: Path, engine: str
) -> None:
    otlp_export(audit_dir(books))
    traces = Traces(runbooks_dir=books)
    [listed] = traces.actions("refund-agent", *WINDOW, engine=engine).actions
    assert [(e.system, e.resource_id, getattr(e, "derived", False)) for e in listed.effects] == [
        ("payments", "re_77", True),
        ("orders", "o-77", True),
    ]
    assert listed.effects[0].details == {"amount": 30, "currency": "USD"}

    result = traces.trace("call_77", agent="refund-agent", engine=engine)
    [chain] = result.chains
    assert chain.action.effects == listed.effects
    assert chain.records[-1] is chain.action  # the chain shows the same derived effects
    out = result.to_dict()
    assert out["traces"][0]["action"]["effects"][0]["derived"] is True
    assert out["traces"][0]["chain"][-1]["effects"][0]["derived"] is True
    assert out["derived_effects"]["effects"] == 2


# -- rollback ------------------------------------------------------------------------------------


def test_load_actions_derives_effects_and_counts_what_is_missing(books: Path, aws: Aws) -> None:
    write(audit_dir(books), [bare(1), bare(2, result=None)])
    missing = ExtractStats()
    got = list(
        load_actions(
            spec(),
            aws,
            since=WINDOW[0],
            until=WINDOW[1],
            spec_dir=books,
            derived=missing,
        )
    )
    assert [len(a.effects) for a in got] == [2, 0]
    assert missing.missing_total == 2 and missing.derived_actions == 1


def test_rollback_compensates_from_derived_effects(
    agentctl: Agentctl, seeded: Aws, runbooks: Path, tmp_path: Path
) -> None:
    """The refund agent's records carry no effects; its spec derives them, and the compensation
    payload (which reads `effects`) is rendered from the derived ones, exactly once each."""
    path = runbooks / "refund-agent.yaml"
    text = path.read_text()
    old_payload = text[text.index("      payload: |") : text.index("      noun: refunds")]
    text = text.replace(
        old_payload,
        '      payload: \'{"op": "reverse_refund", "refund_id": {{ effects[0].resource_id }},'
        ' "derived": {{ effects[0].derived }}, "amount": {{ effects[0].details.amount }}}\'\n',
    )
    text = text.replace(
        "      currency: $\n",
        "      currency: $\n"
        "    effects:\n"
        "      - {system: payments, resource_type: refund, resource_id: result.refund.id,\n"
        "         operation: create, reversible: true, details: {amount: args.amount}}\n",
        1,
    )
    path.write_text(text)
    audit = tmp_path / "agent-audit"
    write(audit, [bare(n) for n in range(1, 4)] + [bare(4, result={"refund": {}})])

    options = RollbackOptions(to=None, since=WINDOW[0], until=WINDOW[1], source=str(audit))
    plan = agentctl.plan_rollback("refund-agent", options)
    assert plan.compensation is not None
    assert len(plan.compensation.compensations) == 3
    # the record whose refund id is missing gets no effect: its payload cannot be rendered,
    # and the plan says so instead of sending something half-filled
    [problem] = plan.compensation.problems
    assert problem.action_id == "act-000004" and "payload template failed" in problem.message
    # ... and the plan counts the value the extractor could not read
    missing = plan.to_dict()["derived_effects"]
    assert (missing["effects"], missing["missing"]) == (3, 1)
    assert missing["examples"][0]["action_id"] == "act-000004"

    result = agentctl.execute_rollback(plan, reason="test")
    # 3 compensations sent; the plan problem makes the rollback partial (exit 3), as documented
    assert result.exit_code is ExitCode.PARTIAL, result.to_dict()
    assert result.execution is not None and result.execution.completed == 3
    sqs = seeded.client("sqs")
    url = sqs.get_queue_url(QueueName="refund-compensations.fifo")["QueueUrl"]
    bodies = []
    while got := sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages", []):
        bodies += [json.loads(m["Body"]) for m in got]
        sqs.delete_message_batch(
            QueueUrl=url,
            Entries=[
                {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(got)
            ],
        )
    assert sorted((b["refund_id"], b["derived"], b["amount"]) for b in bodies) == [
        ("re_1", True, 5),
        ("re_2", True, 10),
        ("re_3", True, 15),
    ]
    again = agentctl.plan_rollback("refund-agent", options)
    assert again.already_done == 3  # same keys: nothing is sent twice


# -- review findings -----------------------------------------------------------------------------


def test_an_empty_id_or_key_is_missing_not_an_effect_on_nothing() -> None:
    derive = Extraction(spec())
    got = derive(
        bare(
            1,
            args={"order_id": " ", "amount": 5},
            result={"refund": {"id": "", "currency": "EUR"}, "order_key": "ok-1"},
        )
    )
    # the refund id is "", the order id is blank: neither names a resource, so no effect
    assert got.effects == []
    assert sorted((m.field, m.path, m.reason) for m in derive.stats.examples) == [
        ("resource_id", "args.order_id", "missing"),
        ("resource_id", "result.refund.id", "missing"),
    ]
    keyless = Extraction(spec())
    got = keyless(bare(2, result={"refund": {"id": "re_2", "currency": "EUR"}, "order_key": ""}))
    # a declared key that is blank is not silently replaced by the action's own key
    assert [e.resource_id for e in got.effects] == ["re_2"]
    assert [(m.field, m.reason) for m in keyless.stats.examples] == [("idempotency_key", "missing")]


def test_trace_never_turns_a_record_agent_name_into_a_path(books: Path) -> None:
    """`agent` comes from the record (an OTLP import's gen_ai.agent.name): "../notes" must not
    make agentctl read books/../notes.yaml."""
    (books.parent / "notes.yaml").write_text("db_password: hunter2\n")
    source = books.parent / "otlp-import"
    write(source, [bare(1, agent="../notes")])
    result = Traces(runbooks_dir=books).trace("act-000001", source=str(source), engine="python")
    [chain] = result.chains
    assert chain.action.agent == "../notes" and chain.action.effects == []
    assert result.derived.candidates == 0


def test_trace_derives_each_record_once_when_a_key_matches_several_actions(books: Path) -> None:
    """Two attempts share one idempotency key and one trace: each chain shows the other attempt
    as an earlier tool call, but the counts are per record, not per appearance."""
    result = {"refund": {"id": "re_1"}, "order_key": "ok-1"}  # no currency: one miss each
    first = bare(1, result=result)
    retry = bare(
        2,
        result=result,
        trace_id=first.trace_id,
        idempotency_key=first.idempotency_key,
        unit_of_work=first.unit_of_work,
        args=first.args,
    )
    write(audit_dir(books), [first, retry])
    out = Traces(runbooks_dir=books).trace(first.idempotency_key, engine="python")
    assert len(out.chains) == 2
    counts = out.to_dict()["derived_effects"]
    assert {k: counts[k] for k in ("candidates", "derived_actions", "effects", "missing")} == {
        "candidates": 2,
        "derived_actions": 2,
        "effects": 4,
        "missing": 2,
    }
