"""The step interface the engine knows, and the base every lever builds on.

A step knows its target, reads a before-state (``snapshot``), says whether a state is already the
applied one, applies, and (if reversible) undoes to a captured before-state, never to a default.
Apply and undo are idempotent. Steps do not sleep, print or journal: the engine does that around
them. AWS calls go through :meth:`Step.call`, which records request ids and turns botocore
errors into typed agentctl errors.
"""

from __future__ import annotations

import threading
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any, ClassVar, Generic, TypeVar

from pydantic import BaseModel, ConfigDict

from agentctl.aws import Aws, iam_action_for, request_id, translate_error

if TYPE_CHECKING:
    from agentctl.clock import Clock
    from agentctl.spec.models import AgentSpec


class Inputs(BaseModel):
    """Base of every step's inputs model: unknown keys are errors. Schemas are built on first
    use (``defer_build``): a run pays only for the step kinds it uses."""

    model_config = ConfigDict(extra="forbid", frozen=True, defer_build=True)


class State(BaseModel):
    """Base of every step's state model (what the journal stores as before/after)."""

    model_config = ConfigDict(extra="forbid", frozen=True, defer_build=True)


I = TypeVar("I", bound=Inputs)  # noqa: E741
S = TypeVar("S", bound=State)


@dataclass
class StepContext:
    """What a step may use: AWS clients, the spec, a clock and the time the run started."""

    aws: Aws
    spec: AgentSpec
    clock: Clock
    started_at: datetime
    extra: dict[str, Any] = field(default_factory=dict)


class Step(ABC, Generic[I, S]):
    """One action of a runbook. Subclasses set ``kind``, ``Inputs`` and ``State``."""

    kind: ClassVar[str]
    Inputs: ClassVar[type[Inputs]]
    State: ClassVar[type[State]]
    reversible: ClassVar[bool] = True
    #: a wait or check: by default it runs after every earlier step of the runbook
    is_check: ClassVar[bool] = False
    #: can the engine read the state back after applying?
    verifiable: ClassVar[bool] = True

    def __init__(self, ctx: StepContext, inputs: I, *, name: str, retries: int = 4) -> None:
        self.ctx = ctx
        self.inputs = inputs
        self.name = name
        self.retries = retries
        self._request_ids: list[str] = []
        self._lock = threading.Lock()

    # -- what the engine calls -------------------------------------------------------------
    @property
    @abstractmethod
    def target(self) -> str:
        """A stable, human-readable id of what this step changes (journal key for undo)."""

    @abstractmethod
    def snapshot(self) -> S:
        """Read the current state from AWS."""

    @abstractmethod
    def is_applied(self, state: S) -> bool:
        """Is ``state`` already what :meth:`apply` would make it?"""

    def is_partially_applied(self, state: S) -> bool:
        """Is part of the change in place (some tools of several)? For ``status``."""
        return False

    @abstractmethod
    def describe_change(self, before: S) -> str:
        """One line: what :meth:`apply` will change, given ``before``."""

    @abstractmethod
    def apply(self, before: S) -> None:
        """Make the change. Idempotent."""

    def undo(self, before: S) -> None:
        """Restore ``before`` exactly. Idempotent."""
        raise NotImplementedError(f"{self.kind} cannot be undone")

    def is_restored(self, state: S, before: S) -> bool:
        """Does ``state`` equal the captured before-state (for verifying an undo)?"""
        return state == before

    def resolved_inputs(self) -> I:
        """The inputs with every default that depends on the spec filled in (the role, the
        parameter, the tool list). The journal stores these, so an undo acts on what was
        changed even if the spec was edited since."""
        return self.inputs

    def scope_to(self, before: S) -> None:
        """Before an undo: narrow the step to what ``before`` covers (default: nothing to do)."""

    def merge_before(self, befores: list[S]) -> S:
        """One before-state from the before-states journaled by successive changes of this
        target, oldest first. Default: the oldest wins (it is what was there first)."""
        return befores[0]

    def describe_state(self, state: S) -> str:
        """A short rendering of a state for tables."""
        return state.model_dump_json()

    def describe_undo(self, current: S, before: S) -> str:
        return f"restore {self.describe_state(before)} (now {self.describe_state(current)})"

    # -- helpers for subclasses ------------------------------------------------------------
    def call(self, service: str, operation: str, **params: Any) -> dict[str, Any]:
        """Call ``service.operation(**params)``; record its request id; raise typed errors."""
        from botocore import xform_name

        client = self.ctx.aws.client(service, retries=self.retries)
        try:
            response: dict[str, Any] = getattr(client, xform_name(operation))(**params)
        except Exception as exc:
            raise translate_error(exc, iam_action_for(client, operation)) from exc
        rid = request_id(response)
        if rid:
            with self._lock:
                self._request_ids.append(rid)
        return response

    def take_request_ids(self) -> list[str]:
        """The request ids recorded since the last call of this method."""
        with self._lock:
            ids, self._request_ids = self._request_ids, []
        return ids

    def state_from_json(self, data: dict[str, Any]) -> S:
        return self.State.model_validate(data)  # type: ignore[return-value]


def error_code(exc: BaseException) -> str:
    """The AWS error code of a typed or botocore error, or ``""``."""
    code = getattr(exc, "code", "")
    if code:
        return str(code)
    response = getattr(exc, "response", None)
    if isinstance(response, dict):
        return str(response.get("Error", {}).get("Code", ""))
    return ""
