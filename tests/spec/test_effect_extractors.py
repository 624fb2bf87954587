"""Per-tool effect extractors in the agent spec: what validates, and how bad ones are reported
(every problem, with file, line and field)."""

from __future__ import annotations

import pytest

from agentctl.errors import SpecError
from agentctl.spec.loader import json_schema, load_agent, parse_spec
from tests.conftest import RUNBOOKS

HEAD = """version: 1
name: refund-agent
owner: payments
role: refund-agent-role
tools:
  - name: issue_refund
    side_effects: true
    mitigation: {kind: flag, description: check the refund}
    effects:
"""

GOOD = (
    HEAD
    + """      - system: payments
        resource_type: refund
        resource_id: result.refund_id
        operation: create
        reversible: true
        details: {amount: args.amount, first_item: result.items.0.sku}
      - system: ledger
        resource_type: entry
        resource_id: result
        operation: create
        reversible: false
        idempotency_key: args.request.key
"""
)


def problems(text: str) -> list[tuple[int | None, str, str]]:
    with pytest.raises(SpecError) as info:
        parse_spec(text, "agent.yaml")
    return [(p.line, p.field, p.message) for p in info.value.problems]


def test_a_good_spec_declares_extractors_per_tool() -> None:
    spec = parse_spec(GOOD, "agent.yaml")
    [tool] = spec.tools
    refund, entry = tool.effects
    assert (refund.system, refund.resource_id, refund.reversible) == (
        "payments",
        "result.refund_id",
        True,
    )
    assert refund.details == {"amount": "args.amount", "first_item": "result.items.0.sku"}
    assert refund.idempotency_key is None  # the action's key
    assert (entry.resource_id, entry.idempotency_key) == ("result", "args.request.key")


def test_a_tool_without_extractors_is_unchanged() -> None:
    spec = parse_spec(HEAD.replace("    effects:\n", ""), "agent.yaml")
    assert spec.tools[0].effects == []


def test_the_example_triager_declares_its_effects() -> None:
    spec = load_agent("ticket-triager", RUNBOOKS)
    effects = {
        t.name: [(e.operation, e.resource_id, e.reversible) for e in t.effects] for t in spec.tools
    }
    assert effects == {
        "update_ticket": [("update", "args.ticket_id", True)],
        "close_ticket": [("close", "args.ticket_id", False)],
    }


def test_every_bad_extractor_is_reported_with_its_line_and_field() -> None:
    text = (
        HEAD
        + """      - system: payments
        resource_type: 7
        resource_id: response.refund_id
        operation: create
        reversible: maybe
        colour: red
        details:
          amount: args.amount
          note: "{{ args.note }}"
      - system: payments
        resource_type: refund
        operation: create
        reversible: true
        idempotency_key: args
"""
    )
    found = problems(text)
    by_field = {f: (line, m) for line, f, m in found}
    assert len(found) == 7, found
    assert by_field["tools[0].effects[0].resource_type"][0] == 11
    assert "valid string (got 7)" in by_field["tools[0].effects[0].resource_type"][1]
    line, message = by_field["tools[0].effects[0].resource_id"]
    assert (
        line == 12 and "'response.refund_id' is not a dotted path under args. or result" in message
    )
    assert by_field["tools[0].effects[0].reversible"][0] == 14
    assert '"maybe"' in by_field["tools[0].effects[0].reversible"][1]
    assert by_field["tools[0].effects[0].colour"] == (15, "unknown key")
    line, message = by_field["tools[0].effects[0].details.note"]
    assert line == 18 and "'{{ args.note }}' is not a dotted path" in message  # no templates
    assert by_field["tools[0].effects[1].resource_id"] == (19, "required field is missing")
    assert by_field["tools[0].effects[1].idempotency_key"][0] == 23  # `args` alone: no field


@pytest.mark.parametrize(
    "path",
    [
        "args",
        "effects.0.resource_id",
        "action.action_id",
        "result.",
        "result..id",
        "args.amount | int",
        "result['id']",
        "result.__class__.x y",
        " args.order_id",
    ],
)
def test_a_path_must_be_a_plain_dotted_path_under_args_or_result(path: str) -> None:
    text = GOOD.replace("resource_id: result.refund_id", f"resource_id: {path!r}")
    [(line, field, message)] = problems(text)
    assert (line, field) == (12, "tools[0].effects[0].resource_id")
    assert "not a dotted path under args. or result" in message


def test_effects_on_a_tool_without_side_effects_is_an_error() -> None:
    text = GOOD.replace(
        "    side_effects: true\n    mitigation: {kind: flag, description: check the refund}\n",
        "    side_effects: false\n",
    )
    [(line, field, message)] = problems(text)
    assert (line, field) == (6, "tools[0]")
    assert "no side effects: it cannot declare effects" in message


def test_the_json_schema_describes_extractors_for_editors() -> None:
    schema = json_schema()
    tool = schema["$defs"]["Tool"]  # type: ignore[index]
    assert tool["properties"]["effects"]["items"] == {"$ref": "#/$defs/EffectExtractor"}
    extractor = schema["$defs"]["EffectExtractor"]  # type: ignore[index]
    assert extractor["additionalProperties"] is False
    assert set(extractor["required"]) == {
        "system",
        "resource_type",
        "resource_id",
        "operation",
        "reversible",
    }
    assert extractor["properties"]["resource_id"]["pattern"].startswith("^(args")
