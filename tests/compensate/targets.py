"""Python entry points used as compensations by the tests (``tests.compensate.targets:...``)."""

from __future__ import annotations

from typing import Any

from agentctl.compensate.handlers import NotApplied

CALLS: list[tuple[Any, str]] = []
APPLIED: set[str] = set()
MODE = {"value": "ok"}


def reverse(payload: Any, *, idempotency_key: str) -> str:
    CALLS.append((payload, idempotency_key))
    if MODE["value"] == "reject":
        raise NotApplied("ledger closed for the night")
    if MODE["value"] == "crash-after-effect":
        APPLIED.add(idempotency_key)
        raise RuntimeError("connection reset after the write")
    APPLIED.add(idempotency_key)
    return f"reversed {payload['refund_id']}"


def was_applied(payload: Any, *, idempotency_key: str) -> bool:
    return idempotency_key in APPLIED


def reset() -> None:
    CALLS.clear()
    APPLIED.clear()
    MODE["value"] = "ok"
