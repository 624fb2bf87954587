"""Regression tests for bugs a review found: each test is one scenario an on-call could hit."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from agentctl.clock import FakeClock
from agentctl.engine.model import Outcome
from agentctl.engine.phases import ContainOptions
from agentctl.errors import BadInputError, ExitCode
from agentctl.incidents.models import Event
from agentctl.ops import Agentctl
from tests.aws_state import put_registry, registry, reserved

AGENT = "refund-agent"


def edit_spec(runbooks: Path, agent: str, old: str, new: str) -> None:
    path = runbooks / f"{agent}.yaml"
    text = path.read_text()
    assert old in text
    path.write_text(text.replace(old, new))


def test_resume_runs_the_declared_undo_of_a_call_without_check(agentctl, seeded, runbooks):
    text = (runbooks / "ticket-triager.yaml").read_text()
    start = text.index("          check:\n")
    end = text.index("      - name: check-rule-disabled")
    (runbooks / "ticket-triager.yaml").write_text(text[:start] + text[end:])
    agentctl.execute(agentctl.plan_contain("ticket-triager"))
    events = seeded.client("events")
    assert events.describe_rule(Name="ticket-triager-nightly")["State"] == "DISABLED"
    plan = agentctl.plan_resume("ticket-triager")
    call = next(p for p in plan.steps if p.name == "pause-nightly-retriage")
    assert call.change == "call events EnableRule"
    result = agentctl.execute(plan)
    assert result.exit_code is ExitCode.OK
    assert events.describe_rule(Name="ticket-triager-nightly")["State"] == "ENABLED"
    assert all(
        p.name != "pause-nightly-retriage" for p in agentctl.plan_resume("ticket-triager").steps
    )


def test_same_step_name_on_two_targets_restores_both(agentctl, seeded, runbooks) -> None:
    seeded.client("lambda").put_function_concurrency(
        FunctionName="refund-agent-worker", ReservedConcurrentExecutions=5
    )
    edit_spec(
        runbooks,
        AGENT,
        "  - refund-agent-worker\n  - refund-agent-planner\n",
        "  - refund-agent-worker\n",
    )
    agentctl.execute(agentctl.plan_contain(AGENT, ContainOptions(hard=True)))
    # someone edits the spec mid-incident: stop-function-1 now names another function
    edit_spec(
        runbooks,
        AGENT,
        "  - refund-agent-worker\n",
        "  - refund-agent-planner\n  - refund-agent-worker\n",
    )
    agentctl.execute(agentctl.plan_contain(AGENT, ContainOptions(hard=True)))
    plan = agentctl.plan_resume(AGENT)
    names = [p.name for p in plan.steps]
    assert len(names) == len(set(names))
    result = agentctl.execute(plan)
    assert result.exit_code is ExitCode.OK
    assert reserved(seeded, "refund-agent-worker") == 5
    assert reserved(seeded, "refund-agent-planner") is None


def test_a_plan_confirmed_late_is_read_again(agentctl: Agentctl, seeded, clock: FakeClock):
    """Operator A reads a plan and waits at the prompt; operator B contains another tool;
    A confirms. B's deny must survive A's write."""
    plan_a = agentctl.plan_contain(AGENT, ContainOptions(tools=["issue_refund"]))
    agentctl.execute(agentctl.plan_contain(AGENT, ContainOptions(tools=["send_email"])))
    clock.advance(30)  # A reads the plan for half a minute
    agentctl.execute(plan_a)
    doc = seeded.client("iam").get_role_policy(
        RoleName="refund-agent-role", PolicyName="agentctl-containment"
    )["PolicyDocument"]
    assert sorted(s["Sid"] for s in doc["Statement"]) == [
        "AgentctlDenyIssueRefund",
        "AgentctlDenySendEmail",
    ]
    tools = registry(seeded)["tools"]
    assert not tools["issue_refund"]["enabled"] and not tools["send_email"]["enabled"]


def test_an_undo_with_nothing_to_do_closes_the_target(agentctl: Agentctl, seeded) -> None:
    original = registry(seeded)
    agentctl.execute(agentctl.plan_contain(AGENT))
    put_registry(seeded, original)  # someone restored the registry by hand
    first = agentctl.execute(agentctl.plan_resume(AGENT))
    registry_step = next(r for r in first.results if r.name == "disable-registry")
    assert registry_step.outcome is Outcome.NOOP
    journal = agentctl.store.journal(first.incident.id)
    assert [e.event for e in journal if e.step == "disable-registry"][-1] is Event.UNDONE

    # later in the same incident the owner turns lookup_order off on purpose, then contain
    doc = registry(seeded)
    doc["tools"]["lookup_order"]["enabled"] = False
    put_registry(seeded, doc)
    agentctl.execute(agentctl.plan_contain(AGENT))
    agentctl.execute(agentctl.plan_resume(AGENT))
    tools = registry(seeded)["tools"]
    assert tools["lookup_order"]["enabled"] is False  # stays as it was before this contain
    assert tools["issue_refund"]["enabled"] is True


def test_resume_uses_the_journal_not_the_edited_spec(agentctl: Agentctl, seeded, runbooks):
    agentctl.execute(agentctl.plan_contain(AGENT, ContainOptions(tools=["send_email"])))
    # the spec changes mid-incident: a tool is added, the contained one removed
    text = (runbooks / "refund-agent.yaml").read_text()
    start = text.index("  - name: send_email")
    end = text.index("tool_registry:")
    text = text[:start] + "  - name: new_tool\n    side_effects: false\n" + text[end:]
    (runbooks / "refund-agent.yaml").write_text(text)
    result = agentctl.execute(agentctl.plan_resume(AGENT))
    assert result.exit_code is ExitCode.OK, [(r.name, r.error) for r in result.results]
    assert registry(seeded)["tools"]["send_email"]["enabled"] is True
    policies = seeded.client("iam").list_role_policies(RoleName="refund-agent-role")
    assert "agentctl-containment" not in policies["PolicyNames"]


def test_shadow_off_without_incident_is_not_undone_by_resume(agentctl: Agentctl, seeded):
    ssm = seeded.client("ssm")
    ssm.put_parameter(
        Name="/agents/refund-agent/mode", Value="shadow", Type="String", Overwrite=True
    )
    agentctl.execute(agentctl.plan_shadow(AGENT, off=True))  # no incident: sets live
    agentctl.execute(agentctl.plan_contain(AGENT))
    agentctl.execute(agentctl.plan_resume(AGENT))
    assert ssm.get_parameter(Name="/agents/refund-agent/mode")["Parameter"]["Value"] == "live"


def test_registry_entry_without_enabled_key_gets_it_removed_again(agentctl, seeded) -> None:
    doc = registry(seeded)
    del doc["tools"]["lookup_order"]["enabled"]  # enabled by default
    doc["tools"]["send_email"]["enabled"] = "false"  # a string, as some writers do
    put_registry(seeded, doc)
    plan = agentctl.plan_contain(AGENT)
    registry_step = next(p for p in plan.steps if p.name == "disable-registry")
    assert registry_step.before.enabled["send_email"] is False
    agentctl.execute(plan)
    agentctl.execute(agentctl.plan_resume(AGENT))
    tools = registry(seeded)["tools"]
    assert "enabled" not in tools["lookup_order"]
    assert tools["send_email"]["enabled"] is False


def test_tool_names_differing_by_separator_get_distinct_statement_ids(
    agentctl, seeded, runbooks
) -> None:
    edit_spec(runbooks, AGENT, "  - name: lookup_order\n", "  - name: send-email\n")
    agentctl.execute(agentctl.plan_contain(AGENT))
    doc = seeded.client("iam").get_role_policy(
        RoleName="refund-agent-role", PolicyName="agentctl-containment"
    )["PolicyDocument"]
    sids = [s["Sid"] for s in doc["Statement"]]
    assert len(sids) == len(set(sids)) == 3


def test_close_refuses_while_targets_are_changed(agentctl: Agentctl) -> None:
    result = agentctl.execute(agentctl.plan_contain(AGENT))
    with pytest.raises(BadInputError, match="still has 2 changed target"):
        agentctl.close_incident(result.incident.id, by="ana")
    agentctl.execute(agentctl.plan_resume(AGENT))
    closed = agentctl.close_incident(result.incident.id, by="ana")
    assert closed.status.value == "closed"


def test_status_says_partial_after_contain_of_some_tools(agentctl: Agentctl) -> None:
    agentctl.execute(agentctl.plan_contain(AGENT, ContainOptions(tools=["issue_refund"])))
    report = agentctl.status(AGENT)
    states = {lv.lever: lv.state.value for lv in report.levers}
    assert states["deny-tools"] == "partial"
    assert states["disable-registry"] == "partial"
    assert states["stop-function-1"] == "live"
    assert report.overall == "partially contained"
    agentctl.execute(agentctl.plan_contain(AGENT))
    states = {lv.lever: lv.state.value for lv in agentctl.status(AGENT).levers}
    assert states["deny-tools"] == states["disable-registry"] == "contained"


def _slow_deny_tools(monkeypatch: pytest.MonkeyPatch, method: str = "apply") -> Any:
    """deny-tools' change (``method="undo"``: its restore) waits until the returned event is
    set."""
    import threading

    from agentctl.levers.iam import DenyTools

    release = threading.Event()
    real = getattr(DenyTools, method)

    def slow(self: DenyTools, before: object) -> None:
        assert release.wait(timeout=30), "the test never released the step"
        real(self, before)

    monkeypatch.setattr(DenyTools, method, slow)
    return release


def _deny_tools_times_out(monkeypatch: pytest.MonkeyPatch) -> None:
    """deny-tools' time is up after 0.2 s (every other step keeps a minute)."""
    import agentctl.engine.runner as runner

    monkeypatch.setattr(
        runner, "_timeout", lambda planned: 0.2 if planned.name == "deny-tools" else 60.0
    )


def _deny_tools_journal(seeded: Any, runbooks: Path, path: Path, clock: FakeClock) -> list:
    reopened = Agentctl(seeded, runbooks_dir=runbooks, store=str(path), clock=clock)
    [incident] = reopened.store.list_incidents()
    events = [e.event for e in reopened.store.journal(incident.id) if e.step == "deny-tools"]
    reopened.close()
    return events


def test_a_step_that_outlives_its_timeout_still_journals_before_the_store_closes(
    seeded, runbooks: Path, clock: FakeClock, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The step is reported failed (outcome unknown) when its time is up, but its worker runs
    on and really applies the change: the journal must say so, so the store may only close
    once that worker is done."""

    release = _slow_deny_tools(monkeypatch)
    _deny_tools_times_out(monkeypatch)
    path = tmp_path / "incidents.db"
    ac = Agentctl(seeded, runbooks_dir=runbooks, store=str(path), clock=clock, user="oncall")
    ac.engine.verify_interval = 0.01
    result = ac.execute(ac.plan_contain(AGENT))
    deny = next(r for r in result.results if r.name == "deny-tools")
    assert deny.outcome is Outcome.FAILED and deny.outcome_unknown
    told: list[int] = []

    def notify(running: int) -> None:  # told before the wait; the wait ends once released
        told.append(running)
        release.set()

    ac.close(notify)  # waits for the late worker, then closes (and checkpoints) the store
    assert told == [1]
    events = _deny_tools_journal(seeded, runbooks, path, clock)
    assert events == [Event.INTENT, Event.FAILED, Event.APPLIED, Event.VERIFIED]
    ac.close(notify)  # nothing left running: nothing to say
    assert told == [1]


def test_an_undo_that_outlives_its_timeout_is_journaled_as_a_restore_that_failed(
    seeded, runbooks: Path, clock: FakeClock, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Resume's undo of deny-tools times out: the journal (and the review built from it) says
    the restore failed, not that a change failed; the late worker's restore follows."""

    path = tmp_path / "incidents.db"
    ac = Agentctl(seeded, runbooks_dir=runbooks, store=str(path), clock=clock, user="oncall")
    ac.engine.verify_interval = 0.01
    ac.execute(ac.plan_contain(AGENT))
    release = _slow_deny_tools(monkeypatch, "undo")
    _deny_tools_times_out(monkeypatch)
    result = ac.execute(ac.plan_resume(AGENT))
    deny = next(r for r in result.results if r.name == "deny-tools")
    assert deny.outcome is Outcome.FAILED and deny.outcome_unknown
    release.set()
    ac.close()
    events = _deny_tools_journal(seeded, runbooks, path, clock)
    assert events[3:] == [Event.UNDO_INTENT, Event.UNDO_FAILED, Event.UNDONE]


def test_a_run_left_by_an_error_still_journals_its_running_steps_before_the_store_closes(
    seeded, runbooks: Path, clock: FakeClock, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The progress display fails (a closed pipe) while deny-tools is still applying: the
    error propagates, and the change deny-tools makes must still be journaled."""
    release = _slow_deny_tools(monkeypatch)
    path = tmp_path / "incidents.db"
    ac = Agentctl(seeded, runbooks_dir=runbooks, store=str(path), clock=clock, user="oncall")
    ac.engine.verify_interval = 0.01

    def progress(result: Any) -> None:
        raise BrokenPipeError("stdout closed")

    with pytest.raises(BrokenPipeError):
        ac.execute(ac.plan_contain(AGENT), on_result=progress)
    release.set()
    ac.close()
    assert _deny_tools_journal(seeded, runbooks, path, clock) == [
        Event.INTENT,
        Event.APPLIED,
        Event.VERIFIED,
    ]


def test_the_cli_says_why_it_waits_for_a_step_that_timed_out(
    seeded,
    runbooks: Path,
    clock: FakeClock,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """At the end of a command the CLI closes what it opened; a step still running makes that
    wait (as long as its AWS calls take), so it says so on stderr instead of seeming to hang."""
    import threading

    from agentctl.cli.context import Globals

    release = _slow_deny_tools(monkeypatch)
    _deny_tools_times_out(monkeypatch)
    ac = Agentctl(seeded, runbooks_dir=runbooks, store=str(tmp_path / "i.db"), clock=clock)
    ac.engine.verify_interval = 0.01
    ac.execute(ac.plan_contain(AGENT))
    cli = Globals()
    cli._made.append(ac)
    threading.Timer(0.3, release.set).start()
    cli.close()
    err = capsys.readouterr().err
    assert "waiting: 1 step is still running (timed out" in err
    assert _deny_tools_journal(seeded, runbooks, tmp_path / "i.db", clock)[-1] is Event.VERIFIED


def test_a_notice_that_fails_still_waits_and_closes_every_store(
    seeded, runbooks: Path, clock: FakeClock, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The notice goes to a closed stderr (`2>&1 | head`): the error still ends the command,
    but only after the late step journaled what it did and every store was closed."""
    import threading

    import agentctl.cli.context as context

    release = _slow_deny_tools(monkeypatch)
    _deny_tools_times_out(monkeypatch)
    first = Agentctl(seeded, runbooks_dir=runbooks, store=str(tmp_path / "a.db"), clock=clock)
    first.engine.verify_interval = 0.01
    first.execute(first.plan_contain(AGENT))
    second = Agentctl(seeded, runbooks_dir=runbooks, store=str(tmp_path / "b.db"), clock=clock)
    second.store.list_incidents()  # opens its store

    def closed_stderr(running: int) -> None:
        threading.Timer(0.3, release.set).start()
        raise BrokenPipeError("stderr closed")

    monkeypatch.setattr(context, "_waiting", closed_stderr)
    cli = context.Globals()
    cli._made.extend([first, second])
    with pytest.raises(BrokenPipeError):
        cli.close()
    assert first._opened is None and second._opened is None  # both stores closed
    events = _deny_tools_journal(seeded, runbooks, tmp_path / "a.db", clock)
    assert events == [Event.INTENT, Event.FAILED, Event.APPLIED, Event.VERIFIED]
