"""The default runbook of each phase, built from what the spec declares."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from agentctl.errors import BadInputError
from agentctl.spec.models import AgentSpec, Phase, StepSpec

if TYPE_CHECKING:
    from agentctl.drain.discover import MappingRef

BUILTIN_TOOL_KINDS = ("iam.deny_tools", "registry.disable_tools")
INTAKE_KINDS = (
    "lambda.disable_event_source",
    "events.disable_rule",
    "scheduler.disable_schedule",
)


@dataclass(frozen=True)
class ContainOptions:
    tools: list[str] | None = None  # None: every tool
    hard: bool = False  # also reserved concurrency 0 on every function
    revoke_sessions: bool = False  # also deny credentials issued before now


def contain_steps(spec: AgentSpec, options: ContainOptions) -> list[StepSpec]:
    """The steps of ``contain``: the spec's runbook, else the default, with CLI overrides."""
    if options.tools:
        try:
            spec.select_tools(options.tools)
        except ValueError as exc:
            raise BadInputError(str(exc)) from exc
    defaults: list[StepSpec] = []
    if any(t.iam for t in spec.select_tools(options.tools)):
        defaults.append(StepSpec(name="deny-tools", action="iam.deny_tools"))
    if spec.tool_registry is not None:
        defaults.append(StepSpec(name="disable-registry", action="registry.disable_tools"))
    steps = _with_runbook(spec, Phase.CONTAIN, defaults)
    if options.hard:
        present = {
            s.inputs.get("function") for s in steps if s.action == "lambda.reserved_concurrency"
        }
        for index, function in enumerate(spec.functions):
            if function not in present:
                steps.append(
                    StepSpec(
                        name=f"stop-function-{index + 1}",
                        action="lambda.reserved_concurrency",
                        inputs={"function": function, "value": 0},
                    )
                )
    steps = [_override(s, options) for s in steps]
    if not steps:
        raise BadInputError(
            f"nothing to contain: {spec.name} declares no tool IAM actions and no tool_registry",
            hint="declare `tools[].iam` and/or `tool_registry` in the spec"
            + ("" if not spec.functions else ", or use --hard for reserved concurrency 0"),
        )
    return steps


def shadow_steps(spec: AgentSpec, mode: str = "shadow") -> list[StepSpec]:
    defaults = [StepSpec(name="shadow-flag", action="shadow.flag", inputs={"mode": mode})]
    if spec.shadow_flag is None and Phase.SHADOW not in spec.runbooks:
        raise BadInputError(
            f"{spec.name} has no shadow mode: the spec declares no shadow_flag",
            hint="add `shadow_flag: {parameter: /agents/<name>/mode}` to the spec",
        )
    return _with_runbook(spec, Phase.SHADOW, defaults)


def drain_steps(spec: AgentSpec, mappings: Sequence[MappingRef] = ()) -> list[StepSpec]:
    """The levers of ``drain``: disable every event source mapping (``mappings``, found by
    :func:`agentctl.drain.discover.discover`), EventBridge rule and schedule that feeds the agent;
    then the spec's ``runbooks.drain`` steps, if any."""
    defaults: list[StepSpec] = []
    for index, mapping in enumerate(mappings):
        inputs = {"uuid": mapping.uuid}
        if mapping.function:
            inputs["function"] = mapping.function
        if mapping.source:
            inputs["source"] = mapping.source
        defaults.append(
            StepSpec(
                name=f"disable-mapping-{index + 1}",
                action="lambda.disable_event_source",
                inputs=inputs,
                timeout=120.0,
            )
        )
    for index, rule in enumerate(spec.intake.rules):
        defaults.append(
            StepSpec(
                name=f"disable-rule-{index + 1}",
                action="events.disable_rule",
                inputs={"name": rule.name, "bus": rule.bus},
            )
        )
    for index, schedule in enumerate(spec.intake.schedules):
        defaults.append(
            StepSpec(
                name=f"disable-schedule-{index + 1}",
                action="scheduler.disable_schedule",
                inputs={"name": schedule.name, "group": schedule.group},
            )
        )
    return _with_runbook(spec, Phase.DRAIN, defaults)


def status_steps(spec: AgentSpec, mappings: Sequence[MappingRef] = ()) -> list[StepSpec]:
    """Every lever ``contain --hard``, ``shadow`` and ``drain`` would pull: for reading state
    back."""
    steps = [s for s in contain_steps_or_empty(spec) if not _is_check(s)]
    if spec.shadow_flag is not None:
        steps.append(StepSpec(name="shadow-flag", action="shadow.flag", inputs={"mode": "shadow"}))
    names = {s.name for s in steps}
    steps += [
        s for s in drain_steps(spec, mappings) if s.action in INTAKE_KINDS and s.name not in names
    ]
    return steps


def contain_steps_or_empty(spec: AgentSpec) -> list[StepSpec]:
    try:
        return contain_steps(spec, ContainOptions(hard=True))
    except BadInputError:
        return []


def _is_check(step: StepSpec) -> bool:
    return step.action in ("aws.wait_for", "aws.assert")


def _with_runbook(spec: AgentSpec, phase: Phase, defaults: list[StepSpec]) -> list[StepSpec]:
    runbook = spec.runbooks.get(phase)
    if runbook is None or not runbook.steps:
        return list(defaults)
    if runbook.include_defaults:
        names = {s.name for s in runbook.steps}
        return [d for d in defaults if d.name not in names] + list(runbook.steps)
    return list(runbook.steps)


def _override(step: StepSpec, options: ContainOptions) -> StepSpec:
    """Apply ``--tools`` / ``--revoke-sessions`` to the built-in tool levers."""
    if step.action not in BUILTIN_TOOL_KINDS:
        return step
    inputs = dict(step.inputs)
    if options.tools:
        inputs["tools"] = list(options.tools)
    if options.revoke_sessions and step.action == "iam.deny_tools":
        inputs["revoke_sessions"] = True
    return step.model_copy(update={"inputs": inputs})
