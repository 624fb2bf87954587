"""S3 (moto) with the same layout, and day-partition pruning: files outside the window are
never opened (a corrupt file there would otherwise be counted)."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from agentctl.aws import Aws
from agentctl.clock import FakeClock
from agentctl.errors import AwsCallError
from agentctl.sdk import Agent, S3Sink, Writer
from agentctl.trace.chain import decision_chain, find_actions
from agentctl.trace.query import iter_actions
from agentctl.trace.scan import ScanStats
from tests.trace.helpers import T0, action, write

ENGINES = ["python", "duckdb"]


@pytest.mark.parametrize("engine", ENGINES)
def test_only_the_partitions_of_the_window_are_read(tmp_path: Path, engine: str) -> None:
    write(tmp_path, [action(n * 60 * 24) for n in range(5)])  # one action a day, 5 days
    corrupt = tmp_path / "dt=2026-11-26" / "actions-w9-000001.jsonl"
    corrupt.write_text("{corrupt\n")
    stats = ScanStats()
    got = list(
        iter_actions(
            str(tmp_path), "refund-agent", T0, T0 + timedelta(hours=30), stats=stats, engine=engine
        )
    )
    assert [r.action_id for r in got] == ["act-000000", "act-001440"]
    assert stats.files == 2 and stats.bad_total == 0  # 24th and 25th only; the 26th untouched


@pytest.mark.parametrize("engine", ENGINES)
def test_s3_sink_and_reader_round_trip_with_pruning(
    aws: Aws, clock: FakeClock, engine: str
) -> None:
    s3 = aws.client("s3")
    s3.create_bucket(Bucket="audit")
    agent = Agent(
        "refund-agent",
        now=clock.now,
        writer=Writer(S3Sink(s3, "audit", "agents/refund-agent"), background=False),
    )

    @agent.tool()
    def issue_refund(order_id: str) -> str:
        return "ok"

    for day in range(3):
        with agent.unit_of_work(f"T-{day}", input={"n": day}):
            issue_refund(f"o-{day}")
        clock.advance(24 * 3600)
    assert agent.flush()
    s3.put_object(
        Bucket="audit", Key="agents/refund-agent/dt=2026-11-26/actions-x.jsonl", Body=b"{corrupt\n"
    )

    start = clock.now() - timedelta(days=3)
    stats = ScanStats()
    got = list(
        iter_actions(
            "s3://audit/agents/refund-agent",
            "refund-agent",
            start,
            start + timedelta(hours=30),
            stats=stats,
            s3_client=s3,
            engine=engine,
        )
    )
    assert [r.args["order_id"] for r in got] == ["o-0", "o-1"]
    assert stats.bad_total == 0

    [found] = find_actions(
        "s3://audit/agents/refund-agent", got[1].idempotency_key, s3_client=s3, engine=engine
    )
    chain = decision_chain("s3://audit/agents/refund-agent", found, s3_client=s3, engine=engine)
    assert [r.record_type for r in chain.records] == ["input", "action"]


def test_missing_bucket_is_a_typed_error(aws: Aws) -> None:
    with pytest.raises(AwsCallError, match="NoSuchBucket"):
        list(
            iter_actions(
                "s3://nope/x", "a", T0, T0 + timedelta(hours=1), s3_client=aws.client("s3")
            )
        )
