"""``--engine athena``: the same action query as SQL for Athena over the S3 layout.

The table holds one JSON line per row (``line string``), partitioned by ``dt`` with partition
projection, so no crawler and no ``MSCK REPAIR`` are needed and the ``dt`` predicate prunes the
S3 prefixes Athena lists. Only agentctl JSONL files (``actions-*``) are read (``"$path"`` filter):
OTLP exports in the same prefixes are for DuckDB. ``--dry-run`` prints :func:`ddl` and
:func:`action_sql` without calling AWS.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from agentctl.errors import AgentctlError, BadInputError
from agentctl.sdk.layout import days_between
from agentctl.spec.audit import AthenaSpec
from agentctl.trace import where as where_lang

DIALECT = where_lang.AthenaDialect("line")


def _q(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def _ts(value: datetime) -> str:
    return _q(value.isoformat().replace("+00:00", "Z"))


@dataclass(frozen=True)
class AthenaTarget:
    location: str  # s3://bucket/prefix
    database: str
    table: str
    workgroup: str
    output_location: str | None

    @property
    def qualified(self) -> str:
        return f'"{self.database}"."{self.table}"'


def target_for(agent: str, location: str, spec: AthenaSpec | None) -> AthenaTarget:
    if not location.startswith("s3://"):
        raise BadInputError(
            "--engine athena needs an s3:// audit location",
            hint="local directories are queried with the default engine (DuckDB)",
        )
    spec = spec or AthenaSpec()
    table = spec.table or agent.replace("-", "_") + "_records"
    return AthenaTarget(
        location.rstrip("/") + "/", spec.database, table, spec.workgroup, spec.output_location
    )


def ddl(t: AthenaTarget) -> str:
    """CREATE TABLE for the day-partitioned raw-line layout (idempotent: IF NOT EXISTS)."""
    return (
        f"CREATE EXTERNAL TABLE IF NOT EXISTS {t.qualified} (line string)\n"
        "PARTITIONED BY (dt string)\n"
        "ROW FORMAT DELIMITED FIELDS TERMINATED BY '\\u0001' LINES TERMINATED BY '\\n'\n"
        "STORED AS TEXTFILE\n"
        f"LOCATION {_q(t.location)}\n"
        "TBLPROPERTIES (\n"
        "  'projection.enabled' = 'true',\n"
        "  'projection.dt.type' = 'date',\n"
        "  'projection.dt.format' = 'yyyy-MM-dd',\n"
        "  'projection.dt.range' = '2020-01-01,NOW',\n"
        "  'projection.dt.interval' = '1',\n"
        "  'projection.dt.interval.unit' = 'DAYS',\n"
        f"  'storage.location.template' = {_q(t.location + 'dt=${dt}/')}\n"
        ")"
    )


def action_sql(
    t: AthenaTarget,
    agent: str,
    since: datetime,
    until: datetime,
    where: str | None,
    tool: str | None,
    *,
    count: bool = False,
) -> str:
    days = days_between(since, until)
    conds = [
        f"dt BETWEEN {_q(days[0].isoformat())} AND {_q(days[-1].isoformat())}",
        "\"$path\" LIKE '%/actions-%'",
        "json_extract_scalar(line, '$.record_type') = 'action'",
        f"json_extract_scalar(line, '$.agent') = {_q(agent)}",
        f"from_iso8601_timestamp(json_extract_scalar(line, '$.ts')) >= "
        f"from_iso8601_timestamp({_ts(since)})",
        f"from_iso8601_timestamp(json_extract_scalar(line, '$.ts')) < "
        f"from_iso8601_timestamp({_ts(until)})",
    ]
    if tool:
        conds.append(f"json_extract_scalar(line, '$.tool') = {_q(tool)}")
    if where:
        conds.append(where_lang.to_sql(where_lang.parse(where), DIALECT))
    body = "\n  AND ".join(conds)
    if count:
        return f"SELECT count(*) AS actions\nFROM {t.qualified}\nWHERE {body}"
    return (
        f"SELECT line\nFROM {t.qualified}\nWHERE {body}\n"
        "ORDER BY json_extract_scalar(line, '$.ts'), json_extract_scalar(line, '$.action_id')"
    )


class AthenaQueryError(AgentctlError):
    pass


def run(
    client: Any,
    t: AthenaTarget,
    sql: str,
    *,
    wait: Callable[[Callable[[], str]], str],
) -> list[list[str | None]]:
    """Run ``sql`` (after the idempotent DDL); rows without the header. ``wait`` polls the
    state function until it is terminal (the caller passes a clock-backed poller)."""
    from agentctl.aws import translate_error

    def execute(query: str) -> str:
        params: dict[str, Any] = {
            "QueryString": query,
            "QueryExecutionContext": {"Database": t.database},
            "WorkGroup": t.workgroup,
        }
        if t.output_location:
            params["ResultConfiguration"] = {"OutputLocation": t.output_location}
        try:
            qid = str(client.start_query_execution(**params)["QueryExecutionId"])

            def state() -> str:
                status = client.get_query_execution(QueryExecutionId=qid)["QueryExecution"]
                return str(status["Status"]["State"])

            final = wait(state)
        except AgentctlError:
            raise
        except Exception as exc:
            raise translate_error(exc, "athena:StartQueryExecution") from exc
        if final != "SUCCEEDED":
            raise AthenaQueryError(f"Athena query {qid} ended {final}")
        return qid

    execute(ddl(t))
    qid = execute(sql)
    rows: list[list[str | None]] = []
    try:
        for page in client.get_paginator("get_query_results").paginate(QueryExecutionId=qid):
            for row in page["ResultSet"].get("Rows", []):
                rows.append([d.get("VarCharValue") for d in row.get("Data", [])])
    except Exception as exc:
        raise translate_error(exc, "athena:GetQueryResults") from exc
    return rows[1:]  # the first row is the header
