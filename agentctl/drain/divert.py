"""Move messages from one SQS queue to another, exactly once, fast.

SQS ``StartMessageMoveTask`` only works from a dead-letter queue, so a live queue is moved by
hand: receive a batch with a long visibility timeout → record the claim in the ledger → send the
batch to the destination (original body, message attributes, FIFO group, trace header, plus an
``agentctl.origin`` attribute carrying the original message id) → record it sent → delete it
from the source → record it deleted. Several workers do this concurrently with the batch APIs.

Failure semantics (see :mod:`agentctl.drain.ledger` for the states):

- crash after the send, before the delete: the ledger says ``sent``; the re-run deletes the
  message from the source (at once, with the kept receipt handle, or when it is received again)
  and never sends it twice;
- crash after the claim, before the send is recorded: the re-run makes the message visible
  again and sends it (never lost); it is counted in ``resent`` as a possible duplicate;
- a send rejected as a whole (AccessDenied on the review queue, throttled after retries):
  the batch is released (visible again, ledger ``released``), this queue's move stops, and the
  error is reported; a re-run finishes it;
- an entry rejected inside a batch: it stays in the source, invisible until this run ends (so
  it is not retried in a loop and, on a FIFO queue, the rest of its group waits behind it),
  then visible again; it is reported in ``failed``.

FIFO order: SQS does not hand out a message group's next messages while earlier ones of that
group are in flight, and a batch is sent in received order before it is deleted, so each group
arrives in the destination in its original order whatever the number of workers. Receives from
a FIFO queue are serialised within a run (see ``_receive``).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import threading
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from agentctl.aws import Aws
from agentctl.drain.ledger import Claim, MoveLedger, MoveState
from agentctl.drain.queues import QueueCounts, QueueRef, call, counts
from agentctl.errors import AgentctlError, AwsCallError

ORIGIN_ATTRIBUTE = "agentctl.origin"
MAX_ATTRIBUTES = 10  # SQS limit per message
BATCH_BYTES = 256 * 1024  # stay under every SendMessageBatch payload limit
AMBIGUOUS_CODES = frozenset({"Timeout"})  # the request may have been carried out

Message = dict[str, Any]


@dataclass(frozen=True)
class MoveOptions:
    workers: int = 8
    visibility_timeout: int = 900  # seconds a received message stays ours
    wait_seconds: int = 1  # long poll: an empty answer then means the queue is empty
    batch_size: int = 10


@dataclass
class MoveResult:
    source: str
    dest: str
    moved: int = 0  # sent and deleted by this run
    finished: int = 0  # sent by an earlier, interrupted run: only deleted now, not resent
    resent: int = 0  # interrupted between claim and send: sent again (possible duplicate)
    without_origin: int = 0  # already had 10 attributes: no room for agentctl.origin
    skipped: int = 0  # not ours (redrive: not diverted from this queue): left in place
    failed: dict[str, str] = field(default_factory=dict)  # message id → reason; still in source
    error: AgentctlError | None = None  # the move stopped early
    left: QueueCounts | None = None  # the source after the move
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return self.error is None and not self.failed

    def to_dict(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "dest": self.dest,
            "moved": self.moved,
            "finished": self.finished,
            "resent": self.resent,
            "without_origin": self.without_origin,
            "skipped": self.skipped,
            "failed": dict(self.failed),
            "error": self.error.message if self.error else None,
            "left": self.left.to_dict() if self.left else None,
            "seconds": round(self.seconds, 3),
        }


ProgressFn = Callable[[MoveResult], None]


class Mover:
    """Moves every message of ``source`` to ``dest`` (those ``keep`` accepts, if given)."""

    def __init__(
        self,
        aws: Aws,
        ledger: MoveLedger,
        source: QueueRef,
        dest: QueueRef,
        *,
        incident_id: str,
        options: MoveOptions | None = None,
        keep: Callable[[Message], bool] | None = None,
        strip_origin: bool = False,
        on_progress: ProgressFn | None = None,
    ) -> None:
        self.aws = aws
        self.ledger = ledger
        self.source = source
        self.dest = dest
        self.incident_id = incident_id
        self.options = options or MoveOptions()
        self.keep = keep
        self.strip_origin = strip_origin
        self.on_progress = on_progress
        self.result = MoveResult(source=source.name, dest=dest.name)
        self._lock = threading.Lock()
        self._held: list[str] = []  # receipt handles to make visible again at the end
        self._stop = threading.Event()
        self._duplicates: list[Message] = []  # delivered twice; the other claim won
        self.run_id = uuid.uuid4().hex
        self._receive_lock: contextlib.AbstractContextManager[Any] = (
            threading.Lock() if source.fifo else contextlib.nullcontext()
        )

    # -- the run -----------------------------------------------------------------------------
    def run(self) -> MoveResult:
        started = time.perf_counter()
        interrupted: BaseException | None = None
        try:
            self._recover()
            workers = max(1, self.options.workers)
            with ThreadPoolExecutor(max_workers=workers) as pool:
                futures = [pool.submit(self._work) for _ in range(workers)]
                try:
                    for future in futures:
                        exc = future.exception()
                        if exc is None:
                            continue
                        if not isinstance(exc, Exception):  # a worker was interrupted
                            interrupted = interrupted or exc
                        elif self.result.error is None:
                            self.result.error = _typed(exc, self.source.name)
                except BaseException:  # Ctrl-C while waiting: workers finish their batch, stop
                    self._stop.set()
                    raise
        except AgentctlError as exc:
            self.result.error = exc
        finally:
            try:
                self._settle_duplicates()
            except AgentctlError as exc:
                self.result.error = self.result.error or exc
            self._release(self._held)
            try:
                self.result.left = counts(self.aws, self.source)
            except AgentctlError:
                self.result.left = None
            self.result.seconds = time.perf_counter() - started
        if interrupted is not None:
            raise interrupted
        return self.result

    def stop(self) -> None:
        """Ask the workers to stop after their current batch (each batch is finished: sent
        copies are deleted from the source and recorded)."""
        self._stop.set()

    def _work(self) -> None:
        try:
            while not self._stop.is_set():
                messages = self._receive()
                if not messages:
                    return
                self._process(messages)
        except BaseException:
            self._stop.set()
            raise

    # -- one batch ---------------------------------------------------------------------------
    def _receive(self) -> list[Message]:
        # FIFO: one receive at a time, so each receive sees the group locks the previous one
        # took; sends and deletes still overlap. This does not rely on the server resolving
        # concurrent receives atomically (moto does not), and FIFO throughput is bounded per
        # message group anyway.
        with self._receive_lock:
            return self._receive_batch()

    def _receive_batch(self) -> list[Message]:
        response = call(
            self.aws,
            "sqs",
            "ReceiveMessage",
            QueueUrl=self.source.url,
            MaxNumberOfMessages=self.options.batch_size,
            VisibilityTimeout=self.options.visibility_timeout,
            WaitTimeSeconds=self.options.wait_seconds,
            MessageAttributeNames=["All"],
            MessageSystemAttributeNames=["All"],
        )
        return list(response.get("Messages", []))

    def _process(self, messages: list[Message]) -> None:
        source = self.source.arn
        states = self.ledger.states(source, [m["MessageId"] for m in messages])
        done_before = [m for m in messages if states.get(m["MessageId"]) in _SENT_STATES]
        rest = [m for m in messages if states.get(m["MessageId"]) not in _SENT_STATES]
        if self.keep is not None:
            theirs = [m for m in rest if not self.keep(m)]
            rest = [m for m in rest if self.keep(m)]
            with self._lock:
                self._held += [m["ReceiptHandle"] for m in theirs]
                self.result.skipped += len(theirs)
        claim = Claim(won=set(), taken_over=set())
        if rest:
            claim = self.ledger.claim(
                source,
                self.dest.arn,
                self.incident_id,
                self.run_id,
                [(m["MessageId"], m["ReceiptHandle"]) for m in rest],
            )
            lost = [m for m in rest if m["MessageId"] not in claim.won]
            rest = [m for m in rest if m["MessageId"] in claim.won]
            with self._lock:
                self._duplicates += lost
        sent, failed, error = self._send(rest)
        self.ledger.settle(source, MoveState.SENT, [(m["MessageId"], d) for m, d in sent])
        if failed:
            self.ledger.settle(source, MoveState.RELEASED, [(mid, None) for mid in failed])
        deleted = self._delete(done_before + [m for m, _ in sent])
        self.ledger.settle(source, MoveState.DELETED, [(mid, None) for mid in deleted])
        sent_ids = {m["MessageId"] for m, _ in sent}
        with self._lock:
            self.result.moved += len(sent_ids)
            self.result.finished += sum(1 for m in done_before if m["MessageId"] in deleted)
            self.result.resent += len(sent_ids & claim.taken_over)
            self.result.failed.update(failed)
            self.result.without_origin += sum(
                1
                for m, _ in sent
                if not self.strip_origin and len(m.get("MessageAttributes", {})) >= MAX_ATTRIBUTES
            )
            snapshot = MoveResult(**{**self.result.__dict__, "failed": dict(self.result.failed)})
        if self.on_progress is not None:
            self.on_progress(snapshot)
        if error is not None:
            raise error

    def _settle_duplicates(self) -> None:
        """Copies of a message SQS delivered to two workers at once: the worker that won the
        claim sent it; delete it with the newest receipt handle (SQS may ignore a delete with an
        older one), or release it if the winner did not get to send it."""
        if not self._duplicates:
            return
        states = self.ledger.states(self.source.arn, [m["MessageId"] for m in self._duplicates])
        sent = [m for m in self._duplicates if states.get(m["MessageId"]) in _SENT_STATES]
        rest = [m["ReceiptHandle"] for m in self._duplicates if m not in sent]
        deleted = self._delete(sent)
        self.ledger.settle(self.source.arn, MoveState.DELETED, [(mid, None) for mid in deleted])
        self._release(rest)

    def _send(
        self, messages: list[Message]
    ) -> tuple[list[tuple[Message, str]], dict[str, str], AgentctlError | None]:
        """Send in size-bounded chunks. Returns (sent, failed entries, error that stopped it)."""
        sent: list[tuple[Message, str]] = []
        failed: dict[str, str] = {}
        unsent: list[Message] = []
        error: AgentctlError | None = None
        for chunk in _chunks([(str(i), m, self._entry(str(i), m)) for i, m in enumerate(messages)]):
            if error is not None:
                unsent += [m for _, m, _ in chunk]
                continue
            by_id = {entry_id: m for entry_id, m, _ in chunk}
            try:
                response = call(
                    self.aws,
                    "sqs",
                    "SendMessageBatch",
                    QueueUrl=self.dest.url,
                    Entries=[e for _, _, e in chunk],
                )
            except AwsCallError as exc:
                error = _for_dest(exc, self.dest.name)
                if exc.code in AMBIGUOUS_CODES:
                    continue  # may have been sent: leave the claim, the re-run resends
                unsent += list(by_id.values())
                continue
            for ok in response.get("Successful", []):
                sent.append((by_id[ok["Id"]], ok["MessageId"]))
            for bad in response.get("Failed", []):
                message = by_id[bad["Id"]]
                failed[message["MessageId"]] = f"{bad.get('Code')}: {bad.get('Message', '')}"
                with self._lock:
                    self._held.append(message["ReceiptHandle"])
        if unsent:
            self._release([m["ReceiptHandle"] for m in unsent])
            self.ledger.settle(
                self.source.arn, MoveState.RELEASED, [(m["MessageId"], None) for m in unsent]
            )
        return sent, failed, error

    def _entry(self, entry_id: str, message: Message) -> dict[str, Any]:
        attributes = {
            k: _attribute(v)
            for k, v in message.get("MessageAttributes", {}).items()
            if k != ORIGIN_ATTRIBUTE or not self.strip_origin
        }
        system = message.get("Attributes", {})
        if not self.strip_origin and len(attributes) < MAX_ATTRIBUTES:
            origin = {
                "message_id": message["MessageId"],
                "queue": self.source.arn,
                "sent_timestamp": system.get("SentTimestamp"),
                "receive_count": system.get("ApproximateReceiveCount"),
                "incident": self.incident_id,
            }
            if ORIGIN_ATTRIBUTE in attributes:  # moved before: keep the first origin
                origin = json.loads(attributes[ORIGIN_ATTRIBUTE]["StringValue"])
            attributes[ORIGIN_ATTRIBUTE] = {
                "DataType": "String",
                "StringValue": json.dumps(origin, sort_keys=True),
            }
        entry: dict[str, Any] = {"Id": entry_id, "MessageBody": message["Body"]}
        if attributes:
            entry["MessageAttributes"] = attributes
        if system.get("AWSTraceHeader"):
            entry["MessageSystemAttributes"] = {
                "AWSTraceHeader": {"DataType": "String", "StringValue": system["AWSTraceHeader"]}
            }
        if self.dest.fifo:
            entry["MessageGroupId"] = system.get("MessageGroupId") or "agentctl-diverted"
            key = f"{self.source.arn}\n{message['MessageId']}".encode()
            entry["MessageDeduplicationId"] = hashlib.sha256(key).hexdigest()
        return entry

    def _delete(self, messages: list[Message]) -> set[str]:
        return set(self._delete_handles([(m["MessageId"], m["ReceiptHandle"]) for m in messages]))

    def _delete_handles(self, handles: list[tuple[str, str]]) -> list[str]:
        """Delete (message id, receipt handle) pairs from the source in batches of 10; return
        the ids SQS confirmed."""
        deleted: list[str] = []
        for start in range(0, len(handles), 10):
            chunk = handles[start : start + 10]
            response = call(
                self.aws,
                "sqs",
                "DeleteMessageBatch",
                QueueUrl=self.source.url,
                Entries=[{"Id": str(i), "ReceiptHandle": h} for i, (_, h) in enumerate(chunk)],
            )
            deleted += [chunk[int(ok["Id"])][0] for ok in response.get("Successful", [])]
        return deleted

    # -- recovery and release ----------------------------------------------------------------
    def _recover(self) -> None:
        """Finish what an interrupted run left: delete what it sent; free what it claimed."""
        rows = self.ledger.unfinished(self.source.arn, self.dest.arn)
        sent = [r for r in rows if r.state is MoveState.SENT]
        for start in range(0, len(sent), 10):  # settle batch by batch: progress is durable
            chunk = sent[start : start + 10]
            done = self._delete_handles([(r.message_id, r.receipt_handle) for r in chunk])
            self.ledger.settle(self.source.arn, MoveState.DELETED, [(m, None) for m in done])
            self.result.finished += len(done)
        self._release([r.receipt_handle for r in rows if r.state is MoveState.CLAIMED])

    def _release(self, receipt_handles: list[str]) -> None:
        """Make messages visible again now (best effort: a stale handle just waits it out)."""
        for start in range(0, len(receipt_handles), 10):
            chunk = receipt_handles[start : start + 10]
            # on failure they become visible when the visibility timeout ends
            with contextlib.suppress(AgentctlError):
                call(
                    self.aws,
                    "sqs",
                    "ChangeMessageVisibilityBatch",
                    QueueUrl=self.source.url,
                    Entries=[
                        {"Id": str(i), "ReceiptHandle": h, "VisibilityTimeout": 0}
                        for i, h in enumerate(chunk)
                    ],
                )


_SENT_STATES = (MoveState.SENT, MoveState.DELETED)


def _attribute(value: dict[str, Any]) -> dict[str, Any]:
    """A received message attribute as SendMessage wants it (drop empty list fields)."""
    return {k: v for k, v in value.items() if v not in ([], None)}


def _size(entry: dict[str, Any]) -> int:
    size = len(entry["MessageBody"].encode())
    for name, attr in entry.get("MessageAttributes", {}).items():
        size += len(name) + len(attr["DataType"])
        size += len(str(attr.get("StringValue", "")).encode()) + len(attr.get("BinaryValue", b""))
    return size


def _chunks(
    entries: list[tuple[str, Message, dict[str, Any]]],
) -> list[list[tuple[str, Message, dict[str, Any]]]]:
    """Split into SendMessageBatch calls of at most 10 entries and ``BATCH_BYTES``, in order."""
    chunks: list[list[tuple[str, Message, dict[str, Any]]]] = []
    current: list[tuple[str, Message, dict[str, Any]]] = []
    size = 0
    for item in entries:
        item_size = _size(item[2])
        if current and (len(current) == 10 or size + item_size > BATCH_BYTES):
            chunks.append(current)
            current, size = [], 0
        current.append(item)
        size += item_size
    if current:
        chunks.append(current)
    return chunks


def _for_dest(exc: AwsCallError, name: str) -> AgentctlError:
    return AwsCallError(
        f"cannot send to {name}: {exc.message}",
        hint=exc.hint or "re-run the command; it continues where it stopped",
        code=exc.code,
        operation=exc.operation,
        request_id=exc.request_id,
    )


def _typed(exc: BaseException, name: str) -> AgentctlError:
    if isinstance(exc, AgentctlError):
        return exc
    from agentctl.aws import translate_error

    return translate_error(exc, f"sqs ({name})")
