"""A real ``kill -9`` (SIGKILL from inside the process, at each point of the protocol), then the
same run again: every compensation lands exactly once. SQS is a moto server on 127.0.0.1."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from moto.server import ThreadedMotoServer

from agentctl.aws import Aws, AwsSettings
from agentctl.clock import FakeClock
from agentctl.compensate.executor import Executor
from agentctl.compensate.ledger import LedgerStatus
from agentctl.compensate.planner import plan_compensations
from agentctl.compensate.sqlite_ledger import SqliteLedger
from agentctl.errors import ExitCode
from agentctl.incidents.sqlite import SqliteStore
from tests.compensate.conftest import REFUND_PAYLOAD, count, drain, make_queue, refund, spec_with

REPO = Path(__file__).resolve().parents[2]
N = 35


@pytest.fixture(scope="module")
def server() -> Iterator[str]:
    s = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    s.start()
    host, port = s.get_host_and_port()
    yield f"http://{host}:{port}"
    s.stop()


@pytest.mark.parametrize(
    "point,queue",
    [
        ("before_claim", "kill-before-claim.fifo"),
        ("after_claim", "kill-after-claim"),
        ("after_dispatch", "kill-after-dispatch.fifo"),
        ("after_finish", "kill-after-finish"),
    ],
)
def test_kill_9_at_each_point_then_rerun(server: str, tmp_path: Path, point: str, queue: str):
    aws = Aws(AwsSettings(region="us-east-1", endpoint_url=server))
    url = make_queue(aws, queue)
    db = tmp_path / "incidents.db"
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "tests.compensate.killer",
            server,
            str(db),
            queue,
            str(N),
            point,
            "1",
        ],
        env=env,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    before = count(aws, url)
    assert before == (20 if point in ("after_dispatch", "after_finish") else 10)

    # Resume on a clock that starts now and skips through the dead run's lease.
    clock = FakeClock(datetime.now(UTC))
    store = SqliteStore(db)
    ledger = SqliteLedger(store, clock)
    spec = spec_with({"sqs": {"queue": queue}, "payload": REFUND_PAYLOAD})
    report = Executor(ledger, aws, spec, clock=clock, workers=4).run(
        plan_compensations(spec, [refund(i) for i in range(N)])
    )
    assert report.exit_code is ExitCode.OK, report.to_dict()
    messages = drain(aws, url)
    keys = {m["MessageAttributes"]["agentctl-idempotency-key"]["StringValue"] for m in messages}
    assert len(messages) == len(keys) == N  # dispatched == actions: none twice, none missed
    assert {r.status for r in ledger.rows("refund-agent")} == {LedgerStatus.COMPLETED}
    if point == "after_dispatch":
        assert report.resent_deduped == 10  # reconciled through the FIFO dedup id
    store.close_connection()
