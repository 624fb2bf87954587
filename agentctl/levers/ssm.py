"""SSM Parameter Store: the tool registry document and the shadow-mode flag.

The tool registry is a JSON document ``{"tools": {"<name>": {"enabled": bool, ...}}}`` that the
agent (through ``agentctl.sdk``) reads before each tool call. Only the ``enabled`` field of the
selected entries changes; every other entry and field is left as it was.

SSM has no compare-and-set. A concurrent edit is detected through the parameter version: a
write that lands at ``read_version + 1`` had no writer in between; otherwise the interleaved
version is read from the parameter history and our change is re-applied on top of it, so the
other writer's edit is kept, not clobbered.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any, Literal

from pydantic import Field

from agentctl.errors import AwsCallError, BadInputError, ConflictError
from agentctl.levers.base import Inputs, State, Step
from agentctl.levers.registry import register

MAX_CONFLICT_RETRIES = 3


class RegistryInputs(Inputs):
    tools: list[str] | None = Field(default=None, description="Tools to disable; default all.")
    parameter: str | None = Field(default=None, description="Default: the spec's tool_registry.")


class RegistryState(State):
    exists: bool = True
    version: int = 0
    enabled: dict[str, bool | None] = Field(
        default_factory=dict, description="Selected tools: enabled flag, or null when absent."
    )
    implicit: list[str] = Field(
        default_factory=list, description="Entries enabled by default (no `enabled` key)."
    )


# (value, version, type, KMS key id of a SecureString): what a write must carry over
LastRead = tuple[str | None, int, str, str | None]


class _Parameter:
    """Read-modify-write of one SSM parameter with interleaved-write detection."""

    def __init__(self, step: Step[Any, Any], name: str, last_read: LastRead | None = None) -> None:
        self.step = step
        self.name = name
        self.last_read = last_read

    def read(self, *, with_key: bool = True) -> LastRead:
        """(value, version, type, KMS key id); ``with_key=False`` for a reader that never
        writes the value back (the shadow flag writes its own ``String``)."""
        try:
            response = self.step.call("ssm", "GetParameter", Name=self.name, WithDecryption=True)
        except AwsCallError as exc:
            if exc.code == "ParameterNotFound":
                return None, 0, "String", None
            raise
        param = response["Parameter"]
        type_ = param.get("Type", "String")
        key_id = self._key_id() if type_ == "SecureString" and with_key else None
        self.last_read = (param["Value"], int(param["Version"]), type_, key_id)
        return self.last_read

    def _key_id(self) -> str | None:
        """The KMS key of a SecureString. GetParameter does not say, and a PutParameter without
        ``KeyId`` re-encrypts the value under the account's default ``aws/ssm`` key: containment
        must not silently move a registry off its customer-managed key."""
        args: dict[str, Any] = {
            "ParameterFilters": [{"Key": "Name", "Option": "Equals", "Values": [self.name]}]
        }
        while True:  # best-effort paging: a page may be empty and still carry a NextToken
            response = self.step.call("ssm", "DescribeParameters", **args)
            for found in response.get("Parameters") or []:
                if found.get("Name") == self.name and found.get("KeyId"):
                    return str(found["KeyId"])
            token = response.get("NextToken")
            if not token:
                break
            args["NextToken"] = token
        raise AwsCallError(
            f"SSM parameter {self.name} is a SecureString but DescribeParameters does not say "
            "its KMS key: not writing it (a write without the key re-encrypts it under aws/ssm)",
            hint="check ssm:DescribeParameters on the parameter, and that it still exists",
            code="KeyIdUnknown",
        )

    def value_at(self, version: int) -> str:
        paginator_args: dict[str, Any] = {"Name": self.name, "WithDecryption": True}
        while True:
            page = self.step.call("ssm", "GetParameterHistory", **paginator_args)
            for item in page.get("Parameters", []):
                if int(item["Version"]) == version:
                    return str(item["Value"])
            token = page.get("NextToken")
            if not token:
                raise ConflictError(f"SSM parameter {self.name}: version {version} not in history")
            paginator_args["NextToken"] = token

    def update(self, modify: Callable[[str | None], str]) -> None:
        """Write ``modify(current)``; if another writer slipped in, re-apply on top of theirs.

        Starts from the last read (the plan's snapshot) when there is one: a write in between
        is caught by the version check like any other interleaved write.
        """
        value, version, type_, key_id = self.last_read or self.read()
        current = value  # what the parameter holds now, as far as we know
        keep_key = {"KeyId": key_id} if key_id else {}
        for _ in range(MAX_CONFLICT_RETRIES):
            new_value = modify(value)
            if new_value == current:
                return
            response = self.step.call(
                "ssm",
                "PutParameter",
                Name=self.name,
                Value=new_value,
                Type=type_,
                Overwrite=True,
                **keep_key,
            )
            written = int(response["Version"])
            if written == version + 1:
                return
            # Versions version+1 .. written-1 came from another writer after our read, and our
            # put replaced the newest of them: rebuild our change on top of that value.
            value, version, current = self.value_at(written - 1), written, new_value
        raise ConflictError(
            f"SSM parameter {self.name} keeps changing under us",
            hint="another process is writing it; re-run when it settles",
        )


def _as_bool(value: Any) -> bool:
    """``enabled`` as the agent would read it: JSON booleans, and the usual strings."""
    if isinstance(value, str):
        return value.strip().lower() not in ("false", "0", "no", "off", "")
    return bool(value)


def _load_registry(name: str, raw: str | None) -> dict[str, Any]:
    if raw is None:
        return {"tools": {}}
    try:
        doc = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise BadInputError(f"tool registry {name} is not JSON: {exc.msg}") from exc
    if not isinstance(doc, dict) or not isinstance(doc.get("tools", {}), dict):
        raise BadInputError(f'tool registry {name} must be {{"tools": {{name: {{...}}}}}}')
    doc.setdefault("tools", {})
    return doc


@register
class DisableTools(Step[RegistryInputs, RegistryState]):
    """Set ``enabled: false`` on the selected entries of the tool-registry document.

    Undo puts back each selected entry's ``enabled`` exactly (removing entries that were absent).
    Other entries are never touched; interleaved writers are detected by parameter version.

    IAM: ssm:GetParameter, ssm:PutParameter, ssm:GetParameterHistory; for a SecureString also
    ssm:DescribeParameters (its KMS key is written back with the value) and kms:Decrypt/Encrypt.
    """

    kind = "registry.disable_tools"
    Inputs = RegistryInputs
    State = RegistryState

    @property
    def parameter(self) -> str:
        if self.inputs.parameter:
            return self.inputs.parameter
        if self.ctx.spec.tool_registry is None:
            raise BadInputError(f"{self.ctx.spec.name} declares no tool_registry")
        return self.ctx.spec.tool_registry.parameter

    @property
    def target(self) -> str:
        return f"ssm:{self.parameter}"

    def _tools(self) -> list[str]:
        if getattr(self, "_scoped", False) and self.inputs.tools is not None:
            return list(self.inputs.tools)  # an undo: exactly the entries that were changed
        try:
            return [t.name for t in self.ctx.spec.select_tools(self.inputs.tools)]
        except ValueError as exc:
            raise BadInputError(str(exc)) from exc

    def resolved_inputs(self) -> RegistryInputs:
        return self.inputs.model_copy(update={"parameter": self.parameter, "tools": self._tools()})

    def scope_to(self, before: RegistryState) -> None:
        """Undo exactly the entries recorded, even if the spec's tool list changed since."""
        self.inputs = self.inputs.model_copy(update={"tools": sorted(before.enabled)})
        self._scoped = True

    def snapshot(self) -> RegistryState:
        param = _Parameter(self, self.parameter)
        raw, version, _, _ = param.read()
        self._last_read = param.last_read
        if raw is None:
            raise AwsCallError(
                f"tool registry parameter {self.parameter} does not exist",
                hint="check `tool_registry.parameter` in the spec",
                code="ParameterNotFound",
            )
        doc = _load_registry(self.parameter, raw)
        enabled: dict[str, bool | None] = {}
        implicit: list[str] = []
        for tool in self._tools():
            entry = doc["tools"].get(tool)
            if not isinstance(entry, dict):
                enabled[tool] = None
                continue
            if "enabled" not in entry:
                implicit.append(tool)  # enabled by default; undo removes the key again
            enabled[tool] = _as_bool(entry.get("enabled", True))
        return RegistryState(exists=True, version=version, enabled=enabled, implicit=implicit)

    def is_applied(self, state: RegistryState) -> bool:
        return all(state.enabled.get(t) is False for t in self._tools())

    def is_partially_applied(self, state: RegistryState) -> bool:
        return any(state.enabled.get(t) is False for t in self._tools())

    def merge_before(self, befores: list[RegistryState]) -> RegistryState:
        """Per tool, the oldest recorded value: a later, wider contain saw earlier ones off."""
        enabled: dict[str, bool | None] = {}
        implicit: set[str] = set()
        for state in reversed(befores):
            enabled.update(state.enabled)
            implicit = (implicit - set(state.enabled)) | set(state.implicit)
        return befores[0].model_copy(update={"enabled": enabled, "implicit": sorted(implicit)})

    def is_restored(self, state: RegistryState, before: RegistryState) -> bool:
        return state.enabled == before.enabled and set(state.implicit) == set(before.implicit)

    def describe_change(self, before: RegistryState) -> str:
        to_disable = [t for t in self._tools() if before.enabled.get(t) is not False]
        return f"disable {', '.join(to_disable)} in {self.parameter}"

    def describe_state(self, state: RegistryState) -> str:
        on = sum(1 for v in state.enabled.values() if v is not False)
        return f"{on}/{len(state.enabled)} enabled"

    def apply(self, before: RegistryState) -> None:
        tools = self._tools()

        def modify(raw: str | None) -> str:
            doc = _load_registry(self.parameter, raw)
            for tool in tools:
                entry = doc["tools"].get(tool)
                if not isinstance(entry, dict):
                    entry = {}
                doc["tools"][tool] = {**entry, "enabled": False}
            return _dump(doc, raw)

        _Parameter(self, self.parameter, self._take_last_read()).update(modify)

    def _take_last_read(self) -> LastRead | None:
        last, self._last_read = getattr(self, "_last_read", None), None
        return last

    def undo(self, before: RegistryState) -> None:
        def modify(raw: str | None) -> str:
            doc = _load_registry(self.parameter, raw)
            for tool, was in before.enabled.items():
                if was is None:
                    doc["tools"].pop(tool, None)
                elif tool in before.implicit and isinstance(doc["tools"].get(tool), dict):
                    doc["tools"][tool].pop("enabled", None)
                else:
                    entry = doc["tools"].get(tool)
                    doc["tools"][tool] = {
                        **(entry if isinstance(entry, dict) else {}),
                        "enabled": was,
                    }
            return _dump(doc, raw)

        _Parameter(self, self.parameter, self._take_last_read()).update(modify)


def _dump(doc: dict[str, Any], previous: str | None) -> str:
    """Serialise; return ``previous`` unchanged when the content is the same (no new version)."""
    if previous is not None:
        try:
            if json.loads(previous) == doc:
                return previous
        except json.JSONDecodeError:
            pass
    return json.dumps(doc, indent=2, sort_keys=True)


class ShadowInputs(Inputs):
    mode: Literal["live", "shadow"] = "shadow"
    parameter: str | None = Field(default=None, description="Default: the spec's shadow_flag.")


class FlagState(State):
    value: str | None = Field(description="The flag's value, or null when the parameter is absent.")


@register
class ShadowMode(Step[ShadowInputs, FlagState]):
    """Set the agent's shadow flag (an SSM String parameter) to ``shadow`` or ``live``.

    Undo writes back the previous value; if the parameter did not exist before, undo removes
    the parameter agentctl created (nothing else is ever deleted).

    IAM: ssm:GetParameter, ssm:PutParameter, ssm:DeleteParameter (undo of a created flag).
    """

    kind = "shadow.flag"
    Inputs = ShadowInputs
    State = FlagState

    @property
    def reversible(self) -> bool:  # type: ignore[override]
        """Going back to ``live`` is itself a restore: ``resume`` never undoes it."""
        return self.inputs.mode == "shadow"

    def resolved_inputs(self) -> ShadowInputs:
        return self.inputs.model_copy(update={"parameter": self.parameter})

    @property
    def parameter(self) -> str:
        if self.inputs.parameter:
            return self.inputs.parameter
        if self.ctx.spec.shadow_flag is None:
            raise BadInputError(
                f"{self.ctx.spec.name} declares no shadow_flag",
                hint="add `shadow_flag: {parameter: /agents/<name>/mode}` to the spec",
            )
        return self.ctx.spec.shadow_flag.parameter

    @property
    def target(self) -> str:
        return f"ssm:{self.parameter}"

    def snapshot(self) -> FlagState:
        raw, _, _, _ = _Parameter(self, self.parameter).read(with_key=False)
        return FlagState(value=raw)

    def is_applied(self, state: FlagState) -> bool:
        return state.value == self.inputs.mode

    def describe_change(self, before: FlagState) -> str:
        return f"set {self.parameter} {before.value or '(absent)'} → {self.inputs.mode}"

    def describe_state(self, state: FlagState) -> str:
        return state.value or "(absent)"

    def apply(self, before: FlagState) -> None:
        self.call(
            "ssm",
            "PutParameter",
            Name=self.parameter,
            Value=self.inputs.mode,
            Type="String",
            Overwrite=True,
        )

    def undo(self, before: FlagState) -> None:
        if before.value is None:
            try:
                self.call("ssm", "DeleteParameter", Name=self.parameter)
            except AwsCallError as exc:
                if exc.code != "ParameterNotFound":
                    raise
            return
        current, _, _, _ = _Parameter(self, self.parameter).read(with_key=False)
        if current != before.value:
            self.call(
                "ssm",
                "PutParameter",
                Name=self.parameter,
                Value=before.value,
                Type="String",
                Overwrite=True,
            )
