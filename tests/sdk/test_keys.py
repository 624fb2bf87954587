"""Idempotency keys: deterministic, canonical, and sensitive to what matters."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from agentctl.sdk.keys import canonical_json, idempotency_key

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(10**12), 10**12)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=20,
)
args_strategy = st.dictionaries(st.text(max_size=8), json_values, max_size=6)


@given(args_strategy)
def test_key_ignores_key_order_and_survives_a_json_round_trip(args: dict[str, Any]) -> None:
    reordered = dict(reversed(list(args.items())))
    round_tripped = json.loads(json.dumps(args))
    key = idempotency_key("refund-agent", "T-1", "issue_refund", args)
    assert key == idempotency_key("refund-agent", "T-1", "issue_refund", reordered)
    assert key == idempotency_key("refund-agent", "T-1", "issue_refund", round_tripped)
    assert key.startswith("ik1-") and len(key) == 4 + 32


@given(args_strategy, args_strategy)
def test_different_arguments_give_different_keys(a: dict[str, Any], b: dict[str, Any]) -> None:
    if canonical_json(a) != canonical_json(b):
        assert idempotency_key("x", "T", "t", a) != idempotency_key("x", "T", "t", b)


@given(args_strategy)
def test_agent_unit_and_tool_are_part_of_the_key(args: dict[str, Any]) -> None:
    base = idempotency_key("a", "T-1", "t", args)
    assert base != idempotency_key("b", "T-1", "t", args)
    assert base != idempotency_key("a", "T-2", "t", args)
    assert base != idempotency_key("a", "T-1", "u", args)


@given(st.integers(-(10**9), 10**9))
def test_whole_floats_and_decimals_key_like_integers(n: int) -> None:
    key = idempotency_key("a", "T", "t", {"amount": n})
    assert key == idempotency_key("a", "T", "t", {"amount": float(n)})
    assert key == idempotency_key("a", "T", "t", {"amount": Decimal(n)})


def test_known_vector_is_stable_across_releases() -> None:
    # sha256('["refund-agent","T-1042","issue_refund",{"amount":30,"order":"o-7"}]')[:32].
    # If this changes, downstream dedupe and every rollback ledger break: bump the ik1- prefix.
    key = idempotency_key(
        "refund-agent", "T-1042", "issue_refund", {"order": "o-7", "amount": 30.0}
    )
    assert key == "ik1-b57205f420c8831818738f52ba160785"


def test_datetimes_are_keyed_in_utc_and_naive_ones_are_rejected() -> None:
    utc = datetime(2026, 11, 24, 1, 0, tzinfo=UTC)
    paris = utc.astimezone(timezone(timedelta(hours=1)))
    assert idempotency_key("a", "T", "t", {"at": utc}) == idempotency_key(
        "a", "T", "t", {"at": paris}
    )
    with pytest.raises(TypeError, match="naive"):
        idempotency_key("a", "T", "t", {"at": datetime(2026, 1, 1)})


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), object(), {1: "x"}, b"raw"])
def test_values_without_a_canonical_form_are_rejected(bad: Any) -> None:
    with pytest.raises(TypeError):
        idempotency_key("a", "T", "t", {"v": bad})


def test_enums_dataclasses_and_models_key_by_their_fields() -> None:
    import dataclasses
    from enum import Enum

    from pydantic import BaseModel

    class Currency(Enum):
        EUR = "EUR"

    @dataclasses.dataclass
    class Money:
        amount: float
        currency: Currency

    class MoneyModel(BaseModel):
        amount: float
        currency: str

    plain = idempotency_key("a", "T", "t", {"m": {"amount": 30, "currency": "EUR"}})
    assert plain == idempotency_key("a", "T", "t", {"m": Money(30.0, Currency.EUR)})
    assert plain == idempotency_key("a", "T", "t", {"m": MoneyModel(amount=30, currency="EUR")})
