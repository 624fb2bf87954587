"""Typed errors and the documented exit codes.

Every error the core raises on purpose derives from :class:`AgentctlError`; it carries a one-line
message, an optional hint and the exit code the CLI returns for it. The CLI boundary turns these
into a red line plus hint on stderr; anything else is a bug and is reported as such.
"""

from __future__ import annotations

from enum import IntEnum


class ExitCode(IntEnum):
    """Process exit codes, documented in the README."""

    OK = 0
    ERROR = 1  # the command failed; nothing (further) was changed
    BAD_INPUT = 2  # bad flags, unknown agent, invalid runbook YAML
    PARTIAL = 3  # some steps applied, some failed: re-run to finish
    GATE_FAILED = 4  # a gate, assertion or readiness check failed
    NEEDS_CONFIRMATION = 5  # no terminal and no --yes: refused to change anything
    ABORTED = 6  # the operator answered no at the confirmation prompt
    AWS_UNAVAILABLE = 7  # no credentials, or the endpoint cannot be reached


class AgentctlError(Exception):
    """Root of every error agentctl raises on purpose."""

    exit_code: ExitCode = ExitCode.ERROR

    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint


class BadInputError(AgentctlError):
    exit_code = ExitCode.BAD_INPUT


class UnknownAgentError(BadInputError):
    pass


class SpecError(BadInputError):
    """A runbook file is invalid. ``problems`` holds every problem found, not just the first."""

    def __init__(self, path: str, problems: list[SpecProblem]) -> None:
        count = len(problems)
        noun = "problem" if count == 1 else "problems"
        super().__init__(
            f"{path}: {count} {noun} in the agent spec",
            hint="fix the lines listed above; `agentctl runbook schema` prints the JSON Schema",
        )
        self.path = path
        self.problems = problems


class SpecProblem:
    """One validation problem: where (file, line, field path) and what."""

    __slots__ = ("field", "line", "message", "path")

    def __init__(self, path: str, line: int | None, field: str, message: str) -> None:
        self.path = path
        self.line = line
        self.field = field
        self.message = message

    def __str__(self) -> str:
        where = f"{self.path}:{self.line}" if self.line else self.path
        field = f" {self.field}:" if self.field else ""
        return f"{where}:{field} {self.message}"

    def to_dict(self) -> dict[str, object]:
        return {"file": self.path, "line": self.line, "field": self.field, "message": self.message}


class NotConfirmedError(AgentctlError):
    exit_code = ExitCode.NEEDS_CONFIRMATION


class AbortedError(AgentctlError):
    exit_code = ExitCode.ABORTED


class AwsUnavailableError(AgentctlError):
    """No credentials, or the endpoint cannot be reached."""

    exit_code = ExitCode.AWS_UNAVAILABLE


class AwsCallError(AgentctlError):
    """An AWS call failed; ``code`` is the AWS error code (e.g. ``AccessDenied``)."""

    def __init__(
        self,
        message: str,
        hint: str | None = None,
        *,
        code: str = "",
        operation: str = "",
        request_id: str | None = None,
    ) -> None:
        super().__init__(message, hint)
        self.code = code
        self.operation = operation
        self.request_id = request_id


class ConflictError(AgentctlError):
    """Someone else changed the target while we were changing it."""


class StoreError(AgentctlError):
    """The incident store cannot be opened or is inconsistent."""


class IncidentNotFoundError(BadInputError):
    pass


class GateFailedError(AgentctlError):
    exit_code = ExitCode.GATE_FAILED
