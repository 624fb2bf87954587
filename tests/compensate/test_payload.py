"""Payload templates: the action's data are variables, JSON-encoded, never template source."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agentctl.compensate.payload import payload_hash, render_json
from agentctl.compensate.planner import plan_compensations
from agentctl.errors import BadInputError, SpecError
from tests.compensate.conftest import refund, spec_with

TEMPLATE = '{"refund_id": {{ result.refund_id }}, "note": {{ args.note }}}'

ATTACKS = [
    "{{ 7 * 7 }}",
    "{% for x in range(10) %}x{% endfor %}",
    '", "amount": 1000000, "x": "',
    "{{ ''.__class__.__mro__[1].__subclasses__() }}",
    '\\u0022}, "evil": true, {"',
    "}}{{",
    "</script>\n\r\t\x00",
]


@pytest.mark.parametrize("attack", ATTACKS)
def test_agent_text_stays_data(attack: str) -> None:
    out = render_json(TEMPLATE, {"result": {"refund_id": "re_1"}, "args": {"note": attack}})
    assert out == {"refund_id": "re_1", "note": attack}


@settings(max_examples=200, deadline=None)
@given(st.text(), st.one_of(st.none(), st.integers(), st.floats(allow_nan=False), st.text()))
def test_any_string_round_trips_as_itself(note: str, refund_id: object) -> None:
    out = render_json(TEMPLATE, {"result": {"refund_id": refund_id}, "args": {"note": note}})
    assert out == {"refund_id": refund_id, "note": note}


def test_the_injection_travels_to_the_queue_as_data_through_the_planner() -> None:
    spec = spec_with(
        {"sqs": {"queue": "q"}, "payload": '{"order": {{ args.order_id }}, "n": {{ args.amount }}}'}
    )
    plan = plan_compensations(
        spec, [refund(1, args={"order_id": '{{ 7*7 }}", "n": 1e9, "z": "', "amount": 5})]
    )
    payload = json.loads(plan.compensations[0].payload)
    assert payload == {"order": '{{ 7*7 }}", "n": 1e9, "z": "', "n": 5}


def test_the_sandbox_refuses_unsafe_template_source() -> None:
    with pytest.raises(BadInputError, match=r"SecurityError|unsafe|access"):
        render_json("{{ args.__class__.__mro__ }}", {"args": {}})


def test_missing_variables_and_non_json_output_are_errors_with_a_hint() -> None:
    with pytest.raises(BadInputError, match="payload template failed"):
        render_json("{{ result.refund_id }}", {"result": None})
    with pytest.raises(BadInputError) as caught:
        render_json('{"id": "refund {{ args.id }}"}', {"args": {"id": "x"}})
    assert "did not produce JSON" in caught.value.message
    assert "~" in (caught.value.hint or "")


def test_a_bad_action_is_a_plan_problem_not_a_crash() -> None:
    spec = spec_with({"sqs": {"queue": "q"}, "payload": '{"r": {{ result.refund_id }}}'})
    plan = plan_compensations(spec, [refund(1), refund(2, result=None)])
    assert len(plan.compensations) == 1
    assert [p.action_id for p in plan.problems] == ["act-00002"]


def test_template_syntax_errors_fail_spec_validation_with_the_line() -> None:
    with pytest.raises(SpecError) as caught:
        spec_with({"sqs": {"queue": "q"}, "payload": '{"a": {{ args.x }'})
    assert any("template syntax error" in p.message for p in caught.value.problems)


def test_payload_hash_ignores_key_order() -> None:
    assert payload_hash({"a": 1, "b": [1, 2]}) == payload_hash({"b": [1, 2], "a": 1})
    assert payload_hash({"a": 1}) != payload_hash({"a": 2})
