"""The ``--where`` filter: a tiny, safe expression language over record fields.

Grammar (case-insensitive keywords)::

    expr  := term (("and" | "or") term)*         -- "and" binds tighter than "or"
    term  := "not" term | "(" expr ")" | cmp
    cmp   := path op value | path "in" "(" value ("," value)* ")" | path "is" ["not"] "null"
    path  := name ("." name)*                    -- e.g. args.amount, result.status, tool
    op    := "=" | "==" | "!=" | "<>" | "<" | "<=" | ">" | ">="
    value := number | 'string' | "string" | true | false | null

Semantics (the same in Python and in the SQL it compiles to): a missing field or a value of
another JSON type never matches a comparison (``args.amount > 30`` is false when ``amount`` is
absent or the string ``"40"``); numbers compare as numbers, strings as strings, booleans only
with ``=`` / ``!=``.

The expression is parsed, never pasted: field names are restricted to identifiers and literals
are re-quoted, so a ``--where`` cannot inject SQL into DuckDB or Athena.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from agentctl.errors import BadInputError

_TOKEN = re.compile(
    r"""\s*(?:
        (?P<num>-?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?)
      | '(?P<sq>(?:[^']|'')*)'
      | "(?P<dq>(?:[^"\\]|\\.)*)"
      | (?P<op><=|>=|==|!=|<>|=|<|>|\(|\)|,)
      | (?P<name>[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*)
    )""",
    re.VERBOSE,
)
_KEYWORDS = {"and", "or", "not", "in", "is", "null", "true", "false"}


@dataclass(frozen=True)
class Cmp:
    path: tuple[str, ...]
    op: str  # = != < <= > >=  in  isnull  notnull
    values: tuple[Any, ...]


@dataclass(frozen=True)
class BoolOp:
    op: str  # and | or
    left: Node
    right: Node


@dataclass(frozen=True)
class Not:
    inner: Node


Node = Cmp | BoolOp | Not


def _tokens(text: str) -> list[tuple[str, Any]]:
    out: list[tuple[str, Any]] = []
    pos = 0
    text = text.rstrip()
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if not m or m.end() == pos:
            raise BadInputError(
                f"--where: cannot read {text[pos:].strip()[:20]!r} at position {pos}",
                hint="example: --where \"args.amount > 30 and tool = 'issue_refund'\"",
            )
        pos = m.end()
        if m.group("num") is not None:
            raw = m.group("num")
            out.append(("val", float(raw) if any(c in raw for c in ".eE") else int(raw)))
        elif m.group("sq") is not None:
            out.append(("val", m.group("sq").replace("''", "'")))
        elif m.group("dq") is not None:
            out.append(("val", re.sub(r"\\(.)", r"\1", m.group("dq"))))
        elif m.group("op") is not None:
            out.append(("op", m.group("op")))
        else:
            name = m.group("name")
            low = name.lower()
            if low in ("true", "false"):
                out.append(("val", low == "true"))
            elif low in _KEYWORDS:
                out.append(("kw", low))
            else:
                out.append(("path", tuple(name.split("."))))
    return out


class _Parser:
    def __init__(self, text: str) -> None:
        self.text = text
        self.toks = _tokens(text)
        self.i = 0

    def fail(self, what: str) -> BadInputError:
        return BadInputError(
            f"--where {self.text!r}: {what}",
            hint="example: --where \"args.amount > 30 and tool = 'issue_refund'\"",
        )

    def peek(self) -> tuple[str, Any] | None:
        return self.toks[self.i] if self.i < len(self.toks) else None

    def take(self) -> tuple[str, Any]:
        tok = self.peek()
        if tok is None:
            raise self.fail("unexpected end")
        self.i += 1
        return tok

    def parse(self) -> Node:
        node = self.expr()
        if self.peek() is not None:
            raise self.fail(f"unexpected {self.peek()[1]!r}")  # type: ignore[index]
        return node

    def expr(self) -> Node:
        node = self.conj()
        while self.peek() == ("kw", "or"):
            self.take()
            node = BoolOp("or", node, self.conj())
        return node

    def conj(self) -> Node:
        node = self.term()
        while self.peek() == ("kw", "and"):
            self.take()
            node = BoolOp("and", node, self.term())
        return node

    def term(self) -> Node:
        kind, value = self.take()
        if (kind, value) == ("kw", "not"):
            return Not(self.term())
        if (kind, value) == ("op", "("):
            node = self.expr()
            if self.take() != ("op", ")"):
                raise self.fail("missing ')'")
            return node
        if kind != "path":
            raise self.fail(f"expected a field name, got {value!r}")
        path: tuple[str, ...] = value
        kind, op = self.take()
        if (kind, op) == ("kw", "is"):
            negate = self.peek() == ("kw", "not")
            if negate:
                self.take()
            if self.take() != ("kw", "null"):
                raise self.fail("expected 'null' after 'is'")
            return Cmp(path, "notnull" if negate else "isnull", ())
        if (kind, op) == ("kw", "in"):
            if self.take() != ("op", "("):
                raise self.fail("expected '(' after 'in'")
            values = [self.value()]
            while self.peek() == ("op", ","):
                self.take()
                values.append(self.value())
            if self.take() != ("op", ")"):
                raise self.fail("missing ')' after the 'in' list")
            return Cmp(path, "in", tuple(values))
        if kind != "op" or op not in ("=", "==", "!=", "<>", "<", "<=", ">", ">="):
            raise self.fail(f"expected a comparison after {'.'.join(path)}, got {op!r}")
        op = {"==": "=", "<>": "!="}.get(op, op)
        val = self.value()
        if isinstance(val, bool) and op not in ("=", "!="):
            raise self.fail("booleans compare only with = or !=")
        return Cmp(path, op, (val,))

    def value(self) -> Any:
        kind, value = self.take()
        if kind == "val":
            return value
        if (kind, value) == ("kw", "null"):
            raise self.fail("compare with null using 'is null' / 'is not null'")
        raise self.fail(f"expected a value, got {value!r}")


def parse(text: str) -> Node:
    """Parse a ``--where`` expression; raises BadInputError with the position on bad syntax."""
    if not text.strip():
        raise BadInputError("--where is empty")
    return _Parser(text).parse()


# --- evaluation in Python ---------------------------------------------------------------------

_MISSING = object()


def _get(data: Mapping[str, Any], path: tuple[str, ...]) -> Any:
    cur: Any = data
    for part in path:
        if not isinstance(cur, Mapping) or part not in cur:
            return _MISSING
        cur = cur[part]
    return cur


def _kind(value: Any) -> str:
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int | float):
        return "num"
    if isinstance(value, str):
        return "str"
    return "other"


def _compare(actual: Any, op: str, expected: Any) -> bool:
    if actual is _MISSING or actual is None or _kind(actual) != _kind(expected):
        return False
    if op == "=":
        return bool(actual == expected)
    if op == "!=":
        return bool(actual != expected)
    if op == "<":
        return bool(actual < expected)
    if op == "<=":
        return bool(actual <= expected)
    if op == ">":
        return bool(actual > expected)
    return bool(actual >= expected)


def evaluate(node: Node, data: Mapping[str, Any]) -> bool:
    """Does the (JSON-decoded) record match?"""
    if isinstance(node, BoolOp):
        if node.op == "and":
            return evaluate(node.left, data) and evaluate(node.right, data)
        return evaluate(node.left, data) or evaluate(node.right, data)
    if isinstance(node, Not):
        return not evaluate(node.inner, data)
    actual = _get(data, node.path)
    if node.op == "isnull":
        return actual is _MISSING or actual is None
    if node.op == "notnull":
        return not (actual is _MISSING or actual is None)
    if node.op == "in":
        return any(_compare(actual, "=", v) for v in node.values)
    return _compare(actual, node.op, node.values[0])


def predicate(text: str | None) -> Callable[[Mapping[str, Any]], bool]:
    """A Python predicate for ``--where`` (always true for None)."""
    if text is None:
        return lambda _data: True
    node = parse(text)
    return lambda data: evaluate(node, data)


# --- compilation to SQL ------------------------------------------------------------------------


def _sql_str(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


class SqlDialect:
    """How to pull a JSON path out of the raw record column."""

    def __init__(self, column: str) -> None:
        self.column = column

    def json_type(self, path: str) -> str:
        raise NotImplementedError

    def text(self, path: str) -> str:
        raise NotImplementedError

    def num_types(self) -> str:
        raise NotImplementedError

    def num(self, path: str) -> str:
        # TRY_CAST: SQL engines do not promise to short-circuit AND, so the type guard before
        # the cast does not stop the cast from seeing a string.
        return f"TRY_CAST({self.text(path)} AS DOUBLE)"

    def bool_type(self) -> str:
        return "'BOOLEAN'"

    def str_type(self) -> str:
        return "'VARCHAR'"

    def null_types(self) -> str:
        return "'NULL'"


class DuckDbDialect(SqlDialect):
    def json_type(self, path: str) -> str:
        return f"json_type({self.column}, {_sql_str(path)})"

    def text(self, path: str) -> str:
        return f"json_extract_string({self.column}, {_sql_str(path)})"

    def num_types(self) -> str:
        return "'BIGINT', 'UBIGINT', 'DOUBLE'"


class AthenaDialect(SqlDialect):
    """Athena (Trino): the record is a JSON string column."""

    def json_type(self, path: str) -> str:
        return f"upper(json_format(json_extract({self.column}, {_sql_str(path)})))"

    def text(self, path: str) -> str:
        return f"json_extract_scalar({self.column}, {_sql_str(path)})"

    def num(self, path: str) -> str:
        return f"TRY_CAST({self.text(path)} AS DOUBLE)"

    def typeof(self, path: str) -> str:
        return f"typeof(json_extract({self.column}, {_sql_str(path)}))"


def _literal(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(float(value))
    return _sql_str(str(value))


def _cmp_sql(d: SqlDialect, path: str, op: str, value: Any) -> str:
    kind = _kind(value)
    if isinstance(d, AthenaDialect):
        # Trino: json_extract_scalar gives text; type checks via the JSON value's shape.
        raw = f"json_format(json_extract({d.column}, {_sql_str(path)}))"
        if kind == "num":
            guard = f"regexp_like({raw}, '^-?[0-9]')"
            return f"({guard} AND {d.num(path)} {op} {_literal(value)})"
        if kind == "bool":
            return f"({raw} {op} {_literal('true' if value else 'false')})"
        guard = f"starts_with({raw}, '\"')"
        return f"({guard} AND {d.text(path)} {op} {_literal(value)})"
    if kind == "num":
        return (
            f"({d.json_type(path)} IN ({d.num_types()}) AND {d.num(path)} {op} {_literal(value)})"
        )
    if kind == "bool":
        text = "'true'" if value else "'false'"
        return f"({d.json_type(path)} = {d.bool_type()} AND {d.text(path)} {op} {text})"
    return f"({d.json_type(path)} = {d.str_type()} AND {d.text(path)} {op} {_literal(value)})"


def to_sql(node: Node, dialect: SqlDialect) -> str:
    """Compile to a SQL boolean expression over ``dialect.column`` (the record's JSON text)."""
    if isinstance(node, BoolOp):
        return f"({to_sql(node.left, dialect)} {node.op.upper()} {to_sql(node.right, dialect)})"
    if isinstance(node, Not):
        return f"(NOT COALESCE({to_sql(node.inner, dialect)}, false))"
    path = "$." + ".".join(node.path)
    if node.op in ("isnull", "notnull"):
        if isinstance(dialect, AthenaDialect):
            test = f"json_extract({dialect.column}, {_sql_str(path)})"
            null = f"({test} IS NULL OR json_format({test}) = 'null')"
        else:
            null = f"COALESCE({dialect.json_type(path)}, 'NULL') = 'NULL'"
        return null if node.op == "isnull" else f"(NOT {null})"
    if node.op == "in":
        parts = [_cmp_sql(dialect, path, "=", v) for v in node.values]
        return "(" + " OR ".join(parts) + ")"
    return f"COALESCE({_cmp_sql(dialect, path, node.op, node.values[0])}, false)"
