"""The agent spec: ``runbooks/<agent>.yaml``, validated with pydantic.

Every model forbids unknown keys: a typo in a runbook must be an error at 3 a.m., not a lever that
silently does nothing. Field docs here become the JSON Schema descriptions editors show.
"""

from __future__ import annotations

import re
from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    WithJsonSchema,
    field_validator,
    model_validator,
)

from agentctl.spec.audit import AuditSpec
from agentctl.spec.intake import Intake, WorkQueue, check_queues
from agentctl.spec.release import Compensation, Mitigation, ReleasePointer

NAME_PATTERN = r"^[a-z0-9][a-z0-9_-]{0,62}$"
IAM_ACTION = re.compile(r"^(\*|[a-z0-9-]+:[A-Za-z0-9*]+)$")
# where an effect extractor reads a value: a field of the call's arguments, or its result
EFFECT_PATH = re.compile(r"^(args(\.[A-Za-z0-9_\-]+)+|result(\.[A-Za-z0-9_\-]+)*)$")


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, defer_build=True)


class Phase(StrEnum):
    """A runbook phase: one agentctl command."""

    CONTAIN = "contain"
    SHADOW = "shadow"
    RESUME = "resume"
    DRAIN = "drain"
    ROLLBACK = "rollback"


class OnFailure(StrEnum):
    ABORT = "abort"
    CONTINUE = "continue"


class ToolIam(Strict):
    """The IAM actions and resources a tool needs: what containment denies."""

    actions: list[str] = Field(min_length=1, description="IAM actions, e.g. `dynamodb:PutItem`.")
    resources: list[str] = Field(
        default_factory=lambda: ["*"], min_length=1, description="Resource ARNs (default `*`)."
    )

    @field_validator("actions")
    @classmethod
    def _actions_look_like_iam(cls, value: list[str]) -> list[str]:
        bad = [a for a in value if not IAM_ACTION.match(a)]
        if bad:
            raise ValueError(f"not an IAM action (service:Action): {', '.join(bad)}")
        return value


def _effect_path(value: str) -> str:
    if not EFFECT_PATH.match(value):
        raise ValueError(
            f"{value!r} is not a dotted path under args. or result "
            "(e.g. `args.order_id`, `result.refund_id`, `result.items.0.id`)"
        )
    return value


EffectPath = Annotated[
    str,
    AfterValidator(_effect_path),
    WithJsonSchema({"type": "string", "pattern": EFFECT_PATH.pattern}),
]


class EffectExtractor(Strict):
    """How to read one effect out of a recorded call of this tool, for action records that carry
    no effects of their own (an agent that emits only OpenTelemetry GenAI spans, records written
    before the agent declared effects). Values are looked up by dotted path in the record's
    `args` and `result`; nothing from the record is ever evaluated."""

    system: str = Field(min_length=1, description="The system changed, e.g. `payments`.")
    resource_type: str = Field(min_length=1, description="What kind of thing, e.g. `refund`.")
    resource_id: EffectPath = Field(
        description="Dotted path of the resource id: `args.<field>...` or `result[.<field>...]` "
        "(a digit indexes a list). A record where it is missing gets no effect (counted)."
    )
    operation: str = Field(min_length=1, description="`create`, `update`, `delete`, `send`, ...")
    reversible: bool = Field(description="Can a compensating transaction undo it?")
    idempotency_key: EffectPath | None = Field(
        default=None,
        description="Dotted path of the key the downstream system dedupes on "
        "(default: the action's idempotency key).",
    )
    details: dict[str, EffectPath] = Field(
        default_factory=dict,
        description="Facts a compensation needs, name → dotted path, e.g. `amount: args.amount`.",
    )


class Tool(Strict):
    """One tool the agent can call."""

    name: str = Field(pattern=NAME_PATTERN, description="Tool name, as in the tool registry.")
    description: str = ""
    side_effects: bool = Field(description="Does calling it change anything outside the agent?")
    iam: ToolIam | None = Field(
        default=None, description="IAM actions/resources to deny when the tool is revoked."
    )
    compensation: Compensation | None = Field(
        default=None, description="The inverse rollback sends, once per original action."
    )
    mitigation: Mitigation | None = Field(
        default=None, description="For an irreversible tool: what rollback records instead."
    )
    effects: list[EffectExtractor] = Field(
        default_factory=list,
        description="Effects to derive from a recorded call that lists none of its own "
        "(readers mark them `derived: true`; records with effects are left as they are).",
    )

    @model_validator(mode="after")
    def _undo_declared(self) -> Tool:
        if self.effects and not self.side_effects:
            raise ValueError(f"tool {self.name!r} has no side effects: it cannot declare effects")
        if self.compensation is not None and self.mitigation is not None:
            raise ValueError(f"tool {self.name!r}: give a compensation or a mitigation, not both")
        if self.side_effects and self.compensation is None and self.mitigation is None:
            raise ValueError(
                f"tool {self.name!r} has side effects: declare a `compensation` (its inverse) "
                "or a `mitigation` (if it cannot be undone)"
            )
        if not self.side_effects and (self.compensation or self.mitigation):
            raise ValueError(f"tool {self.name!r} has no side effects: nothing to compensate")
        return self


class ToolRegistry(Strict):
    """An SSM parameter holding the agent's tool registry as JSON:
    ``{"tools": {"<name>": {"enabled": true, ...}}}``. The agent reads it before each tool call."""

    parameter: str = Field(pattern=r"^/?[A-Za-z0-9_.\-/]+$", description="SSM parameter name.")


class ShadowFlag(Strict):
    """An SSM parameter whose value is ``live`` or ``shadow``."""

    parameter: str = Field(pattern=r"^/?[A-Za-z0-9_.\-/]+$", description="SSM parameter name.")


class StepSpec(Strict):
    """One step of a runbook."""

    name: str = Field(pattern=NAME_PATTERN, description="Unique within the runbook.")
    action: str = Field(description="The step kind, e.g. `iam.deny_tools` or `aws.call`.")
    inputs: dict[str, Any] = Field(default_factory=dict, description="Inputs of the action.")
    on_failure: OnFailure = Field(
        default=OnFailure.CONTINUE,
        description="`abort` skips every step not yet started; `continue` lets others finish.",
    )
    retries: int = Field(default=4, ge=0, le=20, description="Retries on throttling.")
    timeout: float = Field(default=60.0, gt=0, le=3600, description="Seconds before giving up.")
    depends_on: list[str] | None = Field(
        default=None,
        description="Steps that must succeed first. Default: none for levers and calls; "
        "every earlier step for `aws.wait_for` and `aws.assert`.",
    )


class Runbook(Strict):
    """The steps of one phase. Without ``steps`` the default runbook is built from the spec."""

    steps: list[StepSpec] = Field(default_factory=list)
    include_defaults: bool = Field(
        default=False, description="Run the default steps before the listed ones."
    )

    @model_validator(mode="after")
    def _unique_names(self) -> Runbook:
        seen: set[str] = set()
        for step in self.steps:
            if step.name in seen:
                raise ValueError(f"duplicate step name {step.name!r}")
            seen.add(step.name)
        names = {s.name for s in self.steps}
        for step in self.steps:
            for dep in step.depends_on or []:
                if dep not in names:
                    raise ValueError(f"step {step.name!r} depends on unknown step {dep!r}")
        deps = {s.name: set(s.depends_on or []) for s in self.steps}
        done: set[str] = set()
        while deps:
            ready = [n for n, d in deps.items() if d <= done]
            if not ready:
                raise ValueError(
                    f"steps depend on each other in a cycle: {', '.join(sorted(deps))}"
                )
            for name in ready:
                done.add(name)
                del deps[name]
        return self


class AgentSpec(Strict):
    """An agent and the levers agentctl may pull on it."""

    version: Literal[1] = Field(default=1, description="Spec format version.")
    name: str = Field(pattern=NAME_PATTERN, description="Agent name; the file is `<name>.yaml`.")
    owner: str = Field(min_length=1, description="Team or person who owns the agent.")
    description: str = ""
    role: str = Field(
        min_length=1, description="The agent's IAM role: name or ARN (`arn:aws:iam::...:role/x`)."
    )
    tools: list[Tool] = Field(default_factory=list)
    tool_registry: ToolRegistry | None = None
    functions: list[str] = Field(
        default_factory=list, description="Lambda functions (names or ARNs) that run the agent."
    )
    shadow_flag: ShadowFlag | None = None
    queues: list[WorkQueue] = Field(
        default_factory=list, description="SQS work queues (and review queues) for `drain`."
    )
    intake: Intake = Field(
        default_factory=Intake, description="What feeds the agent: disabled by `drain`."
    )
    release: ReleasePointer | None = Field(
        default=None, description="Where the agent reads its active release (rollback moves it)."
    )
    audit: AuditSpec | None = Field(
        default=None, description="Where the agent's decision traces and action records live."
    )
    runbooks: dict[Phase, Runbook] = Field(default_factory=dict)

    @field_validator("queues")
    @classmethod
    def _unique_queues(cls, value: list[WorkQueue]) -> list[WorkQueue]:
        return check_queues(value)

    @property
    def role_name(self) -> str:
        return self.role.rsplit("/", 1)[-1] if self.role.startswith("arn:") else self.role

    @model_validator(mode="after")
    def _unique_tools(self) -> AgentSpec:
        names = [t.name for t in self.tools]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"duplicate tool names: {', '.join(dupes)}")
        return self

    def tool_names(self) -> list[str]:
        return [t.name for t in self.tools]

    def select_tools(self, names: list[str] | None) -> list[Tool]:
        """The tools named (all when ``names`` is empty/None). Unknown names raise ValueError."""
        if not names:
            return list(self.tools)
        known = {t.name: t for t in self.tools}
        unknown = [n for n in names if n not in known]
        if unknown:
            raise ValueError(
                f"unknown tool(s) {', '.join(unknown)}; {self.name} has: "
                f"{', '.join(known) or '(none)'}"
            )
        return [known[n] for n in names]


SpecFile = Annotated[AgentSpec, Field(description="agentctl agent spec")]
