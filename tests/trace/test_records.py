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


@pytest.mark.parametrize(
    ("ts", "read"),
    [
        ("2026-11-24T01:00:00Z", "2026-11-24T01:00:00+00:00"),
        ("2026-11-24t01:00:00.5z", "2026-11-24T01:00:00.500000+00:00"),
        ("2026-11-24 03:00:00+02:00", "2026-11-24T01:00:00+00:00"),
        ("2026-11-24T01:00", "2026-11-24T01:00:00+00:00"),  # no zone: UTC
        ("2026-11-24", "2026-11-24T00:00:00+00:00"),
        ("1795914000", "2026-11-29T01:00:00+00:00"),  # Unix seconds as digits
        (1795914000000, "2026-11-29T01:00:00+00:00"),  # a JSON number, milliseconds
        ("2026-11-24T24:00:00Z", None),  # DuckDB would read the next day
        (" 2026-11-24T01:00:00Z", None),  # DuckDB would trim
        ("2026-11-24T01:00:00,5Z", None),  # pydantic alone would read these
        ("1.795914e9", None),
        ("2026-11-24_01:00:00Z", None),
        ("yesterday", None),
    ],
)
def test_a_timestamp_is_one_of_the_forms_every_engine_reads_alike(
    ts: str | int, read: str | None
) -> None:
    data = to_json_dict(action(1)) | {"ts": ts}
    if read is None:
        with pytest.raises(ValidationError, match="ts must be ISO 8601"):
            ActionRecord.model_validate(data)
    else:
        assert ActionRecord.model_validate(data).ts.isoformat() == read


@pytest.mark.parametrize("ts", ["9999-12-31T23:00:00-05:00", "0001-01-01T00:00:00+05:00"])
def test_a_timestamp_past_the_years_a_datetime_holds_in_utc_is_invalid_not_a_crash(
    ts: str,
) -> None:
    # the zone moves it past 9999 (or before year 1): a bad line to count, not an OverflowError
    with pytest.raises(ValidationError, match="ts is out of range"):
        ActionRecord.model_validate(to_json_dict(action(1)) | {"ts": ts})
