"""Reading and writing the example agent's AWS state in tests (shared by several suites)."""

from __future__ import annotations

import json
from typing import Any

from agentctl.aws import Aws

REGISTRY = "/agents/refund-agent/tools"


def registry(aws: Aws) -> dict[str, Any]:
    """The refund agent's tool-registry document."""
    return json.loads(aws.client("ssm").get_parameter(Name=REGISTRY)["Parameter"]["Value"])


def put_registry(aws: Aws, doc: dict[str, Any]) -> None:
    aws.client("ssm").put_parameter(
        Name=REGISTRY, Value=json.dumps(doc), Type="String", Overwrite=True
    )


def reserved(aws: Aws, function: str) -> int | None:
    """A function's reserved concurrency, or None when it has none."""
    response = aws.client("lambda").get_function_concurrency(FunctionName=function)
    return response.get("ReservedConcurrentExecutions")
