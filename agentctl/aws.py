"""The one place that builds boto3 sessions and clients.

Nothing else in agentctl calls ``boto3.client``. Clients are created lazily, once per service and
retry budget, and handed to levers; there are no module-level clients (they would escape moto
in tests). Retries for throttling use botocore's standard retry mode, never a hand-written loop.
"""

from __future__ import annotations

import re
import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from agentctl import __version__
from agentctl.errors import AgentctlError, AwsCallError, AwsUnavailableError

if TYPE_CHECKING:
    import botocore.session

ACCESS_DENIED_CODES = frozenset(
    {"AccessDenied", "AccessDeniedException", "UnauthorizedOperation", "AuthorizationError"}
)
# The credentials themselves are bad or expired: no permission would help.
CREDENTIAL_CODES = frozenset(
    {
        "ExpiredToken",
        "ExpiredTokenException",
        "InvalidClientTokenId",
        "UnrecognizedClientException",
        "InvalidAccessKeyId",
        "SignatureDoesNotMatch",
        "RequestExpired",
    }
)
CREDENTIALS_HINT = (
    "refresh your credentials (`aws sso login`, a new session) or pass --profile; "
    "for a local sandbox run `agentctl sandbox up`"
)
THROTTLING_CODES = frozenset(
    {"Throttling", "ThrottlingException", "TooManyRequestsException", "RequestLimitExceeded"}
)


@dataclass(frozen=True)
class AwsSettings:
    """Where and as whom to call AWS. ``None`` means: let the standard chain decide
    (``AWS_PROFILE``, ``AWS_REGION``/``AWS_DEFAULT_REGION``, ``AWS_ENDPOINT_URL``, ...)."""

    profile: str | None = None
    region: str | None = None
    endpoint_url: str | None = None
    max_attempts: int = 5
    connect_timeout: float = 5.0
    read_timeout: float = 30.0


class Aws:
    """Hands out boto3 clients built from one session."""

    def __init__(
        self,
        settings: AwsSettings | None = None,
        session: botocore.session.Session | None = None,
    ):
        self.settings = settings or AwsSettings()
        self._session = session
        self._clients: dict[tuple[str, int], Any] = {}
        self._lock = threading.Lock()

    @property
    def session(self) -> botocore.session.Session:
        """The botocore session. botocore, not boto3: importing boto3 costs ~90 ms of start-up
        (it pulls in s3transfer) and agentctl only needs clients."""
        with self._lock:
            if self._session is None:
                import botocore.session

                try:
                    self._session = botocore.session.Session(profile=self.settings.profile)
                except Exception as exc:
                    raise translate_error(exc, "configuration") from exc
                if self._session is None:  # pragma: no cover - for the type checker
                    raise AwsUnavailableError("cannot create an AWS session")
            return self._session

    @property
    def region(self) -> str:
        import os

        # --region, then AWS_REGION (the other SDKs' variable), then what botocore finds
        # (AWS_DEFAULT_REGION, then the profile).
        region = self.settings.region or os.environ.get("AWS_REGION")
        if not region:
            try:
                region = self.session.get_config_variable("region")
            except Exception as exc:  # ProfileNotFound and friends
                raise translate_error(exc, "configuration") from exc
        if not region:
            raise AwsUnavailableError(
                "no AWS region configured",
                hint="pass --region, or set AWS_REGION (or a region in your AWS profile)",
            )
        return region

    def client(self, service: str, *, retries: int | None = None) -> Any:
        """A client for ``service``; ``retries`` overrides the retry budget for throttling."""
        attempts = (retries + 1) if retries is not None else self.settings.max_attempts
        key = (service, attempts)
        client = self._clients.get(key)
        if client is not None:
            return client
        from botocore.config import Config

        session = self.session
        region = self.region
        with self._lock:
            client = self._clients.get(key)
            if client is None:
                config = Config(
                    retries={"mode": "standard", "max_attempts": attempts},
                    connect_timeout=self.settings.connect_timeout,
                    read_timeout=self.settings.read_timeout,
                    user_agent_extra=f"agentctl/{__version__}",
                )
                client = session.create_client(
                    service,
                    region_name=region,
                    endpoint_url=self.settings.endpoint_url,
                    config=config,
                )
                self._clients[key] = client
        return client

    def caller_arn(self) -> str:
        """The ARN of the identity making the calls (STS GetCallerIdentity)."""
        try:
            return str(self.client("sts").get_caller_identity()["Arn"])
        except Exception as exc:  # translated: callers get a typed error
            raise translate_error(exc, "sts:GetCallerIdentity") from exc


_NOT_AUTHORIZED = re.compile(r"not authorized to perform:?\s*([a-z0-9-]+:[A-Za-z0-9]+)")


def iam_action_for(client: Any, operation: str) -> str:
    """The IAM action a call needs, e.g. ``iam:PutRolePolicy`` (signing name + operation)."""
    prefix = client.meta.service_model.signing_name
    prefix = {"events": "events", "scheduler": "scheduler"}.get(prefix, prefix)
    return f"{prefix}:{operation}"


def translate_error(exc: BaseException, action: str) -> AgentctlError:
    """Turn a botocore exception into a typed agentctl error with a hint.

    ``action`` is the IAM action of the failed call (``service:Operation``).
    """
    if isinstance(exc, AgentctlError):
        return exc
    from botocore.exceptions import (
        ClientError,
        ConnectTimeoutError,
        CredentialRetrievalError,
        EndpointConnectionError,
        NoCredentialsError,
        NoRegionError,
        PartialCredentialsError,
        ProfileNotFound,
        ReadTimeoutError,
        SSOError,
        TokenRetrievalError,
    )

    if isinstance(exc, NoCredentialsError | PartialCredentialsError):
        return AwsUnavailableError(
            "no AWS credentials found",
            hint="set AWS_PROFILE or pass --profile (or run `aws sso login`); "
            "for a local sandbox run `agentctl sandbox up`",
        )
    if isinstance(exc, CredentialRetrievalError | SSOError | TokenRetrievalError):
        return AwsUnavailableError(f"cannot get AWS credentials: {exc}", hint=CREDENTIALS_HINT)
    if isinstance(exc, ProfileNotFound):
        return AwsUnavailableError(str(exc), hint="check --profile / AWS_PROFILE")
    if isinstance(exc, NoRegionError):
        return AwsUnavailableError(
            "no AWS region configured", hint="pass --region or set AWS_REGION"
        )
    if isinstance(exc, EndpointConnectionError | ConnectTimeoutError):
        url = getattr(exc, "kwargs", {}).get("endpoint_url", "the endpoint")
        return AwsUnavailableError(
            f"cannot reach {url}",
            hint="check the network, --endpoint-url / AWS_ENDPOINT_URL, or start the sandbox",
        )
    if isinstance(exc, ReadTimeoutError):
        return AwsCallError(
            f"{action}: timed out waiting for AWS", code="Timeout", operation=action
        )
    if isinstance(exc, ClientError):
        err = exc.response.get("Error", {})
        code = str(err.get("Code", "Unknown"))
        message = str(err.get("Message", "")).strip()
        request_id = exc.response.get("ResponseMetadata", {}).get("RequestId")
        if code in CREDENTIAL_CODES:
            return AwsUnavailableError(
                f"AWS rejected the credentials ({code}): {message}", hint=CREDENTIALS_HINT
            )
        if code in ACCESS_DENIED_CODES:
            found = _NOT_AUTHORIZED.search(message)
            needed = found.group(1) if found else action
            return AwsCallError(
                f"AccessDenied: missing permission {needed}",
                hint=f"grant {needed} to the identity running agentctl",
                code=code,
                operation=action,
                request_id=request_id,
            )
        if code in THROTTLING_CODES:
            return AwsCallError(
                f"{action}: throttled by AWS after retries ({code})",
                hint="re-run the command; it continues where it stopped",
                code=code,
                operation=action,
                request_id=request_id,
            )
        return AwsCallError(
            f"{action}: {code}: {message}" if message else f"{action}: {code}",
            code=code,
            operation=action,
            request_id=request_id,
        )
    return AwsCallError(f"{action}: {type(exc).__name__}: {exc}", operation=action)


def request_id(response: dict[str, Any]) -> str | None:
    """The AWS request id of a boto3 response, for the journal."""
    meta = response.get("ResponseMetadata") or {}
    value = meta.get("RequestId")
    return str(value) if value else None
