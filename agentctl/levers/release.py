"""The release pointer: where the agent reads which release to run. Rollback moves it back.

Two places, declared in the spec's ``release``:

- an SSM parameter holding the release document (JSON: ``release_id``, ``model``, digests);
  each write is a new parameter version, labelled ``rel-...`` so the history says which
  version carried which release;
- a Lambda alias pointing at the function version that embodies the release.

The step is journaled like every lever (intent with the before-state, applied, verified by
reading back). It is **not** undone by ``resume``: lifting containment must not put the bad
release back. To go forward again, ``agentctl rollback --to ID`` moves the pointer to any
recorded release; :meth:`ReleasePointerStep.undo` restores a captured before-state exactly.
"""

from __future__ import annotations

import json
from typing import Any

from pydantic import Field

from agentctl.errors import AwsCallError, BadInputError
from agentctl.levers.base import Inputs, State, Step
from agentctl.levers.registry import register


class PointerInputs(Inputs):
    release_id: str = Field(description="The release to point at.")
    document: dict[str, Any] = Field(
        default_factory=dict, description="The release document written to an SSM pointer."
    )
    function_version: str | None = Field(
        default=None, description="For a Lambda alias pointer: the version to point at."
    )
    parameter: str | None = Field(default=None, description="Default: the spec's release.")
    function: str | None = None
    alias: str | None = None


class PointerState(State):
    exists: bool = True
    release_id: str | None = None
    value: str | None = None  # SSM: the raw parameter value
    version: int | None = None  # SSM parameter version
    function_version: str | None = None  # Lambda alias target


@register
class ReleasePointerStep(Step[PointerInputs, PointerState]):
    """Point the agent at a release. Undo restores the captured value / alias version.

    IAM (SSM): ssm:GetParameter, ssm:PutParameter, ssm:LabelParameterVersion.
    IAM (Lambda alias): lambda:GetAlias, lambda:UpdateAlias.
    """

    kind = "release.pointer"
    Inputs = PointerInputs
    State = PointerState
    reversible = False  # see the module docstring: `resume` must not restore a bad release

    def _where(self) -> tuple[str | None, str | None, str | None]:
        i = self.inputs
        if i.parameter or (i.function and i.alias):
            return i.parameter, i.function, i.alias
        pointer = self.ctx.spec.release
        if pointer is None:
            raise BadInputError(
                f"{self.ctx.spec.name} declares no release pointer",
                hint="add `release: {parameter: /agents/<name>/release}` (or function + alias)",
            )
        return pointer.parameter, pointer.function, pointer.alias

    @property
    def target(self) -> str:
        parameter, function, alias = self._where()
        return f"ssm:{parameter}" if parameter else f"lambda:{function}:{alias}"

    def snapshot(self) -> PointerState:
        parameter, function, alias = self._where()
        if parameter:
            try:
                param = self.call("ssm", "GetParameter", Name=parameter)["Parameter"]
            except AwsCallError as exc:
                if exc.code == "ParameterNotFound":
                    return PointerState(exists=False)
                raise
            value = str(param["Value"])
            return PointerState(
                value=value, release_id=release_of(value), version=int(param["Version"])
            )
        try:
            got = self.call("lambda", "GetAlias", FunctionName=function, Name=alias)
        except AwsCallError as exc:
            if exc.code == "ResourceNotFoundException":
                return PointerState(exists=False)
            raise
        return PointerState(function_version=str(got["FunctionVersion"]))

    def is_applied(self, state: PointerState) -> bool:
        if self._where()[0]:
            return state.release_id == self.inputs.release_id
        return state.exists and state.function_version == self._version()

    def _version(self) -> str:
        if not self.inputs.function_version:
            raise BadInputError(
                f"release {self.inputs.release_id} has no Lambda function version",
                hint="record it with `agentctl releases record ... --function-version N`",
            )
        return self.inputs.function_version

    def describe_state(self, state: PointerState) -> str:
        if not state.exists:
            return "(absent)"
        if self._where()[0]:
            return f"{state.release_id or 'unknown release'} (v{state.version})"
        return f"version {state.function_version}"

    def describe_change(self, before: PointerState) -> str:
        if self._where()[0]:
            return f"release {before.release_id or '(none)'} → {self.inputs.release_id}"
        return (
            f"alias → version {self._version()} ({self.inputs.release_id}), "
            f"was {before.function_version}"
        )

    def apply(self, before: PointerState) -> None:
        parameter, function, alias = self._where()
        if parameter:
            value = json.dumps(self.inputs.document, sort_keys=True)
            self._put(parameter, value, label=self.inputs.release_id)
        else:
            if not before.exists:
                raise BadInputError(f"Lambda alias {function}:{alias} does not exist")
            self.call(
                "lambda",
                "UpdateAlias",
                FunctionName=function,
                Name=alias,
                FunctionVersion=self._version(),
            )

    def undo(self, before: PointerState) -> None:
        parameter, function, alias = self._where()
        if parameter:
            if not before.exists or before.value is None:
                raise BadInputError(
                    f"{parameter} did not exist before: agentctl does not delete it",
                    hint="point it at a recorded release with `agentctl rollback --to ID`",
                )
            self._put(parameter, before.value, label=before.release_id)
        else:
            self.call(
                "lambda",
                "UpdateAlias",
                FunctionName=function,
                Name=alias,
                FunctionVersion=before.function_version,
            )

    def is_restored(self, state: PointerState, before: PointerState) -> bool:
        if self._where()[0]:
            return state.value == before.value
        return state.function_version == before.function_version

    def _put(self, name: str, value: str, *, label: str | None) -> None:
        written = self.call(
            "ssm", "PutParameter", Name=name, Value=value, Type="String", Overwrite=True
        )
        if label and label.startswith("rel-"):
            # Labels say which parameter version carried which release (history at a glance).
            self.call(
                "ssm",
                "LabelParameterVersion",
                Name=name,
                ParameterVersion=int(written["Version"]),
                Labels=[label],
            )


def release_of(value: str) -> str | None:
    """The release id in a pointer value (JSON document, or a bare id)."""
    try:
        doc = json.loads(value)
    except json.JSONDecodeError:
        return value.strip() or None
    if isinstance(doc, dict) and isinstance(doc.get("release_id"), str):
        return str(doc["release_id"])
    return None
