"""The record schema: the shipped JSON Schema is current, and versions are enforced."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from pydantic import ValidationError

from agentctl.trace.records import ActionRecord, json_schema, parse_record, to_json_dict
from tests.trace.helpers import action

SHIPPED = Path(__file__).resolve().parents[2] / "agentctl" / "trace" / "record.schema.json"


def test_shipped_json_schema_is_current() -> None:
    assert json.loads(SHIPPED.read_text()) == json_schema(), (
        "regenerate agentctl/trace/record.schema.json from agentctl.trace.records.json_schema()"
    )


def test_a_record_round_trips_through_its_written_form() -> None:
    record = action(3)
    written = to_json_dict(record)
    assert written["ts"].endswith("Z") and written["schema_version"] == 1
    assert parse_record(json.loads(json.dumps(written))) == record


def test_unknown_version_and_unknown_fields() -> None:
    data = to_json_dict(action(1))
    with pytest.raises(ValidationError, match="unsupported schema_version 2"):
        parse_record(data | {"schema_version": 2})
    kept = parse_record(data | {"cost_usd": 0.12})  # a newer writer's addition is kept
    assert isinstance(kept, ActionRecord)
    assert kept.model_dump()["cost_usd"] == 0.12


def test_status_and_effects_are_validated() -> None:
    data = to_json_dict(action(1))
    with pytest.raises(ValidationError):
        parse_record(data | {"status": "done"})
    with pytest.raises(ValidationError):
        parse_record(data | {"effects": [{"system": "payments"}]})
