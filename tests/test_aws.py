"""The one AWS entry point: region precedence and how botocore errors become typed errors."""

from __future__ import annotations

from pathlib import Path

import pytest
from botocore.exceptions import ClientError, CredentialRetrievalError, EndpointConnectionError

from agentctl.aws import Aws, AwsSettings, translate_error
from agentctl.errors import AwsCallError, AwsUnavailableError, ExitCode


def client_error(code: str, message: str = "m") -> ClientError:
    return ClientError(
        {"Error": {"Code": code, "Message": message}, "ResponseMetadata": {"RequestId": "r-1"}},
        "PutRolePolicy",
    )


def test_access_denied_names_the_permission_from_the_message() -> None:
    error = translate_error(
        client_error("AccessDenied", "User: x is not authorized to perform: iam:PutRolePolicy on"),
        "iam:Whatever",
    )
    assert isinstance(error, AwsCallError)
    assert error.message == "AccessDenied: missing permission iam:PutRolePolicy"
    assert error.request_id == "r-1"


@pytest.mark.parametrize(
    "code", ["ExpiredToken", "InvalidClientTokenId", "UnrecognizedClientException"]
)
def test_bad_or_expired_credentials_are_not_a_missing_permission(code: str) -> None:
    error = translate_error(client_error(code), "iam:PutRolePolicy")
    assert isinstance(error, AwsUnavailableError)
    assert error.exit_code is ExitCode.AWS_UNAVAILABLE
    assert error.hint is not None and "aws sso login" in error.hint


def test_credential_process_failure_is_aws_unavailable() -> None:
    error = translate_error(
        CredentialRetrievalError(provider="process", error_msg="exit 1"), "sts:GetCallerIdentity"
    )
    assert isinstance(error, AwsUnavailableError)
    assert "cannot get AWS credentials" in error.message


def test_unreachable_endpoint() -> None:
    error = translate_error(EndpointConnectionError(endpoint_url="http://x:1"), "ssm:GetParameter")
    assert isinstance(error, AwsUnavailableError) and error.message == "cannot reach http://x:1"


def test_throttling_says_rerun() -> None:
    error = translate_error(client_error("ThrottlingException"), "ssm:GetParameter")
    assert isinstance(error, AwsCallError)
    assert "throttled" in error.message and error.hint is not None


def test_region_precedence(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = tmp_path / "config"
    config.write_text("[profile ops]\nregion = eu-west-1\n")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(config))
    monkeypatch.delenv("AWS_DEFAULT_REGION")
    monkeypatch.delenv("AWS_REGION")
    assert Aws(AwsSettings(profile="ops")).region == "eu-west-1"
    monkeypatch.setenv("AWS_REGION", "us-west-2")  # the environment beats the profile
    assert Aws(AwsSettings(profile="ops")).region == "us-west-2"
    assert Aws(AwsSettings(profile="ops", region="ap-south-1")).region == "ap-south-1"


def test_unknown_profile_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AWS_REGION")
    monkeypatch.delenv("AWS_DEFAULT_REGION")
    with pytest.raises(AwsUnavailableError, match="nope"):
        _ = Aws(AwsSettings(profile="nope")).region


def test_no_region_at_all(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AWS_REGION")
    monkeypatch.delenv("AWS_DEFAULT_REGION")
    with pytest.raises(AwsUnavailableError, match="no AWS region"):
        _ = Aws(AwsSettings()).region
