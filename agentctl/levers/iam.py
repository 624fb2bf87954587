"""IAM: an explicit-deny inline policy on the agent's role.

Explicit deny beats every allow, takes effect without a redeploy and deletes nothing: existing
policies are never detached or edited. The policy is agentctl's own (``agentctl-containment`` by
default), one statement per denied tool, so ``contain --tools a`` then ``--tools b`` adds up.
"""

from __future__ import annotations

import hashlib
import json
import re
from typing import Any
from urllib.parse import unquote

from pydantic import Field

from agentctl.errors import BadInputError
from agentctl.levers.base import Inputs, State, Step
from agentctl.levers.registry import register

POLICY_NAME = "agentctl-containment"
REVOKE_SID = "AgentctlRevokeOlderSessions"


class DenyToolsInputs(Inputs):
    tools: list[str] | None = Field(
        default=None, description="Tools to deny; default every tool with `iam` declared."
    )
    revoke_sessions: bool = Field(
        default=False,
        description="Also deny everything to credentials issued before now (aws:TokenIssueTime).",
    )
    policy_name: str = Field(default=POLICY_NAME, pattern=r"^[\w+=,.@-]{1,128}$")
    role: str | None = Field(default=None, description="Role name or ARN; default the spec's.")


class PolicyState(State):
    policy: dict[str, Any] | None = Field(description="The inline policy document, or absent.")


def _sid(tool: str) -> str:
    """A statement id per tool. Names that differ only in separators (``send-email`` and
    ``send_email``) would collide once camel-cased, so a name with ``-`` gets a digest."""
    camel = "".join(p.capitalize() for p in re.split(r"[^A-Za-z0-9]+", tool) if p)
    if "-" in tool:
        camel += "H" + hashlib.sha1(tool.encode()).hexdigest()[:8]
    return "AgentctlDeny" + camel


@register
class DenyTools(Step[DenyToolsInputs, PolicyState]):
    """Attach an explicit-deny inline policy for the tools' IAM actions to the agent's role.

    Undo puts back the inline policy of that name exactly as it was, or removes agentctl's
    policy if there was none. Other policies are never touched.

    IAM: iam:GetRolePolicy, iam:PutRolePolicy, iam:DeleteRolePolicy (undo only).
    """

    kind = "iam.deny_tools"
    Inputs = DenyToolsInputs
    State = PolicyState

    @property
    def role_name(self) -> str:
        role = self.inputs.role or self.ctx.spec.role
        return role.rsplit("/", 1)[-1] if role.startswith("arn:") else role

    @property
    def target(self) -> str:
        return f"iam:role/{self.role_name}/policy/{self.inputs.policy_name}"

    def resolved_inputs(self) -> DenyToolsInputs:
        tools = [t.name for t in self._select() if t.iam is not None]
        return self.inputs.model_copy(update={"role": self.role_name, "tools": tools})

    def _select(self) -> list[Any]:
        try:
            return self.ctx.spec.select_tools(self.inputs.tools)
        except ValueError as exc:
            raise BadInputError(str(exc)) from exc

    def _statements(self) -> list[dict[str, Any]]:
        tools = self._select()
        statements: list[dict[str, Any]] = []
        for tool in tools:
            if tool.iam is None:
                continue
            statements.append(
                {
                    "Sid": _sid(tool.name),
                    "Effect": "Deny",
                    "Action": sorted(tool.iam.actions),
                    "Resource": sorted(tool.iam.resources),
                }
            )
        if self.inputs.revoke_sessions:
            statements.append(
                {
                    "Sid": REVOKE_SID,
                    "Effect": "Deny",
                    "Action": "*",
                    "Resource": "*",
                    "Condition": {
                        "DateLessThan": {
                            "aws:TokenIssueTime": self.ctx.started_at.strftime("%Y-%m-%dT%H:%M:%SZ")
                        }
                    },
                }
            )
        if not statements:
            raise BadInputError(
                "no tool to deny: none of the selected tools declares `iam` actions",
                hint="add `iam: {actions: [...]}` to the tools in the spec",
            )
        return statements

    def snapshot(self) -> PolicyState:
        from agentctl.errors import AwsCallError

        try:
            response = self.call(
                "iam", "GetRolePolicy", RoleName=self.role_name, PolicyName=self.inputs.policy_name
            )
        except AwsCallError as exc:
            # NoSuchEntity: no such policy, or no such role; PutRolePolicy tells them apart
            # (one round trip fewer on the hot path of `contain`).
            if exc.code == "NoSuchEntity":
                return PolicyState(policy=None)
            raise
        document = response["PolicyDocument"]
        if isinstance(document, str):
            document = json.loads(unquote(document))
        return PolicyState(policy=document)

    def _merged(self, before: PolicyState) -> dict[str, Any]:
        wanted = self._statements()
        wanted_sids = {s["Sid"] for s in wanted}
        existing = list((before.policy or {}).get("Statement", []))
        if isinstance(existing, dict):
            existing = [existing]
        kept = [s for s in existing if s.get("Sid") not in wanted_sids]
        return {"Version": "2012-10-17", "Statement": kept + wanted}

    def is_applied(self, state: PolicyState) -> bool:
        if state.policy is None:
            return False
        statements = state.policy.get("Statement", [])
        if isinstance(statements, dict):
            statements = [statements]
        by_sid = {s.get("Sid"): s for s in statements}
        for wanted in self._statements():
            have = by_sid.get(wanted["Sid"])
            if have is None:
                return False
            if wanted["Sid"] == REVOKE_SID:
                continue  # present is enough: the cut-off time is the first containment's
            if _norm(have.get("Action")) != _norm(wanted["Action"]) or _norm(
                have.get("Resource")
            ) != _norm(wanted["Resource"]):
                return False
            if have.get("Effect") != "Deny":
                return False
        return True

    def is_partially_applied(self, state: PolicyState) -> bool:
        if state.policy is None:
            return False
        statements = state.policy.get("Statement", [])
        if isinstance(statements, dict):
            statements = [statements]
        wanted = {s["Sid"] for s in self._statements()}
        return any(s.get("Sid") in wanted and s.get("Effect") == "Deny" for s in statements)

    def describe_change(self, before: PolicyState) -> str:
        denied = [s["Sid"] for s in self._statements()]
        tools = [t.name for t in self._select() if t.iam]
        verb = "add" if before.policy is None else "update"
        text = f"{verb} inline deny policy {self.inputs.policy_name}: deny {', '.join(tools)}"
        if REVOKE_SID in denied:
            text += "; revoke sessions issued before now"
        return text

    def apply(self, before: PolicyState) -> None:
        self._put(self._merged(before))

    def _put(self, document: dict[str, Any]) -> None:
        from agentctl.errors import AwsCallError

        try:
            self.call(
                "iam",
                "PutRolePolicy",
                RoleName=self.role_name,
                PolicyName=self.inputs.policy_name,
                PolicyDocument=json.dumps(document),
            )
        except AwsCallError as exc:
            if exc.code == "NoSuchEntity":
                raise AwsCallError(
                    f"IAM role {self.role_name!r} does not exist",
                    hint="check `role:` in the agent spec",
                    code=exc.code,
                    operation=exc.operation,
                ) from exc
            raise

    def undo(self, before: PolicyState) -> None:
        from agentctl.errors import AwsCallError

        if before.policy is None:
            try:
                self.call(
                    "iam",
                    "DeleteRolePolicy",
                    RoleName=self.role_name,
                    PolicyName=self.inputs.policy_name,
                )
            except AwsCallError as exc:
                if exc.code != "NoSuchEntity":
                    raise
            return
        self._put(before.policy)

    def describe_state(self, state: PolicyState) -> str:
        if state.policy is None:
            return "no deny policy"
        statements = state.policy.get("Statement", [])
        count = len(statements) if isinstance(statements, list) else 1
        return f"deny policy ({count} statement{'s' if count != 1 else ''})"


def _norm(value: Any) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        return [value]
    return sorted(value)
