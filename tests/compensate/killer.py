"""Run compensations and SIGKILL ourselves at a chosen point: a real ``kill -9``.

python -m tests.compensate.killer ENDPOINT DB QUEUE N POINT AFTER_BATCHES
"""

from __future__ import annotations

import os
import signal
import sys
from collections.abc import Sequence

from agentctl.aws import Aws, AwsSettings
from agentctl.clock import SystemClock
from agentctl.compensate.executor import Executor
from agentctl.compensate.planner import plan_compensations
from agentctl.compensate.sqlite_ledger import SqliteLedger
from agentctl.incidents.sqlite import SqliteStore
from tests.compensate.conftest import REFUND_PAYLOAD, refund, spec_with


def main(argv: list[str]) -> None:
    endpoint, db, queue, n, point, after = argv
    seen = {"n": 0}

    def checkpoint(name: str, keys: Sequence[str]) -> None:
        if name == point:
            seen["n"] += 1
            if seen["n"] > int(after):
                os.kill(os.getpid(), signal.SIGKILL)

    aws = Aws(AwsSettings(region="us-east-1", endpoint_url=endpoint))
    spec = spec_with({"sqs": {"queue": queue}, "payload": REFUND_PAYLOAD})
    ledger = SqliteLedger(SqliteStore(__import__("pathlib").Path(db)), SystemClock())
    plan = plan_compensations(spec, [refund(i) for i in range(int(n))])
    Executor(ledger, aws, spec, clock=SystemClock(), workers=1, checkpoint=checkpoint).run(plan)


if __name__ == "__main__":
    main(sys.argv[1:])
