from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from agentctl.aws import Aws
from agentctl.clock import FakeClock
from agentctl.engine.runner import make_step
from agentctl.levers.base import Step, StepContext
from agentctl.spec import load_agent
from agentctl.spec.models import AgentSpec, StepSpec

MakeStep = Callable[..., Step[Any, Any]]


@pytest.fixture
def refund_spec(runbooks: Path) -> AgentSpec:
    return load_agent("refund-agent", runbooks)


@pytest.fixture
def make(seeded: Aws, refund_spec: AgentSpec, clock: FakeClock) -> MakeStep:
    def build(action: str, inputs: dict[str, Any] | None = None, spec: AgentSpec | None = None):
        ctx = StepContext(aws=seeded, spec=spec or refund_spec, clock=clock, started_at=clock.now())
        return make_step(ctx, StepSpec(name="s", action=action, inputs=inputs or {}))

    return build


def roundtrip(step: Step[Any, Any]) -> tuple[Any, Any]:
    """Apply twice, undo twice: applied in between, and exactly the before-state at the end."""
    before = step.snapshot()
    assert not step.is_applied(before)
    step.apply(before)
    step.apply(step.snapshot())  # idempotent
    applied = step.snapshot()
    assert step.is_applied(applied)
    step.undo(before)
    step.undo(before)  # idempotent
    restored = step.snapshot()
    assert step.is_restored(restored, before)
    # the same state; a parameter's version number moves on with every write, by design
    assert restored.model_dump(exclude={"version"}) == before.model_dump(exclude={"version"})
    return before, applied
