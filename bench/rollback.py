"""Benchmark: compensating 10,000 actions through SQS, and a run killed half-way then resumed.

    .venv/bin/python bench/rollback.py [--actions 10000] [--latency-ms 20] [--workers 32]

Everything runs against a local moto endpoint with injected latency (bench/latency_endpoint.py,
default 20 ms per request). The actions are written as JSONL in the trace layout of issue 4
(``<dir>/dt=YYYY-MM-DD/actions-*.jsonl``) and read back by the real planner.

1. Throughput: ``agentctl rollback`` as a library call (plan, then execute with N workers; the
   ledger is SQLite with synchronous=FULL) against a one-at-a-time loop of ``SendMessage`` (no
   ledger at all, i.e. the most favourable baseline), timed on a sample and extrapolated.
2. Kill half-way: the real CLI (``agentctl rollback ... --yes``) in a subprocess, SIGKILLed when
   half of the messages are in the queue, then the same command again. Messages are counted
   per idempotency key straight from the moto backend (receiving would be slow and would
   defeat moto's FIFO dedup): dispatched, duplicates (must be 0), misses (must be 0). Done for a
   FIFO queue (unknown outcomes reconciled through the dedup id) and a standard queue (the
   ledger alone; the batches in flight at the kill are reported as unknown, not re-sent; the
   bench then plays the operator: checks the queue, settles each with ``resolve``, re-runs).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "bench"))
sys.path.insert(0, str(REPO))

from latency_endpoint import LatencyEndpoint  # noqa: E402

T0 = datetime(2026, 11, 24, 1, 0, tzinfo=UTC)
SPEC = """version: 1
name: refund-agent
owner: payments
role: refund-agent-role
tools:
  - name: issue_refund
    side_effects: true
    compensation:
      sqs: {{queue: {queue}}}
      payload: |
        {{"op": "reverse_refund", "refund_id": {{{{ result.refund_id }}}},
         "amount": {{{{ args.amount }}}}}}
      noun: refunds
      amount: args.amount
      currency: $
"""


def write_actions(root: Path, n: int) -> None:
    """n refund action records over two hours, in the day-partitioned JSONL layout."""
    from agentctl.sdk.layout import partition_of

    files: dict[str, Any] = {}
    try:
        for i in range(n):
            ts = T0 + timedelta(seconds=i * 7200 / n)
            part = root / partition_of(ts)
            if part not in files:
                part.mkdir(parents=True, exist_ok=True)
                files[part] = (part / "actions-bench-0001.jsonl").open("w")
            record = {
                "record_type": "action",
                "schema_version": 1,
                "agent": "refund-agent",
                "release_id": "rel-bad",
                "trace_id": f"{i:032x}",
                "span_id": f"{i:016x}",
                "ts": ts.isoformat().replace("+00:00", "Z"),
                "unit_of_work": f"T-{i}",
                "action_id": f"act-{i:06d}",
                "tool": "issue_refund",
                "args": {"order_id": f"o-{i}", "amount": 10 + i % 90, "reason": "x" * 80},
                "result": {"refund_id": f"re_{i:06d}", "status": "succeeded"},
                "status": "executed",
                "idempotency_key": f"ik1-{i:032x}",
                "effects": [
                    {
                        "system": "payments",
                        "resource_type": "refund",
                        "resource_id": f"re_{i:06d}",
                        "operation": "create",
                        "reversible": True,
                    }
                ],
                "duration_ms": 120.0,
            }
            files[part].write(json.dumps(record) + "\n")
    finally:
        for fh in files.values():
            fh.close()


#: every message handed to moto (before FIFO dedup), per (queue, idempotency key)
SENT: Counter[tuple[str, str]] = Counter()


def patch_moto_sqs() -> None:
    """Two changes to the test double, in this process only, both stated in the output:

    - moto recomputes ApproximateNumberOfMessages* (a scan of the whole queue) on every send,
      which makes a 10,000-message queue quadratic; real SQS does not. Those counts return 0.
    - every message handed to a queue is counted per idempotency key *before* moto's FIFO
      dedup, so re-sends that SQS drops are still visible in the figures.
    """
    from moto.sqs import models

    for name in (
        "approximate_number_of_messages",
        "approximate_number_of_messages_delayed",
        "approximate_number_of_messages_not_visible",
    ):
        setattr(models.Queue, name, property(lambda self: 0))
    original = models.Queue.add_message

    def add_message(self: Any, message: Any) -> None:
        attr = (message.message_attributes or {}).get("agentctl-idempotency-key")
        SENT[(self.name, _attr(attr) if attr else "")] += 1
        original(self, message)

    models.Queue.add_message = add_message


def queue_keys(name: str) -> list[str]:
    """The idempotency key of every message in the queue, read from the in-process moto backend."""
    from moto.core import DEFAULT_ACCOUNT_ID
    from moto.sqs.models import sqs_backends

    queue = sqs_backends[DEFAULT_ACCOUNT_ID]["us-east-1"].queues[name]
    return [_attr(m.message_attributes["agentctl-idempotency-key"]) for m in queue._messages]


def _attr(value: dict[str, Any]) -> str:
    return str(value.get("StringValue") or value.get("string_value"))


def make_queue(aws: Any, name: str) -> str:
    attrs = {"FifoQueue": "true"} if name.endswith(".fifo") else {}
    return str(aws.client("sqs").create_queue(QueueName=name, Attributes=attrs)["QueueUrl"])


def setup(work: Path, queue: str) -> Path:
    runbooks = work / f"runbooks-{queue.replace('.', '-')}"
    runbooks.mkdir()
    (runbooks / "refund-agent.yaml").write_text(SPEC.format(queue=queue))
    return runbooks


def throughput(url: str, work: Path, audit: Path, n: int, workers: int, sample: int) -> dict:
    from agentctl.aws import Aws, AwsSettings
    from agentctl.clock import SystemClock
    from agentctl.compensate.rollback import RollbackOptions
    from agentctl.incidents.sqlite import SqliteStore
    from agentctl.ops import Agentctl

    aws = Aws(AwsSettings(region="us-east-1", endpoint_url=url))
    queue = "bench-throughput"
    make_queue(aws, queue)
    runbooks = setup(work, queue)
    store = SqliteStore(work / "throughput.db")
    ac = Agentctl(aws, runbooks_dir=runbooks, store=store, clock=SystemClock(), user="bench")
    options = RollbackOptions(to=None, since=T0, until=T0 + timedelta(hours=3), source=str(audit))
    started = time.perf_counter()
    plan = ac.plan_rollback("refund-agent", options)
    plan_s = time.perf_counter() - started
    assert plan.compensation is not None and len(plan.compensation.compensations) == n
    started = time.perf_counter()
    result = ac.execute_rollback(plan, workers=workers)
    exec_s = time.perf_counter() - started
    report = result.execution
    assert report is not None
    keys = queue_keys(queue)
    store.close_connection()

    # The baseline: one SendMessage at a time, no ledger, on a sample.
    base_queue = "bench-naive"
    base_url = make_queue(aws, base_queue)
    sqs = aws.client("sqs")
    times = []
    for i in range(sample):
        t = time.perf_counter()
        sqs.send_message(
            QueueUrl=base_url,
            MessageBody=json.dumps({"op": "reverse_refund", "refund_id": f"re_{i:06d}"}),
        )
        times.append(time.perf_counter() - t)
    per_item = statistics.median(times)
    naive_s = per_item * n
    return {
        "plan_s": plan_s,
        "exec_s": exec_s,
        "rate": n / exec_s,
        "completed": report.completed,
        "problems": len(report.problems),
        "messages": len(keys),
        "distinct": len(set(keys)),
        "naive_median_ms": per_item * 1000,
        "naive_mean_ms": statistics.mean(times) * 1000,
        "naive_s": naive_s,
        "ratio": naive_s / exec_s,
    }


def killed_and_resumed(url: str, work: Path, audit: Path, n: int, queue: str, workers: int) -> dict:
    from agentctl.aws import Aws, AwsSettings
    from agentctl.clock import SystemClock
    from agentctl.compensate.ledger import by_status
    from agentctl.compensate.sqlite_ledger import SqliteLedger
    from agentctl.incidents.sqlite import SqliteStore

    aws = Aws(AwsSettings(region="us-east-1", endpoint_url=url))
    make_queue(aws, queue)
    runbooks = setup(work, queue)
    db = work / f"{queue}.db"
    env = {
        **os.environ,
        "AWS_ENDPOINT_URL": url,
        "AWS_ACCESS_KEY_ID": "bench",
        "AWS_SECRET_ACCESS_KEY": "bench",
        "AWS_REGION": "us-east-1",
        "AGENTCTL_STORE": str(db),
        "AGENTCTL_RUNBOOKS": str(runbooks),
    }
    cmd = [
        str(Path(sys.executable).parent / "agentctl"),
        "rollback",
        "refund-agent",
        "--no-release",
        "--since",
        T0.isoformat(),
        "--until",
        (T0 + timedelta(hours=3)).isoformat(),
        "--source",
        str(audit),
        "--workers",
        str(workers),
        "--lease",
        "5",
        "--yes",
        "-o",
        "json",
    ]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    started = time.perf_counter()
    while len(queue_keys(queue)) < n // 2:
        if proc.poll() is not None:
            raise SystemExit(f"the run ended before half-way: {proc.stderr.read().decode()}")
        time.sleep(0.005)  # polling the bench's own counter, not the code under test
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    at_kill = len(queue_keys(queue))
    killed_after = time.perf_counter() - started
    started = time.perf_counter()
    resumed = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)
    resume_s = time.perf_counter() - started
    out = json.loads(resumed.stdout) if resumed.stdout.strip().startswith("{") else {}
    comp = out.get("compensation") or {}
    result: dict[str, Any] = {
        "queue": queue,
        "at_kill": at_kill,
        "killed_after_s": killed_after,
        "resume_s": resume_s,
        "resume_exit": resumed.returncode,
        "resent_deduped": comp.get("resent_deduped"),
        "unknown": len(comp.get("unknown") or []),
        "resumed_completed": comp.get("completed"),
        "already_done": comp.get("already_done"),
        "operator": None,
    }
    if result["unknown"]:
        # The on-call checks downstream (here: the bench reads the queue, as the payments team
        # would look at its consumer) and settles each unknown item, then runs the same command.
        delivered = set(queue_keys(queue))
        store = SqliteStore(db)
        ledger = SqliteLedger(store, SystemClock())
        applied = not_applied = 0
        for row in ledger.rows("refund-agent"):
            if row.status.value == "unknown":
                landed = row.dispatch_key in delivered
                ledger.resolve(row.key, applied=landed, by="bench-operator")
                applied += landed
                not_applied += not landed
        store.close_connection()
        final = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)
        final_out = json.loads(final.stdout) if final.stdout.strip().startswith("{") else {}
        result["operator"] = {
            "applied": applied,
            "not_applied": not_applied,
            "exit": final.returncode,
            "sent": (final_out.get("compensation") or {}).get("completed"),
        }
    keys = queue_keys(queue)
    counts = Counter(keys)
    store = SqliteStore(db)
    rows = list(SqliteLedger(store, SystemClock()).rows("refund-agent"))
    store.close_connection()
    result.update(
        {
            "dispatched": len(counts),
            "messages": len(keys),
            "duplicates": sum(c - 1 for c in counts.values()),
            "misses": n - len(counts),
            "ledger": by_status(rows),
            "sent_twice": sum(1 for (q, _), c in SENT.items() if q == queue and c > 1),
        }
    )
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--actions", type=int, default=10_000)
    parser.add_argument("--latency-ms", type=float, default=20.0)
    parser.add_argument("--workers", type=int, default=32)
    parser.add_argument("--sample", type=int, default=200, help="naive loop: items timed")
    args = parser.parse_args()
    for key, value in {
        "AWS_ACCESS_KEY_ID": "bench",
        "AWS_SECRET_ACCESS_KEY": "bench",
        "AWS_REGION": "us-east-1",
        "AWS_DEFAULT_REGION": "us-east-1",
    }.items():
        os.environ.setdefault(key, value)
    work = Path(tempfile.mkdtemp(prefix="agentctl-bench-rollback-"))
    try:
        audit = work / "audit"
        t = time.perf_counter()
        write_actions(audit, args.actions)
        print(
            f"{args.actions} action records written in the trace layout "
            f"({time.perf_counter() - t:.1f} s); endpoint latency {args.latency_ms:g} ms/request"
        )
        patch_moto_sqs()
        print(
            "moto patched for this run: queue-size attributes return 0 (moto rescans the queue"
            " on every send); sends counted per key before FIFO dedup"
        )
        with LatencyEndpoint(latency_ms=args.latency_ms) as url:
            r = throughput(url, work, audit, args.actions, args.workers, args.sample)
            print("\n## throughput: compensation through SQS (standard queue), ledger on SQLite")
            print(f"plan (read {args.actions} records, render payloads): {r['plan_s']:.2f} s")
            print(
                f"agentctl rollback, {args.workers} workers, batches of 10: {r['exec_s']:.2f} s"
                f" = {r['rate']:,.0f} compensations/s; completed {r['completed']},"
                f" problems {r['problems']}, messages {r['messages']}"
                f" ({r['distinct']} distinct keys)"
            )
            print(
                f"one-at-a-time SendMessage loop (no ledger), sample of {args.sample}: median "
                f"{r['naive_median_ms']:.1f} ms/item (mean {r['naive_mean_ms']:.1f}) → "
                f"{r['naive_s']:.0f} s for {args.actions} (extrapolated)"
            )
            print(f"ratio: {r['ratio']:.1f}x (target >= 20x)")
            for queue in ("bench-kill.fifo", "bench-kill-standard"):
                k = killed_and_resumed(url, work, audit, args.actions, queue, args.workers)
                print(f"\n## kill -9 half-way, then the same command again ({queue})")
                print(
                    f"killed after {k['killed_after_s']:.1f} s with {k['at_kill']} messages "
                    f"sent; resumed run took {k['resume_s']:.1f} s, exit {k['resume_exit']}"
                    f" (completed {k['resumed_completed']}, already done {k['already_done']},"
                    f" re-sent with the same dedup id {k['resent_deduped']},"
                    f" left unknown {k['unknown']})"
                )
                if k["operator"]:
                    o = k["operator"]
                    print(
                        f"operator settles the {k['unknown']} unknown items after looking "
                        f"downstream: {o['applied']} applied, {o['not_applied']} not applied; "
                        f"the same command again sends {o['sent']}, exit {o['exit']}"
                    )
                print(
                    f"dispatched {k['dispatched']} / {args.actions}; duplicates "
                    f"{k['duplicates']} (must be 0); misses {k['misses']} (must be 0); "
                    f"ledger {k['ledger']}; keys handed to SQS twice (before its dedup) "
                    f"{k['sent_twice']}"
                )
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
