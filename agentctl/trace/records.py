"""The record schema of decision traces and action records, version 1.

Every line agentctl's SDK writes is one JSON object with ``record_type`` and ``schema_version``.
Four record types, linked by ``trace_id`` / ``span_id`` / ``parent_span_id`` (W3C trace-context
sizes: 32 and 16 lowercase hex digits):

- ``input``      what the agent was given (the ticket, the conversation turn);
- ``retrieval``  context it retrieved (documents, with ids and scores);
- ``model_call`` one model call: model id as requested and as answered, prompt template + version;
- ``action``     one guarded tool call: arguments, result, status, idempotency key, and the
                 **effects** it had on other systems (what rollback compensates).

Versioning: ``schema_version`` is an integer. Adding an optional field keeps the version; renaming,
removing or changing the meaning of a field bumps it. Readers accept the versions in
:data:`SUPPORTED_VERSIONS` and count any other version as bad input (never guess). Unknown extra
fields are kept (``extra="allow"``) so a newer writer's additions are not silently dropped.

Idempotency keys (see :func:`agentctl.sdk.keys.idempotency_key`): ``ik1-`` followed by the first
32 hex digits of SHA-256 over the canonical JSON of ``[agent, unit_of_work, tool, args]`` (keys
sorted, no whitespace, UTF-8, floats that are whole numbers written as integers). The same agent
doing the same thing for the same ticket gets the same key, so a retry is deduplicated downstream
and rollback compensates it exactly once.

The JSON Schema of a record ships as ``agentctl/trace/record.schema.json`` (regenerate it from
:func:`json_schema`; a test fails when it is stale).
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationInfo, field_validator

from agentctl.trace.schema import (
    SCHEMA_VERSION,
    SUPPORTED_VERSIONS,
    TS_ISO,
    TS_NUMBER,
    ActionStatus,
)

# the versions, timestamp forms and statuses live in agentctl.trace.schema (no pydantic)
_TS = re.compile(f"(?:{TS_ISO})|(?:{TS_NUMBER})")


class _Model(BaseModel):
    # built when first used: a count on DuckDB validates no record in Python
    model_config = ConfigDict(extra="allow", frozen=True, defer_build=True)


class Effect(_Model):
    """One change an action made (or would have made) to another system.

    Rollback keys compensation on ``idempotency_key`` (defaults to the action's key) and decides
    between an inverse and a mitigation on ``reversible``. Readers add ``derived: true`` to an
    effect they derived from the spec's per-tool extractors for an action that recorded none
    (``agentctl.trace.extract``); effects the agent recorded carry no such key.
    """

    system: str = Field(description="The system changed, e.g. `payments`, `email`, `crm`.")
    resource_type: str = Field(description="What kind of thing, e.g. `refund`, `message`.")
    resource_id: str = Field(description="Its id in that system, e.g. `re_123`.")
    operation: str = Field(description="`create`, `update`, `delete`, `send`, ...")
    reversible: bool = Field(description="Can a compensating transaction undo it?")
    idempotency_key: str | None = Field(
        default=None, description="Key the downstream system dedupes on (default: the action's)."
    )
    details: dict[str, Any] = Field(
        default_factory=dict, description="Facts compensation needs, e.g. amount and currency."
    )


class _Record(_Model):
    schema_version: int = Field(default=SCHEMA_VERSION, description="Record schema version.")
    agent: str = Field(min_length=1, description="The agent's name, as in its spec.")
    release_id: str | None = Field(
        default=None, description="The pinned release the agent ran (model+prompt+tool schema)."
    )
    trace_id: str = Field(min_length=1, description="One trace per unit of work handled.")
    span_id: str = Field(min_length=1)
    parent_span_id: str | None = None
    ts: datetime = Field(description="When it happened, UTC (ISO 8601 with `Z`).")
    unit_of_work: str | None = Field(
        default=None, description="The ticket or conversation id this record belongs to."
    )

    @field_validator("ts", mode="before")
    @classmethod
    def _known_form(cls, value: Any) -> Any:
        # pydantic's own parser takes more (`1.5e9`, `2026-11-24_01:00`, `,5` fractions) and
        # DuckDB's casts other things: a record carries one of the forms both read alike
        if isinstance(value, str) and not _TS.fullmatch(value):
            raise ValueError(
                "ts must be ISO 8601 (YYYY-MM-DDTHH:MM:SS[.f] with Z or +hh:mm, or no zone "
                "for UTC) or Unix time"
            )
        return value

    @field_validator("ts")
    @classmethod
    def _utc(cls, value: datetime) -> datetime:
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        try:
            return value.astimezone(UTC)
        except OverflowError:  # 9999-12-31T23:00-05:00: past the last year a datetime holds
            raise ValueError("ts is out of range (years 1 to 9999 in UTC)") from None

    @field_validator("schema_version")
    @classmethod
    def _known_version(cls, value: int) -> int:
        if value not in SUPPORTED_VERSIONS:
            raise ValueError(
                f"unsupported schema_version {value}; this agentctl reads "
                f"{', '.join(str(v) for v in sorted(SUPPORTED_VERSIONS))}"
            )
        return value


class ActionRecord(_Record):
    """One guarded tool call."""

    record_type: Literal["action"] = "action"
    action_id: str = Field(min_length=1, description="Unique id of this call.")
    unit_of_work: str = Field(min_length=1, description="Ticket or conversation id.")
    tool: str = Field(min_length=1)
    args: dict[str, Any] = Field(
        default_factory=dict, description="Arguments (a JSON object; null is read as {})."
    )
    result: Any = Field(default=None, description="What the tool returned (JSON).")
    status: ActionStatus
    error: str | None = Field(default=None, description="Refusal reason or exception text.")
    idempotency_key: str = Field(min_length=1)
    effects: list[Effect] = Field(
        default_factory=list, description="Side effects (null is read as [], as when absent)."
    )
    duration_ms: float | None = None

    @field_validator("args", "effects", mode="before")
    @classmethod
    def _null_is_none(cls, value: Any, info: ValidationInfo) -> Any:
        # writers that serialise an empty map or list as null (Go's nil, some loggers) mean
        # "none": read like an absent field, as DuckDB's reader reads it
        if value is None:
            return {} if info.field_name == "args" else []
        return value


class ModelCallRecord(_Record):
    """One call to a model."""

    record_type: Literal["model_call"] = "model_call"
    model_requested: str = Field(description="Model id the agent asked for.")
    model_answered: str | None = Field(default=None, description="Model id the provider reported.")
    prompt_template: str | None = Field(default=None, description="Prompt template name.")
    prompt_version: str | None = Field(default=None, description="Prompt template version.")
    input: Any = Field(default=None, description="Messages sent (JSON).")
    output: Any = Field(default=None, description="What the model answered (JSON).")
    input_tokens: int | None = None
    output_tokens: int | None = None
    finish_reason: str | None = None


class RetrievedDocument(_Model):
    id: str
    score: float | None = None
    source: str | None = None
    content: str | None = None


class RetrievalRecord(_Record):
    """Context retrieved for the agent."""

    record_type: Literal["retrieval"] = "retrieval"
    source: str = Field(description="Index or store queried.")
    query: str | None = None
    documents: list[RetrievedDocument] = Field(default_factory=list)


class InputRecord(_Record):
    """What the agent was given to work on."""

    record_type: Literal["input"] = "input"
    channel: str | None = Field(default=None, description="Where it came from, e.g. `sqs`.")
    content: Any = Field(default=None, description="The input itself (JSON).")


Record = Annotated[
    ActionRecord | ModelCallRecord | RetrievalRecord | InputRecord,
    Field(discriminator="record_type"),
]
RECORD_TYPES = ("input", "retrieval", "model_call", "action")
_RECORD: TypeAdapter[Record] = TypeAdapter(Record, config=ConfigDict(defer_build=True))


def parse_record(data: object) -> ActionRecord | ModelCallRecord | RetrievalRecord | InputRecord:
    """Validate one decoded JSON object as a record. Raises pydantic's ValidationError."""
    return _RECORD.validate_python(data)


def to_json_dict(record: BaseModel) -> dict[str, Any]:
    """The record as it is written: JSON-compatible, timestamps in UTC with ``Z``."""
    data = record.model_dump(mode="json")
    ts = data.get("ts")
    if isinstance(ts, str) and ts.endswith("+00:00"):
        data["ts"] = ts[: -len("+00:00")] + "Z"
    return data


def json_schema() -> dict[str, Any]:
    """The JSON Schema of one record (any of the four types)."""
    schema = _RECORD.json_schema()
    schema["$id"] = f"https://agentctl.dev/schema/trace-record-v{SCHEMA_VERSION}.json"
    schema["title"] = f"agentctl trace record, schema_version {SCHEMA_VERSION}"
    return schema
