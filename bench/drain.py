"""Benchmark: divert a 10,000-message backlog to a review queue, vs the naive loop.

Starts a local AWS endpoint (moto, in this process) that adds a fixed latency to every request
(default 20 ms), fills one work queue with ``--messages`` + ``--naive-messages`` messages, and
in one run times:

* the naive loop (one receive, one send, one delete per message, one worker) over the first
  ``--naive-messages`` (default 500: at three round trips per message, 10,000 would take
  ten minutes), then
* agentctl's divert (:class:`agentctl.drain.divert.Mover`: batch receive with a long visibility
  timeout, claim in the SQLite ledger, SendMessageBatch, record sent, DeleteMessageBatch, record
  deleted; ``--workers`` workers, default 8) over the other ``--messages`` (default 10,000);

then a second divert run (it must send nothing), and reads both review queues back: every
original message id (carried in ``agentctl.origin``, or in an ``orig`` attribute for the naive
loop) must be there exactly once. Prints messages per second of each, the ratio, and the lost
and duplicated counts (both must be 0; the exit code is 1 otherwise, or below 20x).

moto is made to behave like SQS where it matters for a benchmark: see ``fast_moto_sqs`` and
``OneAtATime`` (its hot spots scale with the queue length, and it is not thread-safe).

    python bench/drain.py [--latency-ms 20] [--messages 10000] [--naive-messages 500]
                          [--workers 8]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from latency_endpoint import LatencyEndpoint  # noqa: E402

from agentctl.aws import Aws, AwsSettings  # noqa: E402
from agentctl.drain.divert import ORIGIN_ATTRIBUTE, MoveOptions, Mover  # noqa: E402
from agentctl.drain.ledger import SqliteMoveLedger  # noqa: E402
from agentctl.drain.queues import resolve  # noqa: E402
from agentctl.incidents.sqlite import SqliteStore  # noqa: E402
from agentctl.sandbox import SANDBOX_ENV  # noqa: E402


def fast_moto_sqs() -> None:
    """Take three hot spots out of moto's SQS in this process's server, keeping its results.

    For each message it hands out, moto recomputes every queue attribute (three full scans of
    the queue) to check the retention period; for each message it looks at, it reads the clock
    through three datetime conversions; and on every SendMessage it rebuilds every attribute
    again, the approximate counts included. With 10,000 messages queued that makes the
    in-process server's CPU, not the injected round trip, the bottleneck of both contenders.
    Real SQS does none of this. The replacements compute the same values directly (the counts,
    approximate in SQS too, may lag by 50 ms).
    """
    import moto.sqs.models as sqs_models

    def retained(self: Any, queue_name: str, message: Any) -> bool:
        period = int(self.get_queue(queue_name).message_retention_period)
        return bool(period + message.sent_timestamp / 1000 > time.time())

    sqs_models.SQSBackend.is_message_valid_based_on_retention_period = retained
    sqs_models.unix_time_millis = lambda dt=None: time.time() * 1000.0
    # moto also rebuilds every queue attribute, the three approximate counts included (each a
    # scan of the queue), on every SendMessage (to read ContentBasedDeduplication). SQS's counts
    # are approximate and lag by up to a minute; here they may lag by 50 ms.
    for name in (
        "approximate_number_of_messages",
        "approximate_number_of_messages_not_visible",
        "approximate_number_of_messages_delayed",
    ):
        setattr(sqs_models.Queue, name, property(_lagging(getattr(sqs_models.Queue, name).fget)))

    # Deleting a message rebuilds the whole message list in Python: find it by receipt handle
    # through an index instead (same checks, same errors).
    handles: dict[str, Any] = {}
    mark_received = sqs_models.Message.mark_received

    def received(message: Any, visibility_timeout: int | None = None) -> None:
        mark_received(message, visibility_timeout)
        handles[message.receipt_handle] = message

    def delete_message(queue: Any, receipt_handle: str) -> None:
        if receipt_handle in queue.deleted_messages:
            return
        message = handles.get(receipt_handle)
        if message is None or message not in queue._messages:
            raise sqs_models.ReceiptHandleIsInvalid()
        queue._messages.remove(message)
        queue.pending_messages.discard(message)
        queue.deleted_messages.update(message.all_receipt_handles)

    sqs_models.Message.mark_received = received
    sqs_models.Queue.delete_message = delete_message


class OneAtATime:
    """moto's SQS is not thread-safe: concurrent requests can hand one message to two receivers,
    undo each other's deletes (a delete answers success and the message comes back) or fail
    with "Set changed size during iteration". AWS applies each request atomically. This runs
    moto's handling of one request at a time; the injected latency still overlaps. (moto's long
    polling would wait inside the lock, so the bench receives with WaitTimeSeconds=0; against
    moto an empty short poll is exact.)"""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.lock = threading.Lock()

    def __call__(self, environ: Any, start_response: Any) -> Any:
        with self.lock:
            return list(self.app(environ, start_response))


def _lagging(count: Any, lag: float = 0.05) -> Any:
    def read(queue: Any) -> Any:
        cache = queue.__dict__.setdefault("_bench_counts", {})
        now = time.monotonic()
        hit = cache.get(count)
        if hit is None or now - hit[0] > lag:
            hit = cache[count] = (now, count(queue))
        return hit[1]

    return read


def fill(aws: Aws, url: str, count: int, *, threads: int = 16) -> list[str]:
    sqs = aws.client("sqs")

    def batch(first: int) -> list[str]:
        entries = [
            {
                "Id": str(i),
                "MessageBody": json.dumps({"ticket": i, "text": "refund request " + "x" * 200}),
                "MessageAttributes": {"n": {"DataType": "Number", "StringValue": str(i)}},
            }
            for i in range(first, min(first + 10, count))
        ]
        response = sqs.send_message_batch(QueueUrl=url, Entries=entries)
        assert not response.get("Failed"), response["Failed"]
        return [ok["MessageId"] for ok in response["Successful"]]

    with ThreadPoolExecutor(threads) as pool:
        return [mid for ids in pool.map(batch, range(0, count, 10)) for mid in ids]


def read_back(aws: Aws, url: str, key: Any, *, threads: int = 16) -> Counter[str]:
    """Receive and delete everything in ``url``; count the copies of each original id
    (``key(message)``). A copy is a distinct message id in ``url``: the same message handed
    to two readers at once (moto's receive is not atomic across threads) is one copy."""
    sqs = aws.client("sqs")

    def reader() -> set[tuple[str, str]]:
        mine: set[tuple[str, str]] = set()
        while True:
            messages = sqs.receive_message(
                QueueUrl=url,
                MaxNumberOfMessages=10,
                VisibilityTimeout=600,
                WaitTimeSeconds=0,
                MessageAttributeNames=["All"],
            ).get("Messages", [])
            if not messages:
                return mine
            mine.update((key(m), m["MessageId"]) for m in messages)
            sqs.delete_message_batch(
                QueueUrl=url,
                Entries=[
                    {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]}
                    for i, m in enumerate(messages)
                ],
            )

    copies: set[tuple[str, str]] = set()
    with ThreadPoolExecutor(threads) as pool:
        for part in pool.map(lambda _: reader(), range(threads)):
            copies |= part
    return Counter(original for original, _ in copies)


def naive(aws: Aws, source: str, dest: str, limit: int) -> tuple[int, list[str]]:
    """One receive, one send, one delete per message, one worker (``limit`` messages)."""
    sqs = aws.client("sqs")
    moved = 0
    ids: list[str] = []
    while moved < limit:
        messages = sqs.receive_message(
            QueueUrl=source,
            MaxNumberOfMessages=1,
            VisibilityTimeout=600,
            MessageAttributeNames=["All"],
        ).get("Messages", [])
        if not messages:
            break
        (m,) = messages
        ids.append(m["MessageId"])
        attrs = dict(m.get("MessageAttributes", {}))
        attrs["orig"] = {"DataType": "String", "StringValue": m["MessageId"]}
        sqs.send_message(QueueUrl=dest, MessageBody=m["Body"], MessageAttributes=attrs)
        sqs.delete_message(QueueUrl=source, ReceiptHandle=m["ReceiptHandle"])
        moved += 1
    return moved, ids


def second_run(aws: Aws, store: SqliteStore, work: Any, review: Any, options: MoveOptions) -> Any:
    """The second run. Any message the ledger says was deleted but that is still in the source
    (a delete SQS lost) is made visible again with its kept receipt handle; the re-run must
    delete such messages without sending them again, and send nothing else."""
    rows = store.conn.execute(
        "SELECT receipt_handle FROM drain_moves WHERE source = ? AND state = 'deleted'",
        (work.arn,),
    ).fetchall()
    sqs = aws.client("sqs")
    for first in range(0, len(rows), 10):
        sqs.change_message_visibility_batch(
            QueueUrl=work.url,
            Entries=[
                {"Id": str(i), "ReceiptHandle": r[0], "VisibilityTimeout": 0}
                for i, r in enumerate(rows[first : first + 10])
            ],
        )
    return Mover(
        aws, SqliteMoveLedger(store), work, review, incident_id="INC-BENCH", options=options
    ).run()


def check(sent: list[str], seen: Counter[str]) -> tuple[int, int]:
    lost = len(set(sent) - set(seen))
    duplicated = sum(n - 1 for n in seen.values() if n > 1) + sum(
        n for mid, n in seen.items() if mid not in set(sent)
    )
    return lost, duplicated


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--latency-ms", type=float, default=20.0)
    parser.add_argument("--messages", type=int, default=10_000)
    parser.add_argument("--naive-messages", type=int, default=500)
    parser.add_argument("--workers", type=int, default=MoveOptions().workers)
    args = parser.parse_args()
    os.environ.update(SANDBOX_ENV)
    fast_moto_sqs()

    endpoint = LatencyEndpoint(latency_ms=args.latency_ms)
    endpoint.middleware.app = OneAtATime(endpoint.middleware.app)
    with endpoint as url, tempfile.TemporaryDirectory() as tmp:
        aws = Aws(AwsSettings(region="us-east-1", endpoint_url=url))
        sqs = aws.client("sqs")
        for name in ("work", "review", "naive-review"):
            sqs.create_queue(QueueName=name)
        work, review = resolve(aws, "work"), resolve(aws, "review")
        naive_review = resolve(aws, "naive-review")
        print(
            f"endpoint {url} (+{args.latency_ms:g} ms per request); filling "
            f"{args.messages} + {args.naive_messages} messages ...",
            flush=True,
        )
        # One queue holds both backlogs: the naive loop moves its share first, out of the same
        # full queue, so both pay the same server-side cost per call.
        everything = fill(aws, work.url, args.messages + args.naive_messages)

        started = time.perf_counter()
        naive_moved, naive_ids = naive(aws, work.url, naive_review.url, args.naive_messages)
        naive_s = time.perf_counter() - started
        sent = sorted(set(everything) - set(naive_ids))

        store = SqliteStore(Path(tmp) / "agentctl.db")
        options = MoveOptions(workers=args.workers, wait_seconds=0)  # see OneAtATime
        mover = Mover(
            aws, SqliteMoveLedger(store), work, review, incident_id="INC-BENCH", options=options
        )
        started = time.perf_counter()
        result = mover.run()
        ours_s = time.perf_counter() - started
        assert result.ok, result.to_dict()

        rerun = second_run(aws, store, work, review, options)
        seen = read_back(
            aws,
            review.url,
            lambda m: json.loads(m["MessageAttributes"][ORIGIN_ATTRIBUTE]["StringValue"])[
                "message_id"
            ],
        )
        naive_seen = read_back(
            aws, naive_review.url, lambda m: m["MessageAttributes"]["orig"]["StringValue"]
        )
        lost, duplicated = check(sent, seen)
        naive_lost, naive_duplicated = check(naive_ids, naive_seen)
        store.close_connection()

    ours_rate = result.moved / ours_s
    naive_rate = naive_moved / naive_s
    print(
        f"agentctl divert : {result.moved:>6} messages in {ours_s:7.2f} s = "
        f"{ours_rate:8.1f} msg/s  ({args.workers} workers, batches of 10, SQLite ledger)"
    )
    print(
        f"naive loop      : {naive_moved:>6} messages in {naive_s:7.2f} s = "
        f"{naive_rate:8.1f} msg/s  (1 worker, receive/send/delete one at a time; "
        f"{args.naive_messages} messages)"
    )
    print(f"ratio           : {ours_rate / naive_rate:.1f}x the naive loop (target >= 20x)")
    left = result.left.in_flight + result.left.queued if result.left else "?"
    print(
        f"agentctl divert : lost {lost}, duplicated {duplicated}; {left} left in the source; "
        f"second run: sent {rerun.moved}, deleted {rerun.finished} already-sent copies"
    )
    print(f"naive loop      : lost {naive_lost}, duplicated {naive_duplicated}")
    ok = (
        lost == 0
        and duplicated == 0
        and rerun.moved == 0
        and left == 0
        and ours_rate / naive_rate >= 20
    )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
