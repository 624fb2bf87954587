"""Spec loading: good specs load; every kind of bad input is reported with file, line, field."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from agentctl.errors import ExitCode, SpecError, UnknownAgentError
from agentctl.spec import json_schema, load_agent, load_spec, parse_spec

GOOD = """\
version: 1
name: refund-agent
owner: payments
role: refund-agent-role
tools:
  - name: issue_refund
    side_effects: true
    iam:
      actions: [lambda:InvokeFunction]
    mitigation: {kind: support_list, description: call the customer}
tool_registry:
  parameter: /agents/refund-agent/tools
"""


def problems(text: str) -> list[tuple[int | None, str, str]]:
    with pytest.raises(SpecError) as info:
        parse_spec(text, "spec.yaml")
    assert info.value.exit_code is ExitCode.BAD_INPUT
    return [(p.line, p.field, p.message) for p in info.value.problems]


@pytest.mark.parametrize("agent", ["refund-agent", "ticket-triager"])
def test_example_specs_load(agent: str, runbooks: Path) -> None:
    spec = load_agent(agent, runbooks)
    assert spec.name == agent
    assert spec.tools, "the examples declare tools"


def test_good_spec_fields() -> None:
    spec = parse_spec(GOOD)
    assert spec.role_name == "refund-agent-role"
    assert spec.tools[0].iam is not None
    assert spec.tools[0].iam.resources == ["*"]  # default: every resource
    assert spec.tool_registry is not None


def test_role_arn_gives_role_name() -> None:
    spec = parse_spec(GOOD.replace("role: refund-agent-role", "role: arn:aws:iam::1:role/x/y"))
    assert spec.role_name == "y"


def test_malformed_yaml_names_the_line() -> None:
    found = problems(GOOD + "functions: [a, b\n")
    assert len(found) == 1
    line, _, message = found[0]
    assert message.startswith("invalid YAML")
    assert line is not None and line >= 12


def test_unknown_keys_are_errors_with_line_and_path() -> None:
    text = GOOD.replace("    side_effects: true\n", "    side_effects: true\n    sideeffects: no\n")
    text += "shadowflag: {parameter: /x}\n"
    found = problems(text)
    assert (8, "tools[0].sideeffects", "unknown key") in found
    assert (14, "shadowflag", "unknown key") in found


def test_every_wrong_type_is_listed_not_only_the_first() -> None:
    text = GOOD.replace("side_effects: true", "side_effects: maybe") + "functions: 3\n"
    found = problems(text)
    fields = {f for _, f, _ in found}
    assert {"tools[0].side_effects", "functions"} <= fields
    by_field = {f: (line, m) for line, f, m in found}
    assert by_field["tools[0].side_effects"][0] == 7
    assert "maybe" in by_field["tools[0].side_effects"][1]  # says what it got
    assert by_field["functions"][0] == 13


def test_missing_required_field() -> None:
    found = problems(GOOD.replace("owner: payments\n", ""))
    assert (None, "owner", "required field is missing") in [(None, f, m) for _, f, m in found]


def test_duplicate_key_is_an_error() -> None:
    found = problems(GOOD + "owner: someone-else\n")
    assert (13, "owner", "duplicate key") in found


def test_bad_iam_action_names_its_field() -> None:
    text = GOOD.replace(
        "tool_registry:",
        "  - name: issue_refund\n    side_effects: false\n    iam: {actions: [not-an-action]}\n"
        "tool_registry:",
    )
    found = problems(text)
    messages = " | ".join(m for _, _, m in found)
    assert "not an IAM action" in messages
    assert any(f == "tools[1].iam.actions" for _, f, _ in found)


def test_duplicate_tools_rejected() -> None:
    text = GOOD.replace(
        "tool_registry:", "  - name: issue_refund\n    side_effects: false\ntool_registry:"
    )
    found = problems(text)
    assert any("duplicate tool names: issue_refund" in m for _, _, m in found)


def test_unknown_step_action_and_bad_inputs() -> None:
    text = GOOD + (
        "runbooks:\n"
        "  contain:\n"
        "    steps:\n"
        "      - name: one\n"
        "        action: iam.deny_everything\n"
        "      - name: two\n"
        "        action: lambda.reserved_concurrency\n"
        "        inputs: {function: f, value: -1, colour: red}\n"
    )
    found = problems(text)
    assert any(
        f == "runbooks.contain.steps[0].action" and line == 17 and "unknown action" in m
        for line, f, m in found
    )
    assert any(f == "runbooks.contain.steps[1].inputs.value" and line == 20 for line, f, _ in found)
    assert (20, "runbooks.contain.steps[1].inputs.colour", "unknown key") in found


def test_step_dependency_cycle_rejected() -> None:
    text = GOOD + (
        "runbooks:\n  contain:\n    steps:\n"
        "      - {name: a, action: aws.assert, depends_on: [b],"
        " inputs: {service: sts, operation: GetCallerIdentity, path: Account, equals: '1'}}\n"
        "      - {name: b, action: aws.assert, depends_on: [a],"
        " inputs: {service: sts, operation: GetCallerIdentity, path: Account, equals: '1'}}\n"
    )
    found = problems(text)
    assert any("cycle" in m for _, _, m in found)


def test_unknown_phase_rejected() -> None:
    found = problems(GOOD + "runbooks:\n  explode: {steps: []}\n")
    assert any(f.startswith("runbooks") for _, f, _ in found)


@pytest.mark.parametrize("text", ["", "- a\n- b\n", "just a string\n"])
def test_not_a_mapping(text: str) -> None:
    found = problems(text)
    assert found and "expected a mapping" in found[-1][2]


def test_file_name_must_match_agent_name(tmp_path: Path) -> None:
    (tmp_path / "other.yaml").write_text(GOOD)
    with pytest.raises(SpecError) as info:
        load_agent("other", tmp_path)
    assert "expected 'other'" in info.value.problems[0].message


def test_unknown_agent_lists_known_ones(runbooks: Path) -> None:
    with pytest.raises(UnknownAgentError) as info:
        load_agent("refund-agnet", runbooks)
    assert info.value.exit_code is ExitCode.BAD_INPUT
    assert info.value.hint is not None and "refund-agent" in info.value.hint


@pytest.mark.parametrize("name", ["../refund-agent", "/etc/passwd", "Refund-Agent", "a/b", ""])
def test_an_agent_name_is_never_a_path(runbooks: Path, name: str) -> None:
    (runbooks.parent / "refund-agent.yaml").write_text(GOOD)  # what "../refund-agent" would hit
    with pytest.raises(UnknownAgentError) as info:
        load_agent(name, runbooks)
    assert info.value.exit_code is ExitCode.BAD_INPUT
    assert "not an agent name" in info.value.message


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(SpecError) as info:
        load_spec(tmp_path / "nope.yaml")
    assert info.value.problems[0].message == "file not found"


def test_problem_str_has_file_line_field() -> None:
    with pytest.raises(SpecError) as info:
        parse_spec(GOOD + "bogus: 1\n", "runbooks/refund-agent.yaml")
    assert str(info.value.problems[0]) == "runbooks/refund-agent.yaml:13: bogus: unknown key"


def test_json_schema_describes_the_spec() -> None:
    schema = json_schema()
    assert schema["title"] == "agentctl agent spec"
    props = schema["properties"]
    assert isinstance(props, dict)
    assert {"name", "owner", "role", "tools", "tool_registry", "functions", "shadow_flag"} <= set(
        props
    )
    assert schema.get("additionalProperties") is False
    json.dumps(schema)  # serialisable


def test_shipped_schema_file_is_current() -> None:
    shipped = Path(__file__).resolve().parents[2] / "agentctl" / "schema" / "agent-spec.schema.json"
    assert json.loads(shipped.read_text()) == json_schema(), (
        "run `agentctl runbook schema > agentctl/schema/agent-spec.schema.json`"
    )


@pytest.mark.parametrize("value", ["!vault secret", "!!int abc"])
def test_yaml_tags_are_bad_input_not_a_crash(value: str) -> None:
    found = problems(GOOD.replace("owner: payments", f"owner: {value}"))
    assert found[0][0] == 3 and found[0][2].startswith("invalid YAML")
