"""The embedded sandbox: a local AWS endpoint (moto server) and the example agents' resources.

``agentctl sandbox up`` runs the endpoint on 127.0.0.1; ``agentctl sandbox seed AGENT`` creates
what an agent spec declares (role, tool registry, functions, shadow flag) so every command can be
tried without an AWS account. Needs the ``sandbox`` extra (moto[server]).
"""

from __future__ import annotations

import io
import json
import zipfile
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from agentctl.aws import Aws
from agentctl.errors import AgentctlError
from agentctl.spec.models import AgentSpec

if TYPE_CHECKING:
    from moto.server import ThreadedMotoServer

SANDBOX_ENV = {
    "AWS_ACCESS_KEY_ID": "sandbox",
    "AWS_SECRET_ACCESS_KEY": "sandbox",
    "AWS_SESSION_TOKEN": "sandbox",
    "AWS_REGION": "us-east-1",
    "AWS_DEFAULT_REGION": "us-east-1",
}

TRUST_POLICY = {
    "Version": "2012-10-17",
    "Statement": [
        {
            "Effect": "Allow",
            "Principal": {"Service": "lambda.amazonaws.com"},
            "Action": "sts:AssumeRole",
        }
    ],
}


def start_server(port: int = 0, host: str = "127.0.0.1") -> tuple[ThreadedMotoServer, str]:
    """Start a moto server in a thread; return it and its endpoint URL."""
    try:
        from moto.server import ThreadedMotoServer
    except ImportError as exc:  # pragma: no cover - depends on the install
        raise AgentctlError(
            "the sandbox needs moto: pip install 'agentctl[sandbox]'",
        ) from exc
    import logging

    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # no access log line per request
    server = ThreadedMotoServer(ip_address=host, port=port, verbose=False)
    server.start()
    actual_host, actual_port = server.get_host_and_port()
    return server, f"http://{actual_host}:{actual_port}"


@dataclass
class Seeded:
    agent: str
    created: list[str] = field(default_factory=list)


def _zip() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("handler.py", "def handler(event, context):\n    return {'ok': True}\n")
    return buffer.getvalue()


def seed(aws: Aws, spec: AgentSpec) -> Seeded:
    """Create the resources ``spec`` declares, each only if missing (safe to run twice)."""
    out = Seeded(agent=spec.name)
    iam = aws.client("iam")
    role_name = spec.role_name
    try:
        role_arn = iam.get_role(RoleName=role_name)["Role"]["Arn"]
    except iam.exceptions.NoSuchEntityException:
        role_arn = iam.create_role(
            RoleName=role_name, AssumeRolePolicyDocument=json.dumps(TRUST_POLICY)
        )["Role"]["Arn"]
        iam.put_role_policy(
            RoleName=role_name,
            PolicyName="agent-tools",
            PolicyDocument=json.dumps(
                {
                    "Version": "2012-10-17",
                    "Statement": [
                        {
                            "Effect": "Allow",
                            "Action": sorted(
                                {a for t in spec.tools if t.iam for a in t.iam.actions}
                            )
                            or ["sts:GetCallerIdentity"],
                            "Resource": "*",
                        }
                    ],
                }
            ),
        )
        out.created.append(f"iam role {role_name}")
    ssm = aws.client("ssm")
    if spec.tool_registry is not None:
        out.created += _put_if_missing(
            ssm,
            spec.tool_registry.parameter,
            json.dumps(
                {
                    "tools": {
                        t.name: {"enabled": True, "side_effects": t.side_effects}
                        for t in spec.tools
                    }
                },
                indent=2,
                sort_keys=True,
            ),
        )
    if spec.shadow_flag is not None:
        out.created += _put_if_missing(ssm, spec.shadow_flag.parameter, "live")
    lam = aws.client("lambda")
    for function in spec.functions:
        name = function.rsplit(":", 1)[-1]
        try:
            lam.get_function(FunctionName=name)
        except lam.exceptions.ResourceNotFoundException:
            lam.create_function(
                FunctionName=name,
                Runtime="python3.12",
                Role=role_arn,
                Handler="handler.handler",
                Code={"ZipFile": _zip()},
            )
            out.created.append(f"lambda function {name}")
    events = aws.client("events")
    for runbook in spec.runbooks.values():
        for step in runbook.steps:
            params: dict[str, Any] = step.inputs.get("parameters", {})
            if step.inputs.get("service") == "events" and "Name" in params:
                try:
                    events.describe_rule(Name=params["Name"])
                except events.exceptions.ResourceNotFoundException:
                    events.put_rule(
                        Name=params["Name"], ScheduleExpression="rate(1 day)", State="ENABLED"
                    )
                    out.created.append(f"eventbridge rule {params['Name']}")
    from agentctl.drain.seed import seed_intake

    out.created += seed_intake(aws, spec, role_arn)
    from agentctl.compensate.seed import seed_rollback

    out.created += seed_rollback(aws, spec)
    return out


def _put_if_missing(ssm: Any, name: str, value: str) -> list[str]:
    try:
        ssm.get_parameter(Name=name)
        return []
    except ssm.exceptions.ParameterNotFound:
        ssm.put_parameter(Name=name, Value=value, Type="String")
        return [f"ssm parameter {name}"]
