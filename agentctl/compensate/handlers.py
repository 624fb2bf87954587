"""Handlers: how one compensation is sent (SQS, EventBridge, Lambda, HTTP, Python entry point).

A handler classifies every outcome into one of three, because exactly-once depends on it:

- ``applied``      the call returned success;
- ``not_applied``  the call certainly had no effect (rejected with a 4xx, throttled, endpoint
                   unreachable before anything was sent) — safe to send again;
- ``unknown``      the call may have had an effect (timeout after sending, 5xx, a function that
                   ran and raised) — reconciled before any retry, never re-sent blindly.

Every call carries the derived idempotency key: SQS as a message attribute (and as the FIFO
``MessageDeduplicationId``), HTTP as the ``Idempotency-Key`` header, EventBridge / Lambda /
Python in the payload (``idempotency_key``, added to a JSON object that lacks it).
Where the receiver does not dedupe, AWS clients are built without automatic retries: a retry
after a read timeout could otherwise send the same compensation twice.
"""

from __future__ import annotations

import importlib
import json
import socket
import threading
import urllib.error
import urllib.request
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from agentctl.aws import Aws
from agentctl.errors import BadInputError
from agentctl.spec.release import (
    Compensation,
    CompensationKind,
    EventsTarget,
    HttpTarget,
    LambdaTarget,
    PythonTarget,
    SqsTarget,
)

#: SQS FIFO deduplicates a MessageDeduplicationId for 5 minutes after the first accepted send;
#: we only rely on it well inside that window.
FIFO_DEDUP_SAFE_SECONDS = 240.0


class NotApplied(Exception):
    """Raise from a Python compensation to say: nothing happened, it is safe to retry."""


class Outcome(StrEnum):
    APPLIED = "applied"
    NOT_APPLIED = "not_applied"
    UNKNOWN = "unknown"


@dataclass(frozen=True)
class WorkItem:
    key: str
    dispatch_key: str
    agent: str
    tool: str
    payload: Any
    first_dispatched_at: float | None = None


@dataclass(frozen=True)
class Dispatch:
    outcome: Outcome
    detail: str = ""


class Handler(ABC):
    kind: CompensationKind
    batch_size = 1

    def __init__(self, aws: Aws, compensation: Compensation, agent: str) -> None:
        self.aws = aws
        self.compensation = compensation
        self.agent = agent

    @abstractmethod
    def dispatch(self, item: WorkItem) -> Dispatch:
        """Send one compensation; never raises for a per-item failure."""

    def dispatch_batch(self, items: Sequence[WorkItem]) -> list[Dispatch]:
        return [self.dispatch(item) for item in items]

    def check(self, item: WorkItem) -> bool | None:
        """Was this compensation already applied? ``None``: this handler cannot tell."""
        return None

    def resend_is_deduped(self, item: WorkItem, now: float) -> bool:
        """Would sending ``item`` again with the same key be dropped by the receiver?"""
        return self.compensation.receiver_dedupes

    def describe(self) -> str:
        return self.kind.value

    @property
    def dedupes(self) -> bool:
        return self.compensation.receiver_dedupes


def classify_aws_error(exc: BaseException) -> Dispatch:
    """Map a botocore exception to applied / not applied / unknown."""
    from botocore.exceptions import (
        ClientError,
        ConnectTimeoutError,
        EndpointConnectionError,
        NoCredentialsError,
        NoRegionError,
        ParamValidationError,
    )

    if isinstance(exc, ClientError):
        err = exc.response.get("Error", {})
        status = int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0)
        text = f"{err.get('Code', 'Error')}: {err.get('Message', '')}".strip(": ")
        if 0 < status < 500:
            return Dispatch(Outcome.NOT_APPLIED, f"rejected ({status}) {text}")
        return Dispatch(Outcome.UNKNOWN, f"server error ({status or '?'}) {text}")
    if isinstance(
        exc,
        EndpointConnectionError
        | ConnectTimeoutError
        | NoCredentialsError
        | NoRegionError
        | ParamValidationError,
    ):
        return Dispatch(Outcome.NOT_APPLIED, f"not sent: {type(exc).__name__}: {exc}")
    return Dispatch(Outcome.UNKNOWN, f"outcome unknown: {type(exc).__name__}: {exc}")


def _with_key(payload: Any, key: str) -> Any:
    if isinstance(payload, dict) and "idempotency_key" not in payload:
        return {**payload, "idempotency_key": key}
    return payload


class SqsHandler(Handler):
    kind = CompensationKind.SQS
    batch_size = 10

    def __init__(self, aws: Aws, compensation: Compensation, agent: str) -> None:
        super().__init__(aws, compensation, agent)
        assert compensation.sqs is not None
        self.target: SqsTarget = compensation.sqs
        self.fifo = self.target.queue.endswith(".fifo")
        # No automatic retries unless the receiver drops duplicates (see module docstring).
        self.client = aws.client("sqs", retries=None if self.dedupes else 0)
        self._url: str | None = None
        self._lock = threading.Lock()

    @property
    def dedupes(self) -> bool:
        return self.fifo or self.compensation.receiver_dedupes

    def url(self) -> str:
        with self._lock:
            if self._url is None:
                queue = self.target.queue
                if queue.startswith("https://") or queue.startswith("http://"):
                    self._url = queue
                else:
                    self._url = str(self.client.get_queue_url(QueueName=queue)["QueueUrl"])
            return self._url

    def _entry(self, index: int, item: WorkItem) -> dict[str, Any]:
        entry: dict[str, Any] = {
            "Id": str(index),
            "MessageBody": json.dumps(item.payload, sort_keys=True),
            "MessageAttributes": {
                "agentctl-idempotency-key": {
                    "DataType": "String",
                    "StringValue": item.dispatch_key,
                },
                "agentctl-agent": {"DataType": "String", "StringValue": item.agent},
                "agentctl-tool": {"DataType": "String", "StringValue": item.tool},
            },
        }
        if self.fifo:
            entry["MessageDeduplicationId"] = item.dispatch_key
            entry["MessageGroupId"] = self.target.message_group or item.dispatch_key
        return entry

    def dispatch(self, item: WorkItem) -> Dispatch:
        return self.dispatch_batch([item])[0]

    def dispatch_batch(self, items: Sequence[WorkItem]) -> list[Dispatch]:
        try:
            url = self.url()
        except Exception as exc:
            return [classify_aws_error(exc)] * len(items)
        entries = [self._entry(i, item) for i, item in enumerate(items)]
        try:
            response = self.client.send_message_batch(QueueUrl=url, Entries=entries)
        except Exception as exc:
            return [classify_aws_error(exc)] * len(items)
        out: dict[str, Dispatch] = {}
        for ok in response.get("Successful", []):
            out[ok["Id"]] = Dispatch(Outcome.APPLIED, f"sqs message {ok.get('MessageId', '')}")
        for bad in response.get("Failed", []):
            # A failed batch entry was not enqueued.
            out[bad["Id"]] = Dispatch(
                Outcome.NOT_APPLIED, f"rejected: {bad.get('Code', '')}: {bad.get('Message', '')}"
            )
        return [
            out.get(str(i), Dispatch(Outcome.UNKNOWN, "no result for this entry"))
            for i in range(len(items))
        ]

    def resend_is_deduped(self, item: WorkItem, now: float) -> bool:
        if self.compensation.receiver_dedupes:
            return True
        if self.fifo and item.first_dispatched_at is not None:
            return now - item.first_dispatched_at < FIFO_DEDUP_SAFE_SECONDS
        return False

    def describe(self) -> str:
        return f"sqs {self.target.queue}"


class EventsHandler(Handler):
    kind = CompensationKind.EVENTS
    batch_size = 10

    def __init__(self, aws: Aws, compensation: Compensation, agent: str) -> None:
        super().__init__(aws, compensation, agent)
        assert compensation.events is not None
        self.target: EventsTarget = compensation.events
        self.client = aws.client("events", retries=None if self.dedupes else 0)

    def _entry(self, item: WorkItem) -> dict[str, Any]:
        detail = item.payload if isinstance(item.payload, dict) else {"payload": item.payload}
        return {
            "Source": self.target.source,
            "DetailType": self.target.detail_type,
            "Detail": json.dumps(_with_key(detail, item.dispatch_key), sort_keys=True),
            "EventBusName": self.target.bus,
        }

    def dispatch(self, item: WorkItem) -> Dispatch:
        return self.dispatch_batch([item])[0]

    def dispatch_batch(self, items: Sequence[WorkItem]) -> list[Dispatch]:
        try:
            response = self.client.put_events(Entries=[self._entry(i) for i in items])
        except Exception as exc:
            return [classify_aws_error(exc)] * len(items)
        results = response.get("Entries", [])
        out = []
        for index in range(len(items)):
            entry = results[index] if index < len(results) else {}
            if entry.get("EventId"):
                out.append(Dispatch(Outcome.APPLIED, f"event {entry['EventId']}"))
            elif entry.get("ErrorCode"):
                text = f"{entry['ErrorCode']}: {entry.get('ErrorMessage', '')}"
                out.append(Dispatch(Outcome.NOT_APPLIED, f"rejected: {text}"))
            else:
                out.append(Dispatch(Outcome.UNKNOWN, "no result for this entry"))
        return out

    def describe(self) -> str:
        return f"events {self.target.bus}/{self.target.detail_type}"


class LambdaHandler(Handler):
    kind = CompensationKind.LAMBDA

    def __init__(self, aws: Aws, compensation: Compensation, agent: str) -> None:
        super().__init__(aws, compensation, agent)
        assert compensation.lambda_ is not None
        self.target: LambdaTarget = compensation.lambda_
        self.client = aws.client("lambda", retries=None if self.dedupes else 0)

    def dispatch(self, item: WorkItem) -> Dispatch:
        params: dict[str, Any] = {
            "FunctionName": self.target.function,
            "InvocationType": "RequestResponse",
            "Payload": json.dumps(_with_key(item.payload, item.dispatch_key)).encode(),
        }
        if self.target.qualifier:
            params["Qualifier"] = self.target.qualifier
        try:
            response = self.client.invoke(**params)
        except Exception as exc:
            return classify_aws_error(exc)
        body = response.get("Payload")
        raw = body.read() if hasattr(body, "read") else (body or b"")
        text = raw.decode("utf-8", "replace")[:1000]
        if response.get("FunctionError"):
            # The function ran and raised: whatever it did before raising stands.
            return Dispatch(
                Outcome.UNKNOWN, f"function error ({response['FunctionError']}): {text}"
            )
        return Dispatch(Outcome.APPLIED, f"lambda {response.get('StatusCode')}: {text}")

    def describe(self) -> str:
        return f"lambda {self.target.function}"


class HttpHandler(Handler):
    kind = CompensationKind.HTTP

    def __init__(self, aws: Aws, compensation: Compensation, agent: str) -> None:
        super().__init__(aws, compensation, agent)
        assert compensation.http is not None
        self.target: HttpTarget = compensation.http

    def dispatch(self, item: WorkItem) -> Dispatch:
        body = json.dumps(item.payload).encode()
        headers = {
            "Content-Type": "application/json",
            **self.target.headers,
            "Idempotency-Key": item.dispatch_key,
        }
        request = urllib.request.Request(
            self.target.url, data=body, headers=headers, method=self.target.method
        )
        try:
            with urllib.request.urlopen(request, timeout=self.target.timeout) as response:
                return Dispatch(Outcome.APPLIED, f"http {response.status}")
        except urllib.error.HTTPError as exc:
            if exc.code < 500:
                return Dispatch(Outcome.NOT_APPLIED, f"rejected: http {exc.code} {exc.reason}")
            return Dispatch(Outcome.UNKNOWN, f"server error: http {exc.code} {exc.reason}")
        except urllib.error.URLError as exc:
            if isinstance(exc.reason, ConnectionRefusedError | socket.gaierror):
                return Dispatch(Outcome.NOT_APPLIED, f"not sent: {exc.reason}")
            return Dispatch(Outcome.UNKNOWN, f"outcome unknown: {exc.reason}")
        except (TimeoutError, OSError) as exc:
            return Dispatch(Outcome.UNKNOWN, f"outcome unknown: {type(exc).__name__}: {exc}")

    def check(self, item: WorkItem) -> bool | None:
        if self.target.check_url is None:
            return None
        url = self.target.check_url.replace("{key}", item.dispatch_key)
        try:
            with urllib.request.urlopen(url, timeout=self.target.timeout) as response:
                return 200 <= response.status < 300
        except urllib.error.HTTPError as exc:
            return False if exc.code == 404 else None
        except (urllib.error.URLError, OSError):
            return None

    def describe(self) -> str:
        return f"http {self.target.method} {self.target.url}"


def load_entry_point(spec: str) -> Callable[..., Any]:
    module_name, _, attr = spec.partition(":")
    try:
        module = importlib.import_module(module_name)
        func = getattr(module, attr)
    except (ImportError, AttributeError) as exc:
        raise BadInputError(
            f"cannot load entry point {spec!r}: {exc}",
            hint="the module must be importable by agentctl (installed, or on PYTHONPATH)",
        ) from exc
    if not callable(func):
        raise BadInputError(f"entry point {spec!r} is not callable")
    return func


class PythonHandler(Handler):
    kind = CompensationKind.PYTHON

    def __init__(self, aws: Aws, compensation: Compensation, agent: str) -> None:
        super().__init__(aws, compensation, agent)
        assert compensation.python is not None
        self.target: PythonTarget = compensation.python
        self.func = load_entry_point(self.target.entry_point)
        self.check_func = load_entry_point(self.target.check) if self.target.check else None

    def dispatch(self, item: WorkItem) -> Dispatch:
        try:
            result = self.func(item.payload, idempotency_key=item.dispatch_key)
        except NotApplied as exc:
            return Dispatch(Outcome.NOT_APPLIED, f"not applied: {exc}")
        except Exception as exc:
            return Dispatch(Outcome.UNKNOWN, f"raised after starting: {type(exc).__name__}: {exc}")
        return Dispatch(Outcome.APPLIED, repr(result)[:200])

    def check(self, item: WorkItem) -> bool | None:
        if self.check_func is None:
            return None
        try:
            return bool(self.check_func(item.payload, idempotency_key=item.dispatch_key))
        except Exception:
            return None

    def describe(self) -> str:
        return f"python {self.target.entry_point}"


HANDLERS: dict[CompensationKind, type[Handler]] = {
    CompensationKind.SQS: SqsHandler,
    CompensationKind.EVENTS: EventsHandler,
    CompensationKind.LAMBDA: LambdaHandler,
    CompensationKind.HTTP: HttpHandler,
    CompensationKind.PYTHON: PythonHandler,
}


def make_handler(aws: Aws, compensation: Compensation, agent: str) -> Handler:
    return HANDLERS[compensation.kind](aws, compensation, agent)
