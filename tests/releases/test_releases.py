"""Releases: content-derived ids, floating-model refusal, history with marks, the pointer lever."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from agentctl.aws import Aws
from agentctl.clock import FakeClock
from agentctl.compensate.rollback import RollbackOptions
from agentctl.engine.runner import make_step
from agentctl.errors import BadInputError, ExitCode
from agentctl.incidents.sqlite import SqliteStore
from agentctl.ops import Agentctl
from agentctl.releases.model import Mark, is_floating, release_id
from agentctl.spec.models import StepSpec

PINNED = [
    "anthropic.claude-3-5-sonnet-20240620-v1:0",
    "us.anthropic.claude-3-7-sonnet-20250219-v1:0",
    "gpt-4o-2024-08-06",
    "amazon.titan-text-express-v1",
    "gemini-1.5-pro-002",
    "claude-3-5-sonnet@20241022",
]
FLOATING = [
    "gpt-4o",
    "claude-3-5-sonnet-latest",
    "anthropic.claude-v2:latest",
    "llama3",
    "gpt-4o-mini",
]


@pytest.mark.parametrize("model", PINNED)
def test_pinned_model_ids(model: str) -> None:
    assert not is_floating(model)


@pytest.mark.parametrize("model", FLOATING)
def test_floating_model_ids(model: str) -> None:
    assert is_floating(model)


@pytest.fixture
def files(tmp_path: Path) -> tuple[Path, Path]:
    prompt = tmp_path / "prompt.txt"
    prompt.write_text("You issue refunds only when the order is eligible.\n")
    tools = tmp_path / "tools.json"
    tools.write_text(json.dumps({"issue_refund": {"amount": "number"}, "send_email": {}}))
    return prompt, tools


def test_record_is_content_addressed_and_idempotent(
    agentctl: Agentctl, files: tuple[Path, Path], tmp_path: Path, clock: FakeClock
) -> None:
    prompt, tools = files
    service = agentctl.releases()
    first = service.record("refund-agent", model=PINNED[0], prompt=prompt, tools=tools)
    assert first.created and first.release.id.startswith("rel-") and len(first.release.id) == 16
    # Same triple, tool schema reformatted as YAML with keys reordered: same release.
    yaml_tools = tmp_path / "tools.yaml"
    yaml_tools.write_text("send_email: {}\nissue_refund:\n  amount: number\n")
    again = service.record("refund-agent", model=PINNED[0], prompt=prompt, tools=yaml_tools)
    assert not again.created and again.release.id == first.release.id
    prompt.write_text("You issue refunds generously.\n")
    clock.advance(60)
    changed = service.record("refund-agent", model=PINNED[0], prompt=prompt, tools=tools)
    assert changed.created and changed.release.id != first.release.id
    listed = service.list("refund-agent")
    assert [r.id for r in listed.releases] == [changed.release.id, first.release.id]  # newest first
    assert listed.active is None  # nothing deployed to the pointer yet


def test_floating_model_is_refused_unless_forced(
    agentctl: Agentctl, files: tuple[Path, Path]
) -> None:
    prompt, tools = files
    service = agentctl.releases()
    with pytest.raises(BadInputError) as caught:
        service.record("refund-agent", model="claude-3-5-sonnet-latest", prompt=prompt, tools=tools)
    assert "floats" in caught.value.message and "--force" in (caught.value.hint or "")
    assert service.list("refund-agent").releases == []
    forced = service.record(
        "refund-agent", model="claude-3-5-sonnet-latest", prompt=prompt, tools=tools, force=True
    )
    assert forced.release.floating and "may not be reproducible" in forced.warnings[0]


def test_marks_and_last_known_good(agentctl: Agentctl, files: tuple[Path, Path]) -> None:
    prompt, tools = files
    service = agentctl.releases()
    a = service.record("refund-agent", model=PINNED[0], prompt=prompt, tools=tools).release
    b = service.record("refund-agent", model=PINNED[1], prompt=prompt, tools=tools).release
    service.mark("refund-agent", a.id[:8], good=True)
    service.mark("refund-agent", b.id, good=False, note="refunds everything")
    marks = {r.id: r.mark for r in service.list("refund-agent").releases}
    assert marks == {a.id: Mark.GOOD, b.id: Mark.BAD}
    assert service.catalog.last_known_good("refund-agent").id == a.id
    with pytest.raises(BadInputError, match="no release marked good other than"):
        service.catalog.last_known_good("refund-agent", excluding=a.id)
    with pytest.raises(BadInputError, match="has no release"):
        service.mark("refund-agent", "rel-nope", good=True)


def test_missing_prompt_file_is_bad_input(agentctl: Agentctl, tmp_path: Path) -> None:
    with pytest.raises(BadInputError, match="cannot read prompt template"):
        agentctl.releases().record(
            "refund-agent", model=PINNED[0], prompt=tmp_path / "nope", tools=tmp_path / "nope"
        )


def test_release_id_depends_on_each_part() -> None:
    base = release_id("m-v1", "sha256:a", "sha256:b")
    assert base == release_id("m-v1", "sha256:a", "sha256:b")
    assert (
        len(
            {
                base,
                release_id("m-v2", "sha256:a", "sha256:b"),
                release_id("m-v1", "sha256:x", "sha256:b"),
                release_id("m-v1", "sha256:a", "sha256:x"),
            }
        )
        == 4
    )


# -- the pointer lever ---------------------------------------------------------------------------
def _step(agentctl: Agentctl, **inputs: object):
    spec = agentctl.spec("refund-agent")
    ctx = agentctl.engine.context(spec)
    return make_step(ctx, StepSpec(name="p", action="release.pointer", inputs=dict(inputs)))


def test_ssm_pointer_round_trip_with_labels(agentctl: Agentctl, seeded: Aws) -> None:
    ssm = seeded.client("ssm")
    name = "/agents/refund-agent/release"
    ssm.put_parameter(Name=name, Value='{"release_id": "rel-bad000000000"}', Type="String")
    step = _step(
        agentctl, release_id="rel-good00000000", document={"release_id": "rel-good00000000"}
    )
    before = step.snapshot()
    assert before.release_id == "rel-bad000000000" and not step.is_applied(before)
    step.apply(before)
    step.apply(step.snapshot())  # idempotent: still one value
    now = step.snapshot()
    assert step.is_applied(now)
    history = ssm.get_parameter_history(Name=name)["Parameters"]
    assert [h.get("Labels", []) for h in history][-1] == ["rel-good00000000"]
    step.undo(before)
    assert step.snapshot().value == before.value


def test_ssm_pointer_undo_never_deletes(agentctl: Agentctl) -> None:
    step = _step(
        agentctl, release_id="rel-good00000000", document={"release_id": "rel-good00000000"}
    )
    before = step.snapshot()
    assert not before.exists
    step.apply(before)
    with pytest.raises(BadInputError, match="does not delete"):
        step.undo(before)


def test_lambda_alias_pointer_round_trip(agentctl: Agentctl, seeded: Aws, runbooks: Path) -> None:
    lam = seeded.client("lambda")
    v1 = lam.publish_version(FunctionName="refund-agent-worker")["Version"]
    lam.update_function_configuration(FunctionName="refund-agent-worker", Timeout=30)
    v2 = lam.publish_version(FunctionName="refund-agent-worker")["Version"]
    assert v1 != v2
    lam.create_alias(FunctionName="refund-agent-worker", Name="live", FunctionVersion=v2)
    step = _step(
        agentctl,
        release_id="rel-good00000000",
        function_version=v1,
        function="refund-agent-worker",
        alias="live",
    )
    before = step.snapshot()
    assert before.function_version == v2 and step.target == "lambda:refund-agent-worker:live"
    step.apply(before)
    assert lam.get_alias(FunctionName="refund-agent-worker", Name="live")["FunctionVersion"] == v1
    step.undo(before)
    assert step.is_restored(step.snapshot(), before)


def test_lambda_alias_pointer_needs_a_function_version_and_rolls_back(
    seeded: Aws, runbooks: Path, store: SqliteStore, clock: FakeClock, files: tuple[Path, Path]
) -> None:
    spec_file = runbooks / "refund-agent.yaml"
    text = spec_file.read_text().replace(
        "release:                             # the agent reads its pinned release here at start\n"
        "  parameter: /agents/refund-agent/release\n",
        "release:\n  function: refund-agent-worker\n  alias: live\n",
    )
    assert "alias: live" in text
    spec_file.write_text(text)
    lam = seeded.client("lambda")
    v1 = lam.publish_version(FunctionName="refund-agent-worker")["Version"]
    lam.update_function_configuration(FunctionName="refund-agent-worker", Timeout=30)
    v2 = lam.publish_version(FunctionName="refund-agent-worker")["Version"]
    assert v1 != v2
    lam.create_alias(FunctionName="refund-agent-worker", Name="live", FunctionVersion=v2)
    ac = Agentctl(seeded, runbooks_dir=runbooks, store=store, clock=clock, user="oncall")
    ac.engine.verify_interval = 0.01
    prompt, tools = files
    with pytest.raises(BadInputError, match="--function-version"):
        ac.releases().record("refund-agent", model=PINNED[0], prompt=prompt, tools=tools)
    good = (
        ac.releases()
        .record("refund-agent", model=PINNED[0], prompt=prompt, tools=tools, function_version=v1)
        .release
    )
    bad = (
        ac.releases()
        .record("refund-agent", model=PINNED[1], prompt=prompt, tools=tools, function_version=v2)
        .release
    )
    ac.releases().mark("refund-agent", good.id, good=True)
    assert ac.releases().list("refund-agent").active == bad.id
    plan = ac.plan_rollback("refund-agent", RollbackOptions(compensate=False))
    result = ac.execute_rollback(plan)
    assert result.exit_code is ExitCode.OK
    assert lam.get_alias(FunctionName="refund-agent-worker", Name="live")["FunctionVersion"] == v1
    assert ac.releases().list("refund-agent").active == good.id
