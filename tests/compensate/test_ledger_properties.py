"""Property test of the ledger's primitives: random interleavings of three executors (claim,
mark, finish, crash = walk away) and a moving clock. Invariants: at most one executor holds a
row at a time; only the holder may mark it for dispatch; a row that may have been dispatched is
reported as such to whoever claims it next; a completed row is never claimed again."""

from __future__ import annotations

import tempfile
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from agentctl.clock import FakeClock
from agentctl.compensate.ledger import Finish, LedgerRow, LedgerStatus
from agentctl.compensate.sqlite_ledger import SqliteLedger
from agentctl.incidents.sqlite import SqliteStore

OWNERS = ("a", "b", "c")
LEASE = 30.0
KEYS = [f"{i:064x}" for i in range(3)]

op = st.one_of(
    st.tuples(st.just("claim"), st.sampled_from(OWNERS), st.sampled_from(KEYS)),
    st.tuples(st.just("mark"), st.sampled_from(OWNERS), st.sampled_from(KEYS)),
    st.tuples(
        st.just("finish"),
        st.sampled_from(OWNERS),
        st.sampled_from(KEYS),
        st.sampled_from([LedgerStatus.COMPLETED, LedgerStatus.FAILED, LedgerStatus.UNKNOWN]),
    ),
    st.tuples(st.just("wait"), st.sampled_from([1.0, 10.0, 31.0])),
)


def _row(key: str) -> LedgerRow:
    return LedgerRow(
        key=key, agent="a", tool="t", kind="sqs", action_key=key, action_id=key,
        dispatch_key="d" + key, payload="{}", payload_hash="h",
    )  # fmt: skip


@settings(max_examples=150, deadline=None)
@given(st.lists(op, min_size=1, max_size=40))
def test_ledger_interleavings_keep_the_invariants(ops: list[tuple]) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        clock = FakeClock()
        store = SqliteStore(Path(tmp) / "l.db")
        ledger = SqliteLedger(store, clock)
        ledger.register([_row(k) for k in KEYS])
        holder: dict[str, tuple[str, float]] = {}  # key -> (owner, lease until)
        maybe_sent: set[str] = set()  # marked for dispatch, outcome not known to be "none"
        done: set[str] = set()
        for step in ops:
            now = clock.now().timestamp()
            if step[0] == "wait":
                clock.advance(step[1])
                continue
            kind, owner, key = step[0], step[1], step[2]
            if kind == "claim":
                got = ledger.claim([key], owner, LEASE)
                if got:
                    assert key not in done, "a completed row was claimed again"
                    if key in holder:
                        assert holder[key][1] < now, "claimed while another lease was live"
                    assert got[0].dispatch_pending == (key in maybe_sent)
                    holder[key] = (owner, now + LEASE)
                else:
                    live = key in holder and holder[key][1] >= now
                    assert live or key in done, "a free row could not be claimed"
            elif kind == "mark":
                ok = ledger.mark_dispatching([key], owner) == {key}
                live_holder = key in holder and holder[key][0] == owner and holder[key][1] > now
                assert ok == live_holder
                if ok:
                    maybe_sent.add(key)
            else:
                status = step[3]
                before = ledger.get(key)
                ledger.finish([Finish(key, status, result="r", error="e")], owner)
                row = ledger.get(key)
                assert row is not None and before is not None
                is_holder = key in holder and holder[key][0] == owner
                if key in done:  # final: nothing overwrites it
                    assert row.status is LedgerStatus.COMPLETED and row.result == before.result
                elif status is LedgerStatus.COMPLETED:  # a fact, recorded by anyone
                    assert row.status is LedgerStatus.COMPLETED
                    done.add(key)
                    holder.pop(key, None)
                    maybe_sent.discard(key)
                elif is_holder:  # failed / unknown: only the holder's word counts
                    assert row.status is status
                    holder.pop(key, None)
                    if status is LedgerStatus.FAILED:  # certainly had no effect
                        maybe_sent.discard(key)
                    else:  # unknown: whoever claims it next must reconcile first
                        maybe_sent.add(key)
                else:
                    assert row.status is before.status and row.owner == before.owner
        store.close_connection()
