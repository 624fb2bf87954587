"""The --where language: Python and DuckDB agree on every record; nothing is injectable."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any

import duckdb
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agentctl.errors import BadInputError
from agentctl.trace import where

scalars = st.none() | st.booleans() | st.integers(-50, 50) | st.sampled_from(["a", "b", "30"])
records = st.fixed_dictionaries(
    {"tool": st.sampled_from(["issue_refund", "send_email"])},
    optional={
        "args": st.fixed_dictionaries({}, optional={"amount": scalars, "currency": scalars}),
        "status": st.sampled_from(["executed", "refused"]),
    },
)
paths = st.sampled_from(["args.amount", "args.currency", "status", "tool", "args"])
values = st.integers(-50, 50) | st.sampled_from(["'a'", "'30'", "'executed'", "true", "false"])
comparisons = st.builds(
    lambda p, op, v: f"{p} {op} {v}", paths, st.sampled_from(["=", "!=", "<", ">=", ">"]), values
).filter(lambda e: not (e.endswith(("true", "false")) and e.split()[1] not in ("=", "!=")))
atoms = (
    comparisons
    | st.builds(lambda p: f"{p} is null", paths)
    | st.builds(lambda p: f"{p} is not null", paths)
    | st.builds(lambda p: f"{p} in (1, 'a', 30)", paths)
)
exprs = st.recursive(
    atoms,
    lambda inner: (
        st.builds(
            lambda a, op, b: f"({a}) {op} ({b})", inner, st.sampled_from(["and", "or"]), inner
        )
        | st.builds(lambda a: f"not ({a})", inner)
    ),
    max_leaves=4,
)


@settings(max_examples=150, deadline=None)
@given(st.lists(records, min_size=1, max_size=6), exprs)
def test_python_and_duckdb_agree(rows: list[dict[str, Any]], expr: str) -> None:
    node = where.parse(expr)
    expected = [where.evaluate(node, r) for r in rows]
    sql = where.to_sql(node, where.DuckDbDialect("j"))
    con = duckdb.connect()
    con.execute("CREATE TABLE t (i INTEGER, j JSON)")
    con.executemany("INSERT INTO t VALUES (?, ?)", [(i, json.dumps(r)) for i, r in enumerate(rows)])
    got = {i for (i,) in con.execute(f"SELECT i FROM t WHERE {sql}").fetchall()}
    assert [i in got for i in range(len(rows))] == expected, sql


@settings(max_examples=150, deadline=None)
@given(st.lists(records, min_size=1, max_size=6), exprs)
def test_python_and_the_duckdb_engine_agree(rows: list[dict[str, Any]], expr: str) -> None:
    # The engine compiles --where three ways: over the fast scan's columns (DuckDB's JSON
    # reader, each path read alone), over the same columns kept in the Parquet cache, and over
    # the exact scan's one-parse fragments (lines read as text). All must select what Python
    # selects. Each row's `agent` names it (no --where here looks at agent).
    from agentctl.trace import duck

    node = where.parse(expr)
    expected = [where.evaluate(node, r) for r in rows]
    paths = duck._paths(node)
    with tempfile.TemporaryDirectory() as tmp:
        jsonl = Path(tmp) / "r.jsonl"
        jsonl.write_text(
            "".join(json.dumps(r | {"agent": f"a{i}"}) + "\n" for i, r in enumerate(rows))
        )
        parquet = Path(tmp) / "r.parquet"
        con = duck.connect()
        files = {"files": [str(jsonl)]}
        con.execute(f"COPY ({duck._fast(paths)}) TO '{parquet}' (FORMAT parquet)", files)
        cond = duck.ColumnShape().where(node)
        agent = "json_extract_string(agent, '$')"  # the scans keep its JSON text
        queries = {
            "fast": (f"SELECT {agent} FROM ({duck._fast(paths)}) WHERE {cond}", files),
            "cached": (f"SELECT {agent} FROM read_parquet('{parquet}') WHERE {cond}", {}),
            "exact": (
                f"{duck._classified(paths)} SELECT json_extract_string(v[2], '$') FROM c "
                f"WHERE {duck.DirectShape(paths).where(node)}",
                files,
            ),
        }
        for name, (sql, params) in queries.items():
            got = {int(a[1:]) for (a,) in con.execute(sql, params).fetchall()}
            assert [i in got for i in range(len(rows))] == expected, (name, sql)
        con.close()


def test_semantics_a_user_relies_on() -> None:
    match = where.predicate("args.amount > 30 and tool = 'issue_refund'")
    assert match({"tool": "issue_refund", "args": {"amount": 31}})
    assert not match({"tool": "issue_refund", "args": {"amount": "31"}})  # a string is no amount
    assert not match({"tool": "issue_refund", "args": {}})
    assert where.predicate("args.note is null")({"args": {}})


@pytest.mark.parametrize(
    "bad",
    [
        "args.amount >",
        "amount >> 3",
        "x = null",
        "x > true",
        "(x = 1",
        "x = 1; DROP TABLE t",
        "x = 'unterminated",
        "1 = x",
        "",
    ],
)
def test_malformed_expressions_are_bad_input(bad: str) -> None:
    with pytest.raises(BadInputError):
        where.parse(bad)


def test_literals_cannot_break_out_of_the_sql_string() -> None:
    sql = where.to_sql(where.parse("tool = 'x'' OR 1=1 --'"), where.DuckDbDialect("j"))
    con = duckdb.connect()
    row = con.execute(f'SELECT {sql} FROM (SELECT \'{{"tool": "y"}}\'::JSON AS j)').fetchone()
    assert row == (False,)
