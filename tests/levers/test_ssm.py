from __future__ import annotations

import json
from typing import Any

import pytest
from botocore.awsrequest import AWSResponse

from agentctl.aws import Aws
from agentctl.errors import AwsCallError, BadInputError
from tests.aws_state import REGISTRY, put_registry, registry
from tests.levers.conftest import MakeStep, roundtrip


def test_registry_round_trip_touches_only_enabled(make: MakeStep, seeded: Aws) -> None:
    original = registry(seeded)
    original["tools"]["issue_refund"]["limit"] = 50
    original["tools"]["legacy_tool"] = {"enabled": True}  # not in the spec: never touched
    original["owner"] = "payments"
    put_registry(seeded, original)
    step = make("registry.disable_tools")
    roundtrip(step)
    assert registry(seeded) == original


def test_registry_apply_disables_selected_only(make: MakeStep, seeded: Aws) -> None:
    step = make("registry.disable_tools", {"tools": ["issue_refund"]})
    step.apply(step.snapshot())
    tools = registry(seeded)["tools"]
    assert tools["issue_refund"]["enabled"] is False
    assert tools["send_email"]["enabled"] is True
    assert tools["issue_refund"]["side_effects"] is True  # other fields kept


def test_tool_missing_from_registry_is_added_disabled_and_removed_on_undo(make, seeded):
    doc = registry(seeded)
    del doc["tools"]["send_email"]
    put_registry(seeded, doc)
    step = make("registry.disable_tools")
    before = step.snapshot()
    assert before.enabled["send_email"] is None
    step.apply(before)
    assert registry(seeded)["tools"]["send_email"] == {"enabled": False}
    step.undo(before)
    assert "send_email" not in registry(seeded)["tools"]


def test_already_disabled_tool_stays_disabled_after_undo(make: MakeStep, seeded: Aws) -> None:
    doc = registry(seeded)
    doc["tools"]["send_email"]["enabled"] = False
    put_registry(seeded, doc)
    before, _ = roundtrip(make("registry.disable_tools"))
    assert before.enabled["send_email"] is False
    assert registry(seeded)["tools"]["send_email"]["enabled"] is False


def test_second_apply_writes_no_new_version(make: MakeStep, seeded: Aws) -> None:
    step = make("registry.disable_tools")
    step.apply(step.snapshot())
    version = seeded.client("ssm").get_parameter(Name=REGISTRY)["Parameter"]["Version"]
    step.apply(step.snapshot())
    assert seeded.client("ssm").get_parameter(Name=REGISTRY)["Parameter"]["Version"] == version


def test_concurrent_edit_is_not_clobbered(make: MakeStep, seeded: Aws) -> None:
    """Another writer adds a tool between our read and our write: both changes survive."""
    client = seeded.client("ssm", retries=4)
    state = {"raced": False}

    def other_writer(**_: Any) -> None:
        if state["raced"]:
            return
        state["raced"] = True
        doc = registry(seeded)
        doc["tools"]["new_tool"] = {"enabled": True}
        # a separate client: the other operator's process
        seeded.client("ssm", retries=9).put_parameter(
            Name=REGISTRY, Value=json.dumps(doc), Type="String", Overwrite=True
        )

    client.meta.events.register("before-call.ssm.PutParameter", other_writer)
    try:
        step = make("registry.disable_tools", {"tools": ["issue_refund"]})
        step.apply(step.snapshot())
    finally:
        client.meta.events.unregister("before-call.ssm.PutParameter", other_writer)
    tools = registry(seeded)["tools"]
    assert state["raced"]
    assert tools["new_tool"] == {"enabled": True}  # theirs kept
    assert tools["issue_refund"]["enabled"] is False  # ours applied


def test_registry_not_json_is_bad_input(make: MakeStep, seeded: Aws) -> None:
    seeded.client("ssm").put_parameter(Name=REGISTRY, Value="{oops", Type="String", Overwrite=True)
    with pytest.raises(BadInputError, match="not JSON"):
        make("registry.disable_tools").snapshot()


def test_registry_parameter_missing(make: MakeStep) -> None:
    step = make("registry.disable_tools", {"parameter": "/nope"})
    with pytest.raises(AwsCallError, match="does not exist"):
        step.snapshot()


def test_shadow_flag_round_trip(make: MakeStep, seeded: Aws) -> None:
    before, applied = roundtrip(make("shadow.flag", {"mode": "shadow"}))
    assert (before.value, applied.value) == ("live", "shadow")


def test_shadow_flag_absent_before_is_removed_on_undo(make: MakeStep, seeded: Aws) -> None:
    seeded.client("ssm").delete_parameter(Name="/agents/refund-agent/mode")
    before, applied = roundtrip(make("shadow.flag"))
    assert before.value is None and applied.value == "shadow"
    with pytest.raises(seeded.client("ssm").exceptions.ParameterNotFound):
        seeded.client("ssm").get_parameter(Name="/agents/refund-agent/mode")


def test_a_secure_registry_keeps_its_kms_key_through_contain_and_undo(
    make: MakeStep, seeded: Aws
) -> None:
    """A SecureString registry under a customer-managed key: every write says which key, because
    a PutParameter without KeyId re-encrypts under the default aws/ssm key on real SSM. (moto
    keeps the old key either way, so the test checks the requests, and the key SSM reports.)"""
    doc = registry(seeded)
    key = secure_registry(seeded)
    ssm = seeded.client("ssm")
    puts: list[dict[str, Any]] = []
    on_every_client(
        seeded, "provide-client-params.ssm.PutParameter", lambda params, **_: puts.append(params)
    )

    step = make("registry.disable_tools")
    roundtrip(step)

    assert len(puts) == 2  # one write to disable, one to restore: both name the key
    assert {(p["Type"], p.get("KeyId")) for p in puts} == {("SecureString", key)}
    [meta] = ssm.describe_parameters(
        ParameterFilters=[{"Key": "Name", "Option": "Equals", "Values": [REGISTRY]}]
    )["Parameters"]
    assert meta["Type"] == "SecureString" and meta["KeyId"] == key
    value = ssm.get_parameter(Name=REGISTRY, WithDecryption=True)["Parameter"]["Value"]
    assert json.loads(value) == doc


def secure_registry(seeded: Aws) -> str:
    key = seeded.client("kms").create_key(Description="registry key")["KeyMetadata"]["KeyId"]
    ssm = seeded.client("ssm")
    doc = registry(seeded)
    ssm.delete_parameter(Name=REGISTRY)
    ssm.put_parameter(Name=REGISTRY, Value=json.dumps(doc), Type="SecureString", KeyId=key)
    return str(key)


def on_every_client(seeded: Aws, event: str, handler: Any) -> None:
    seeded.session.register(event, handler)
    for client in seeded._clients.values():
        client.meta.events.register(event, handler)


def answer(parsed: dict[str, Any]) -> tuple[AWSResponse, dict[str, Any]]:
    """A before-call handler's short-circuit: this parsed response instead of the real call."""
    return AWSResponse("https://ssm", 200, {}, None), parsed


def test_the_kms_key_is_found_past_an_empty_best_effort_page(make: MakeStep, seeded: Aws) -> None:
    """DescribeParameters is best-effort: a page may hold nothing and still carry a NextToken.
    moto never pages so, so a before-call hook answers DescribeParameters (only): page 1 empty
    with a token, page 2 the parameter as moto describes it."""
    key = secure_registry(seeded)
    [real] = seeded.client("ssm").describe_parameters(
        ParameterFilters=[{"Key": "Name", "Option": "Equals", "Values": [REGISTRY]}]
    )["Parameters"]
    tokens: list[str | None] = []
    puts: list[dict[str, Any]] = []

    def pages(**_: Any) -> Any:
        if len(tokens) == 1:
            return answer({"Parameters": [], "NextToken": "page-2"})
        return answer({"Parameters": [real]})

    on_every_client(
        seeded,
        "provide-client-params.ssm.DescribeParameters",
        lambda params, **_: tokens.append(params.get("NextToken")),
    )
    on_every_client(seeded, "before-call.ssm.DescribeParameters", pages)
    on_every_client(
        seeded, "provide-client-params.ssm.PutParameter", lambda params, **_: puts.append(params)
    )
    step = make("registry.disable_tools")
    step.apply(step.snapshot())
    assert tokens == [None, "page-2"]
    assert [p.get("KeyId") for p in puts] == [key]


def test_a_secure_registry_whose_key_cannot_be_read_is_not_written(
    make: MakeStep, seeded: Aws
) -> None:
    secure_registry(seeded)
    before = seeded.client("ssm").get_parameter(Name=REGISTRY)["Parameter"]
    on_every_client(
        seeded, "before-call.ssm.DescribeParameters", lambda **_: answer({"Parameters": []})
    )
    step = make("registry.disable_tools")
    with pytest.raises(AwsCallError, match="does not say its KMS key") as info:
        step.apply(step.snapshot())
    assert info.value.code == "KeyIdUnknown"
    after = seeded.client("ssm").get_parameter(Name=REGISTRY)["Parameter"]
    assert after["Version"] == before["Version"]  # nothing was written


def test_a_secure_shadow_flag_needs_no_describe_permission(make: MakeStep, seeded: Aws) -> None:
    """The flag is written as a String of its own; reading it never asks for its KMS key."""
    ssm = seeded.client("ssm")
    name = "/agents/refund-agent/mode"
    ssm.put_parameter(Name=name, Value="live", Type="SecureString", Overwrite=True)
    described: list[Any] = []
    on_every_client(seeded, "before-call.ssm.DescribeParameters", lambda **kw: described.append(kw))
    step = make("shadow.flag", {"mode": "shadow"})
    assert step.snapshot().value == "live"
    assert described == []
