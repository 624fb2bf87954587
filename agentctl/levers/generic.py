"""Generic steps: any AWS call with a declared undo, wait for a value, assert a value.

Modelled on SSM Automation's ``aws:executeAwsApi`` / ``aws:waitForAwsResourceProperty`` /
``aws:assertAwsResourceProperty``. Values are picked out of responses with JMESPath.
"""

from __future__ import annotations

from typing import Any

from pydantic import Field, model_validator

from agentctl.clock import PollTimeout, poll_until
from agentctl.errors import BadInputError, GateFailedError
from agentctl.levers.base import Inputs, State, Step
from agentctl.levers.registry import register


class Read(Inputs):
    """A read call and the value to expect from it."""

    service: str = Field(min_length=1, description="boto3 service name, e.g. `lambda`.")
    operation: str = Field(pattern=r"^[A-Z][A-Za-z0-9]+$", description="API name, e.g. `GetAlias`.")
    parameters: dict[str, Any] = Field(default_factory=dict)
    path: str = Field(min_length=1, description="JMESPath into the response, e.g. `State`.")
    equals: Any = Field(default=None, description="The value expected at `path`.")
    one_of: list[Any] | None = Field(default=None, description="Any of these values.")

    @model_validator(mode="after")
    def _has_expectation(self) -> Read:
        if "equals" not in self.model_fields_set and self.one_of is None:
            raise ValueError("give `equals` or `one_of`")
        return self

    def matches(self, value: Any) -> bool:
        if self.one_of is not None:
            return value in self.one_of
        return bool(value == self.equals)

    def expected(self) -> str:
        return f"one of {self.one_of}" if self.one_of is not None else repr(self.equals)


class Undo(Inputs):
    operation: str = Field(pattern=r"^[A-Z][A-Za-z0-9]+$")
    parameters: dict[str, Any] = Field(default_factory=dict)


class CallInputs(Inputs):
    service: str = Field(min_length=1)
    operation: str = Field(pattern=r"^[A-Z][A-Za-z0-9]+$")
    parameters: dict[str, Any] = Field(default_factory=dict)
    undo: Undo | None = Field(default=None, description="The call that reverses this one.")
    check: Read | None = Field(
        default=None, description="A read that tells whether the call is already applied."
    )


class ValueState(State):
    value: Any = None


def _read(step: Step[Any, Any], read: Read) -> Any:
    import jmespath

    response = step.call(read.service, read.operation, **read.parameters)
    response.pop("ResponseMetadata", None)
    try:
        return jmespath.search(read.path, response)
    except jmespath.exceptions.JMESPathError as exc:
        raise BadInputError(f"bad path {read.path!r}: {exc}") from exc


@register
class AwsCall(Step[CallInputs, ValueState]):
    """Call any AWS API. Undo runs the declared ``undo`` call. Without a ``check`` the call
    is made on every run, so it must be idempotent itself.

    IAM: whatever the call (and its undo/check) needs.
    """

    kind = "aws.call"
    Inputs = CallInputs
    State = ValueState

    @property
    def reversible(self) -> bool:  # type: ignore[override]
        return self.inputs.undo is not None

    @property
    def verifiable(self) -> bool:  # type: ignore[override]
        return self.inputs.check is not None

    @property
    def target(self) -> str:
        ident = next(
            (str(v) for k, v in sorted(self.inputs.parameters.items()) if isinstance(v, str)), ""
        )
        return f"{self.inputs.service}:{self.inputs.operation}" + (f"/{ident}" if ident else "")

    def snapshot(self) -> ValueState:
        if self.inputs.check is None:
            return ValueState(value=None)
        return ValueState(value=_read(self, self.inputs.check))

    def is_applied(self, state: ValueState) -> bool:
        return self.inputs.check is not None and self.inputs.check.matches(state.value)

    def is_restored(self, state: ValueState, before: ValueState) -> bool:
        # Without a check nothing can be read back: the declared undo always runs (it must be
        # idempotent, like the call itself).
        return self.inputs.check is not None and state == before

    def describe_change(self, before: ValueState) -> str:
        return f"call {self.inputs.service} {self.inputs.operation}"

    def describe_state(self, state: ValueState) -> str:
        return "-" if self.inputs.check is None else repr(state.value)

    def describe_undo(self, current: ValueState, before: ValueState) -> str:
        undo = self.inputs.undo
        return f"call {self.inputs.service} {undo.operation}" if undo else "no undo declared"

    def apply(self, before: ValueState) -> None:
        self.call(self.inputs.service, self.inputs.operation, **self.inputs.parameters)

    def undo(self, before: ValueState) -> None:
        if self.inputs.undo is None:
            raise BadInputError(f"step {self.name} declares no undo")
        self.call(self.inputs.service, self.inputs.undo.operation, **self.inputs.undo.parameters)


class WaitInputs(Read):
    timeout: float = Field(default=300.0, gt=0, description="Seconds to wait at most.")
    interval: float = Field(default=5.0, gt=0, description="Seconds between reads.")


class _ReadStep(Step[Read, ValueState]):
    """A step whose state is the value a read call returns: waits and assertions."""

    State = ValueState
    reversible = False
    is_check = True

    @property
    def target(self) -> str:
        return f"{self.inputs.service}:{self.inputs.operation}:{self.inputs.path}"

    def snapshot(self) -> ValueState:
        return ValueState(value=_read(self, self.inputs))

    def is_applied(self, state: ValueState) -> bool:
        return self.inputs.matches(state.value)

    def describe_state(self, state: ValueState) -> str:
        return repr(state.value)


@register
class WaitFor(_ReadStep):
    """Poll a read call until the value at ``path`` matches, or fail after ``timeout``.

    IAM: whatever the read call needs.
    """

    kind = "aws.wait_for"
    Inputs = WaitInputs
    inputs: WaitInputs

    def describe_change(self, before: ValueState) -> str:
        return f"wait ≤{self.inputs.timeout:g}s for {self.inputs.path} = {self.inputs.expected()}"

    def apply(self, before: ValueState) -> None:
        try:
            poll_until(
                self.ctx.clock,
                lambda: _read(self, self.inputs),
                self.inputs.matches,
                timeout=self.inputs.timeout,
                interval=self.inputs.interval,
            )
        except PollTimeout as exc:
            raise GateFailedError(
                f"{self.name}: {self.inputs.path} is {exc.last!r} after "
                f"{self.inputs.timeout:g}s, expected {self.inputs.expected()}"
            ) from exc


@register
class Assert(_ReadStep):
    """Fail the step unless the value at ``path`` matches now.

    IAM: whatever the read call needs.
    """

    kind = "aws.assert"
    Inputs = Read

    def describe_change(self, before: ValueState) -> str:
        return f"assert {self.inputs.path} = {self.inputs.expected()} (now {before.value!r})"

    def apply(self, before: ValueState) -> None:
        value = _read(self, self.inputs)
        if not self.inputs.matches(value):
            raise GateFailedError(
                f"{self.name}: {self.inputs.path} is {value!r}, expected {self.inputs.expected()}"
            )
