"""Spec models for rollback: where the release pointer lives, and per-tool compensations.

A side-effecting tool declares either a ``compensation`` (the inverse, sent exactly once per
original action) or a ``mitigation`` (what to do for an effect that cannot be undone, such as a
sent email). Payload templates are written by the spec author and rendered in Jinja's sandbox;
the action's data are passed in as variables and every ``{{ expression }}`` is emitted as JSON,
so agent-controlled text can never become template source or break out of the JSON payload.

This module has its own strict base on purpose: it must not import ``agentctl.spec.models``
(which imports it).
"""

from __future__ import annotations

import re
from enum import StrEnum
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

PARAMETER_PATTERN = r"^/?[A-Za-z0-9_.\-/]+$"
ENTRY_POINT = re.compile(r"^[A-Za-z_][\w]*(\.[A-Za-z_][\w]*)*:[A-Za-z_][\w]*$")
DOTTED_PATH = re.compile(r"^(args|result|effects|action)(\.[A-Za-z0-9_\-]+)*$")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True, defer_build=True)


# -- the release pointer ---------------------------------------------------------------------
class ReleasePointer(_Strict):
    """Where the agent reads its active release: an SSM parameter (its value is the release
    document; versions and labels give the history), or a Lambda alias (the release's function
    version)."""

    parameter: str | None = Field(
        default=None, pattern=PARAMETER_PATTERN, description="SSM parameter holding the release."
    )
    function: str | None = Field(default=None, description="Lambda function whose alias moves.")
    alias: str | None = Field(default=None, description="The Lambda alias the agent invokes.")

    @model_validator(mode="after")
    def _one_location(self) -> ReleasePointer:
        lam = self.function is not None or self.alias is not None
        if self.parameter is not None and lam:
            raise ValueError("give either `parameter` or `function` + `alias`, not both")
        if self.parameter is None and not lam:
            raise ValueError("give `parameter` (SSM) or `function` + `alias` (Lambda alias)")
        if lam and (self.function is None or self.alias is None):
            raise ValueError("a Lambda alias pointer needs both `function` and `alias`")
        return self

    @property
    def kind(self) -> str:
        return "ssm" if self.parameter is not None else "lambda_alias"

    @property
    def target(self) -> str:
        if self.parameter is not None:
            return f"ssm:{self.parameter}"
        return f"lambda:{self.function}:{self.alias}"


# -- compensation targets ------------------------------------------------------------------------
class SqsTarget(_Strict):
    """Send one message per compensation. A ``.fifo`` queue gets the derived idempotency key as
    ``MessageDeduplicationId``, so a re-send within SQS's 5-minute window is dropped by SQS."""

    queue: str = Field(min_length=1, description="Queue name or URL.")
    message_group: str | None = Field(
        default=None, description="FIFO MessageGroupId (default: the compensation key)."
    )


class EventsTarget(_Strict):
    """Put one EventBridge event per compensation (``Detail`` is the payload)."""

    bus: str = Field(default="default", description="Event bus name or ARN.")
    source: str = Field(default="agentctl.rollback", description="Event `Source`.")
    detail_type: str = Field(min_length=1, description="Event `DetailType`.")


class LambdaTarget(_Strict):
    """Invoke a function synchronously with the payload."""

    function: str = Field(min_length=1, description="Function name or ARN.")
    qualifier: str | None = Field(default=None, description="Version or alias.")


class HttpTarget(_Strict):
    """Call an HTTP endpoint with the payload as JSON and an ``Idempotency-Key`` header."""

    url: str = Field(pattern=r"^https?://", description="Endpoint URL.")
    method: Literal["POST", "PUT", "PATCH", "DELETE"] = "POST"
    headers: dict[str, str] = Field(default_factory=dict)
    timeout: float = Field(default=10.0, gt=0, le=120, description="Seconds.")
    check_url: str | None = Field(
        default=None,
        pattern=r"^https?://",
        description="GET this URL (`{key}` is replaced by the idempotency key) to reconcile an "
        "unknown outcome: 2xx = applied, 404 = not applied.",
    )


class PythonTarget(_Strict):
    """Call ``package.module:function(payload, idempotency_key=KEY)``. Raising
    ``agentctl.compensate.handlers.NotApplied`` means nothing happened; any other exception
    leaves the outcome unknown."""

    entry_point: str = Field(description="`package.module:function`.")
    check: str | None = Field(
        default=None,
        description="`package.module:function(payload, idempotency_key=KEY) -> bool`: was it "
        "already applied? Used to reconcile an unknown outcome.",
    )

    @field_validator("entry_point", "check")
    @classmethod
    def _entry_point(cls, value: str | None) -> str | None:
        if value is not None and not ENTRY_POINT.match(value):
            raise ValueError(f"not an entry point `package.module:function`: {value!r}")
        return value


class _Reported(_Strict):
    noun: str | None = Field(
        default=None, description="What one item is called in the plan, e.g. `refunds`."
    )
    amount: str | None = Field(
        default=None,
        description="Dotted path of a number to total in the plan, e.g. `args.amount`.",
    )
    currency: str = Field(default="", description="Prefix for the total, e.g. `$`.")

    @field_validator("amount")
    @classmethod
    def _path(cls, value: str | None) -> str | None:
        if value is not None and not DOTTED_PATH.match(value):
            raise ValueError("must be a dotted path under args, result, effects or action")
        return value


class CompensationKind(StrEnum):
    SQS = "sqs"
    EVENTS = "events"
    LAMBDA = "lambda"
    HTTP = "http"
    PYTHON = "python"


class Compensation(_Reported):
    """The inverse of a side-effecting tool: exactly one target, and a payload template."""

    sqs: SqsTarget | None = None
    events: EventsTarget | None = None
    lambda_: LambdaTarget | None = Field(default=None, alias="lambda")
    http: HttpTarget | None = None
    python: PythonTarget | None = None
    payload: str | None = Field(
        default=None,
        description="Jinja template of the JSON payload; variables: action, args, result, "
        "effects, agent, tool, idempotency_key, compensation_key. Every `{{ ... }}` is emitted "
        "as JSON. Default: the whole action.",
    )
    receiver_dedupes: bool = Field(
        default=False,
        description="The receiver deduplicates on the idempotency key we send, so an unknown "
        "outcome may be resolved by re-sending with the same key.",
    )

    @model_validator(mode="after")
    def _one_target(self) -> Compensation:
        given = [k for k in CompensationKind if self.target_of(k) is not None]
        if len(given) != 1:
            raise ValueError(
                "give exactly one of sqs, events, lambda, http, python"
                + (f" (got {', '.join(given)})" if given else "")
            )
        if self.payload is not None:
            check_template(self.payload)
        return self

    def target_of(self, kind: CompensationKind) -> BaseModel | None:
        return {
            CompensationKind.SQS: self.sqs,
            CompensationKind.EVENTS: self.events,
            CompensationKind.LAMBDA: self.lambda_,
            CompensationKind.HTTP: self.http,
            CompensationKind.PYTHON: self.python,
        }[kind]

    @property
    def kind(self) -> CompensationKind:
        return next(k for k in CompensationKind if self.target_of(k) is not None)


class MitigationKind(StrEnum):
    FOLLOW_UP = "follow_up"  # a follow-up message to the person affected
    FLAG = "flag"  # a flag on the customer record
    SUPPORT_LIST = "support_list"  # a list for the support team


class Mitigation(_Reported):
    """For an irreversible effect: recorded by rollback as its own item, exported as CSV."""

    kind: MitigationKind = Field(description="follow_up, flag or support_list.")
    description: str = Field(min_length=1, description="What the support team should do.")
    details: str | None = Field(
        default=None,
        description="Jinja template of a JSON object with the facts the team needs (same "
        "variables and JSON-encoding as compensation payloads).",
    )

    @field_validator("details")
    @classmethod
    def _template(cls, value: str | None) -> str | None:
        if value is not None:
            check_template(value)
        return value


def check_template(source: str) -> None:
    """Raise ValueError if ``source`` is not a valid template (syntax only)."""
    from agentctl.compensate.payload import parse_template

    parse_template(source)
