"""agentctl's agent-side SDK: guard tool calls with the kill switch, stamp idempotency keys,
record the decision trace. Standard library only (plus the boto3 SSM/S3 clients you pass in):
importing it does not pull in the CLI's dependencies.
"""

from agentctl.sdk.agent import Agent, SdkError, ToolCall, ToolRevoked, UsageError, make_effect
from agentctl.sdk.keys import canonical_json, idempotency_key
from agentctl.sdk.killswitch import KillSwitch, SwitchState
from agentctl.sdk.sinks import (
    FanOutSink,
    LocalJsonlSink,
    OtlpHttpSink,
    OtlpJsonSink,
    S3Sink,
    Writer,
)

__all__ = [
    "Agent",
    "FanOutSink",
    "KillSwitch",
    "LocalJsonlSink",
    "OtlpHttpSink",
    "OtlpJsonSink",
    "S3Sink",
    "SdkError",
    "SwitchState",
    "ToolCall",
    "ToolRevoked",
    "UsageError",
    "Writer",
    "canonical_json",
    "idempotency_key",
    "make_effect",
]
