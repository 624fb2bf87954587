"""Intake levers: what feeds an agent work. ``drain`` disables them; ``resume`` restores them.

Three AWS surfaces, one lever each:

- Lambda event source mapping (SQS, Kinesis, DynamoDB streams): ``Enabled=false`` stops polling;
  re-enabling resumes from the same place. The state moves through ``Disabling`` to ``Disabled``:
  the lever waits for it (through the engine's clock) and fails clearly if it stays stuck.
- EventBridge rule: ``DisableRule`` (events may still match for a short while: propagation).
- EventBridge Scheduler schedule: ``UpdateSchedule`` replaces every field, so the lever reads
  the whole schedule and writes it back with only ``State`` changed.

Undo restores the captured state exactly: something disabled before the incident stays disabled.
"""

from __future__ import annotations

from typing import Any

from pydantic import Field

from agentctl.clock import PollTimeout, poll_until
from agentctl.errors import AgentctlError, AwsCallError
from agentctl.levers.base import Inputs, State, Step
from agentctl.levers.registry import register

# ESM states in which the mapping delivers (or is about to deliver) work.
_ESM_OFF = frozenset({"Disabled", "Disabling"})


class MappingInputs(Inputs):
    uuid: str = Field(min_length=1, description="Event source mapping UUID.")
    function: str | None = Field(default=None, description="Its function (shown in plans).")
    source: str | None = Field(default=None, description="Its event source ARN (shown in plans).")
    timeout: float = Field(default=60.0, gt=0, description="Seconds to wait for the new state.")
    interval: float = Field(default=1.0, gt=0, description="Seconds between reads while waiting.")


class MappingState(State):
    state: str = Field(description="Enabled, Disabled, Enabling, Disabling, Creating, Updating.")


class MappingStuckError(AgentctlError):
    """An event source mapping did not reach the wanted state in time."""


@register
class DisableMapping(Step[MappingInputs, MappingState]):
    """Disable a Lambda event source mapping (``Enabled=false``) and wait until it reads
    ``Disabled``. Undo re-enables it only if it was delivering before, and waits for ``Enabled``.

    IAM: lambda:GetEventSourceMapping, lambda:UpdateEventSourceMapping.
    """

    kind = "lambda.disable_event_source"
    Inputs = MappingInputs
    State = MappingState

    @property
    def target(self) -> str:
        return f"lambda:event-source-mapping/{self.inputs.uuid}"

    def snapshot(self) -> MappingState:
        try:
            response = self.call("lambda", "GetEventSourceMapping", UUID=self.inputs.uuid)
        except AwsCallError as exc:
            if exc.code == "ResourceNotFoundException":
                raise AwsCallError(
                    f"event source mapping {self.inputs.uuid} does not exist",
                    hint="check `intake.event_source_mappings` in the agent spec",
                    code=exc.code,
                    operation=exc.operation,
                ) from exc
            raise
        return MappingState(state=str(response.get("State", "Unknown")))

    def is_applied(self, state: MappingState) -> bool:
        return state.state == "Disabled"

    def is_restored(self, state: MappingState, before: MappingState) -> bool:
        if before.state in _ESM_OFF:
            return state.state in _ESM_OFF
        return state.state == "Enabled"

    def describe_change(self, before: MappingState) -> str:
        feeds = (
            f" ({_short(self.inputs.source)} → {self.inputs.function})"
            if self.inputs.source
            else ""
        )
        if before.state == "Disabling":
            return f"wait for event source mapping{feeds} to finish Disabling"
        return f"disable event source mapping{feeds}: {before.state} → Disabled"

    def describe_state(self, state: MappingState) -> str:
        return state.state

    def apply(self, before: MappingState) -> None:
        if before.state != "Disabling":
            self.call("lambda", "UpdateEventSourceMapping", UUID=self.inputs.uuid, Enabled=False)
        self._wait_for("Disabled")

    def undo(self, before: MappingState) -> None:
        if before.state in _ESM_OFF:
            return  # it was off before the incident: it stays off
        self.call("lambda", "UpdateEventSourceMapping", UUID=self.inputs.uuid, Enabled=True)
        self._wait_for("Enabled")

    def _wait_for(self, wanted: str) -> None:
        try:
            poll_until(
                self.ctx.clock,
                self.snapshot,
                lambda s: s.state == wanted,
                timeout=self.inputs.timeout,
                interval=self.inputs.interval,
            )
        except PollTimeout as exc:
            last = exc.last.state if isinstance(exc.last, MappingState) else "unknown"
            raise MappingStuckError(
                f"event source mapping {self.inputs.uuid} is still {last} after "
                f"{self.inputs.timeout:g}s (wanted {wanted})",
                hint="AWS has not finished the change; re-run the command to check again "
                f"(`aws lambda get-event-source-mapping --uuid {self.inputs.uuid}`)",
            ) from exc


class RuleInputs(Inputs):
    name: str = Field(min_length=1, description="Rule name.")
    bus: str = Field(default="default", min_length=1, description="Event bus name or ARN.")


class RuleState(State):
    state: str = Field(description="ENABLED, DISABLED or ENABLED_WITH_ALL_CLOUDTRAIL_...")


@register
class DisableRule(Step[RuleInputs, RuleState]):
    """Disable an EventBridge rule. Undo re-enables it only if it was enabled before (with
    the same ``State`` value, CloudTrail-management-events variant included).

    Events may still match the rule for a short while after ``DisableRule`` (propagation).

    IAM: events:DescribeRule, events:DisableRule, events:EnableRule (undo), events:PutRule (undo
    of ENABLED_WITH_ALL_CLOUDTRAIL_MANAGEMENT_EVENTS only).
    """

    kind = "events.disable_rule"
    Inputs = RuleInputs
    State = RuleState

    @property
    def target(self) -> str:
        return f"events:rule/{self.inputs.bus}/{self.inputs.name}"

    def _describe(self) -> dict[str, Any]:
        try:
            return self.call(
                "events", "DescribeRule", Name=self.inputs.name, EventBusName=self.inputs.bus
            )
        except AwsCallError as exc:
            if exc.code == "ResourceNotFoundException":
                raise AwsCallError(
                    f"EventBridge rule {self.inputs.name} does not exist on bus {self.inputs.bus}",
                    hint="check `intake.rules` in the agent spec",
                    code=exc.code,
                    operation=exc.operation,
                ) from exc
            raise

    def snapshot(self) -> RuleState:
        return RuleState(state=str(self._describe().get("State", "ENABLED")))

    def is_applied(self, state: RuleState) -> bool:
        return state.state == "DISABLED"

    def describe_change(self, before: RuleState) -> str:
        return f"disable rule {self.inputs.name}: {before.state} → DISABLED"

    def describe_state(self, state: RuleState) -> str:
        return state.state

    def apply(self, before: RuleState) -> None:
        self.call("events", "DisableRule", Name=self.inputs.name, EventBusName=self.inputs.bus)

    def undo(self, before: RuleState) -> None:
        if before.state == "DISABLED":
            return
        if before.state == "ENABLED":
            self.call("events", "EnableRule", Name=self.inputs.name, EventBusName=self.inputs.bus)
            return
        # Another enabled variant: only PutRule can set it; write back every field we read.
        rule = self._describe()
        keep = ("Name", "ScheduleExpression", "EventPattern", "Description", "RoleArn")
        params = {k: rule[k] for k in keep if rule.get(k)}
        self.call("events", "PutRule", EventBusName=self.inputs.bus, State=before.state, **params)


class ScheduleInputs(Inputs):
    name: str = Field(min_length=1, description="Schedule name.")
    group: str = Field(default="default", min_length=1, description="Schedule group.")


class ScheduleState(State):
    state: str = Field(description="ENABLED or DISABLED.")


@register
class DisableSchedule(Step[ScheduleInputs, ScheduleState]):
    """Disable an EventBridge Scheduler schedule. ``UpdateSchedule`` replaces the whole
    schedule, so apply and undo read it and write every field back with only ``State`` changed.

    A concurrent edit between our read and our write would be overwritten (Scheduler offers no
    compare-and-set); the window is one round trip.

    IAM: scheduler:GetSchedule, scheduler:UpdateSchedule, iam:PassRole on the target's role.
    """

    kind = "scheduler.disable_schedule"
    Inputs = ScheduleInputs
    State = ScheduleState

    @property
    def target(self) -> str:
        return f"scheduler:schedule/{self.inputs.group}/{self.inputs.name}"

    def _get(self) -> dict[str, Any]:
        try:
            return self.call(
                "scheduler", "GetSchedule", Name=self.inputs.name, GroupName=self.inputs.group
            )
        except AwsCallError as exc:
            if exc.code == "ResourceNotFoundException":
                raise AwsCallError(
                    f"schedule {self.inputs.group}/{self.inputs.name} does not exist",
                    hint="check `intake.schedules` in the agent spec",
                    code=exc.code,
                    operation=exc.operation,
                ) from exc
            raise

    def snapshot(self) -> ScheduleState:
        return ScheduleState(state=str(self._get().get("State", "ENABLED")))

    def is_applied(self, state: ScheduleState) -> bool:
        return state.state == "DISABLED"

    def describe_change(self, before: ScheduleState) -> str:
        return f"disable schedule {self.inputs.name}: {before.state} → DISABLED"

    def describe_state(self, state: ScheduleState) -> str:
        return state.state

    def apply(self, before: ScheduleState) -> None:
        self._write_state("DISABLED")

    def undo(self, before: ScheduleState) -> None:
        self._write_state(before.state)

    def _write_state(self, state: str) -> None:
        schedule = self._get()
        if schedule.get("State") == state:
            return
        client = self.ctx.aws.client("scheduler", retries=self.retries)
        members = client.meta.service_model.operation_model("UpdateSchedule").input_shape.members
        params = {k: v for k, v in schedule.items() if k in members and k != "ClientToken"}
        params["State"] = state
        self.call("scheduler", "UpdateSchedule", **params)


def _short(arn: str | None) -> str:
    return (arn or "").rsplit(":", 1)[-1]
