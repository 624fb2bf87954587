"""Agent specs: models, YAML loading with line numbers, JSON Schema."""

from agentctl.spec.loader import find_spec, json_schema, load_agent, load_spec, parse_spec
from agentctl.spec.models import AgentSpec, OnFailure, Phase, Runbook, StepSpec, Tool

__all__ = [
    "AgentSpec",
    "OnFailure",
    "Phase",
    "Runbook",
    "StepSpec",
    "Tool",
    "find_spec",
    "json_schema",
    "load_agent",
    "load_spec",
    "parse_spec",
]
