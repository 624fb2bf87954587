"""Lambda reserved concurrency: 0 stops every invocation at once (``contain --hard``)."""

from __future__ import annotations

from pydantic import Field

from agentctl.errors import AwsCallError
from agentctl.levers.base import Inputs, State, Step
from agentctl.levers.registry import register


class ConcurrencyInputs(Inputs):
    function: str = Field(min_length=1, description="Function name or ARN.")
    value: int = Field(default=0, ge=0, description="Reserved concurrency to set (0 = hard stop).")


class ConcurrencyState(State):
    reserved: int | None = Field(description="Reserved concurrency, or null when none is set.")


@register
class ReservedConcurrency(Step[ConcurrencyInputs, ConcurrencyState]):
    """Set a function's reserved concurrency (0 stops all invocations; queued events wait).

    Undo restores the previous reserved value, or removes the reservation if there was none.

    IAM: lambda:GetFunctionConcurrency, lambda:PutFunctionConcurrency,
    lambda:DeleteFunctionConcurrency (undo only).
    """

    kind = "lambda.reserved_concurrency"
    Inputs = ConcurrencyInputs
    State = ConcurrencyState

    @property
    def target(self) -> str:
        return f"lambda:{self.inputs.function}"

    def snapshot(self) -> ConcurrencyState:
        try:
            response = self.call(
                "lambda", "GetFunctionConcurrency", FunctionName=self.inputs.function
            )
        except AwsCallError as exc:
            if exc.code == "ResourceNotFoundException":
                raise AwsCallError(
                    f"Lambda function {self.inputs.function!r} does not exist",
                    hint="check `functions:` in the agent spec",
                    code=exc.code,
                    operation=exc.operation,
                ) from exc
            raise
        value = response.get("ReservedConcurrentExecutions")
        return ConcurrencyState(reserved=None if value is None else int(value))

    def is_applied(self, state: ConcurrencyState) -> bool:
        return state.reserved == self.inputs.value

    def describe_change(self, before: ConcurrencyState) -> str:
        was = "unreserved" if before.reserved is None else str(before.reserved)
        return f"reserved concurrency {was} → {self.inputs.value}"

    def describe_state(self, state: ConcurrencyState) -> str:
        return "unreserved" if state.reserved is None else f"reserved {state.reserved}"

    def apply(self, before: ConcurrencyState) -> None:
        self.call(
            "lambda",
            "PutFunctionConcurrency",
            FunctionName=self.inputs.function,
            ReservedConcurrentExecutions=self.inputs.value,
        )

    def undo(self, before: ConcurrencyState) -> None:
        if before.reserved is None:
            self.call("lambda", "DeleteFunctionConcurrency", FunctionName=self.inputs.function)
        else:
            self.call(
                "lambda",
                "PutFunctionConcurrency",
                FunctionName=self.inputs.function,
                ReservedConcurrentExecutions=before.reserved,
            )
