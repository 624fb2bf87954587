"""SQS queues as drain sees them: resolved references and their message counts."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from agentctl.aws import Aws, iam_action_for, translate_error
from agentctl.errors import AwsCallError
from agentctl.spec.intake import is_fifo, queue_name

NOT_FOUND_CODES = frozenset(
    {"AWS.SimpleQueueService.NonExistentQueue", "QueueDoesNotExist", "NonExistentQueue"}
)
COUNT_ATTRIBUTES = [
    "ApproximateNumberOfMessages",
    "ApproximateNumberOfMessagesNotVisible",
    "ApproximateNumberOfMessagesDelayed",
]


def call(aws: Aws, service: str, operation: str, **params: Any) -> dict[str, Any]:
    """One AWS call outside a lever: typed errors (AccessDenied names the missing permission)."""
    from botocore import xform_name

    client = aws.client(service)
    try:
        response: dict[str, Any] = getattr(client, xform_name(operation))(**params)
    except Exception as exc:
        raise translate_error(exc, iam_action_for(client, operation)) from exc
    return response


@dataclass(frozen=True)
class QueueRef:
    """A queue, resolved: its name, URL and ARN."""

    name: str
    url: str
    arn: str

    @property
    def fifo(self) -> bool:
        return is_fifo(self.name)


@dataclass(frozen=True)
class QueueCounts:
    """Approximate counts (SQS publishes them with a lag of up to a minute)."""

    queued: int  # visible: waiting for a consumer
    in_flight: int  # not visible: received by a consumer, not yet deleted
    delayed: int = 0

    def to_dict(self) -> dict[str, int]:
        return {"queued": self.queued, "in_flight": self.in_flight, "delayed": self.delayed}


def resolve(aws: Aws, ref: str) -> QueueRef:
    """Resolve a queue name, URL or ARN; raise a clear error if the queue does not exist."""
    name = queue_name(ref)
    try:
        if ref.startswith(("http://", "https://")):
            url = ref
        elif ref.startswith("arn:"):
            account = ref.split(":")[4]
            url = call(aws, "sqs", "GetQueueUrl", QueueName=name, QueueOwnerAWSAccountId=account)[
                "QueueUrl"
            ]
        else:
            url = call(aws, "sqs", "GetQueueUrl", QueueName=name)["QueueUrl"]
        attrs = call(aws, "sqs", "GetQueueAttributes", QueueUrl=url, AttributeNames=["QueueArn"])
    except AwsCallError as exc:
        raise _not_found(exc, name) from exc
    return QueueRef(name=name, url=url, arn=attrs["Attributes"]["QueueArn"])


def counts(aws: Aws, queue: QueueRef) -> QueueCounts:
    try:
        attrs = call(
            aws, "sqs", "GetQueueAttributes", QueueUrl=queue.url, AttributeNames=COUNT_ATTRIBUTES
        )["Attributes"]
    except AwsCallError as exc:
        raise _not_found(exc, queue.name) from exc
    return QueueCounts(
        queued=int(attrs.get("ApproximateNumberOfMessages", 0)),
        in_flight=int(attrs.get("ApproximateNumberOfMessagesNotVisible", 0)),
        delayed=int(attrs.get("ApproximateNumberOfMessagesDelayed", 0)),
    )


def _not_found(exc: AwsCallError, name: str) -> AwsCallError:
    if exc.code in NOT_FOUND_CODES:
        return AwsCallError(
            f"SQS queue {name} does not exist",
            hint="check `queues:` in the agent spec (name, URL or ARN) and the region",
            code=exc.code,
            operation=exc.operation,
        )
    return AwsCallError(
        f"SQS queue {name}: {exc.message}",
        hint=exc.hint,
        code=exc.code,
        operation=exc.operation,
        request_id=exc.request_id,
    )
