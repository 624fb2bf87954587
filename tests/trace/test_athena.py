"""--engine athena: the SQL (what --dry-run shows) and a real round trip through boto3 on moto.

moto runs no SQL: it returns the result rows registered through its API for the next queries,
so the round trip checks the calls (DDL then query, polling, pagination, parsing of the rows),
not the SQL semantics; the SQL's filter semantics are checked on DuckDB in test_where.py."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import timedelta

import pytest
import requests

from agentctl.aws import Aws
from agentctl.errors import BadInputError
from agentctl.spec.audit import AthenaSpec
from agentctl.trace import athena
from agentctl.trace.records import to_json_dict
from agentctl.trace.service import Traces
from tests.trace.helpers import T0, action


def test_sql_prunes_partitions_and_filters_like_the_other_engines() -> None:
    t = athena.target_for("refund-agent", "s3://audit/refund-agent", AthenaSpec(database="ops"))
    sql = athena.action_sql(
        t, "refund-agent", T0, T0 + timedelta(days=2), "args.amount > 30", "issue_refund"
    )
    assert '"ops"."refund_agent_records"' in sql
    assert "dt BETWEEN '2026-11-24' AND '2026-11-26'" in sql
    assert "json_extract_scalar(line, '$.tool') = 'issue_refund'" in sql
    assert "> 30.0" in sql
    assert "'projection.dt.type' = 'date'" in athena.ddl(t)
    assert "LOCATION 's3://audit/refund-agent/'" in athena.ddl(t)


def test_literals_are_quoted() -> None:
    t = athena.target_for("a", "s3://b/p", None)
    sql = athena.action_sql(t, "a", T0, T0 + timedelta(hours=1), "tool = 'x'' OR 1=1 --'", None)
    assert "'x'' OR 1=1 --'" in sql


def test_athena_needs_an_s3_location() -> None:
    with pytest.raises(BadInputError, match="s3://"):
        athena.target_for("a", "/var/audit", None)


def poll(state: Callable[[], str]) -> str:
    return state()  # moto finishes queries at once


def test_round_trip_on_moto(aws: Aws) -> None:
    rows = [to_json_dict(action(n)) for n in (7, 8)]
    results = {
        "account_id": "123456789012",
        "region": "us-east-1",
        "results": [
            {"rows": [], "column_info": []},  # the CREATE TABLE IF NOT EXISTS
            {
                "rows": [{"Data": [{"VarCharValue": "line"}]}]
                + [{"Data": [{"VarCharValue": json.dumps(r)}]} for r in rows]
                + [{"Data": [{"VarCharValue": "{truncated"}]}],
                "column_info": [{"Name": "line", "Type": "varchar"}],
            },
        ],
    }
    resp = requests.post(
        "http://motoapi.amazonaws.com/moto-api/static/athena/query-results",
        json=results,
        timeout=10,
    )
    assert resp.status_code == 201
    result = Traces(aws).actions(
        "refund-agent",
        T0,
        T0 + timedelta(hours=1),
        engine="athena",
        source="s3://audit/refund-agent",
        wait=poll,
    )
    assert [a.action_id for a in result.actions] == ["act-000007", "act-000008"]
    assert result.count == 2 and dict(result.stats.bad) == {"invalid": 1}
    assert result.sql[0].startswith("CREATE EXTERNAL TABLE")
