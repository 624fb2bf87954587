"""Find, load and validate agent specs, reporting every problem with file, line and field."""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterable
from pathlib import Path

from pydantic import ValidationError

from agentctl.errors import SpecError, SpecProblem, UnknownAgentError
from agentctl.spec.models import NAME_PATTERN, AgentSpec
from agentctl.spec.yamlsrc import Located, YamlSyntaxError, load_located

DEFAULT_RUNBOOKS_DIR = "runbooks"
ENV_RUNBOOKS = "AGENTCTL_RUNBOOKS"


def runbooks_dir(explicit: str | Path | None = None) -> Path:
    """``--runbooks-dir``, else ``$AGENTCTL_RUNBOOKS``, else ``./runbooks``."""
    return Path(explicit or os.environ.get(ENV_RUNBOOKS) or DEFAULT_RUNBOOKS_DIR)


def find_spec(agent: str, directory: str | Path | None = None) -> Path:
    base = runbooks_dir(directory)
    if not re.fullmatch(NAME_PATTERN, agent):
        # never a path: the name may come from a record an agent wrote (`trace` looks up the
        # spec of the agent a record names), so "../x" must not reach the file system
        raise UnknownAgentError(
            f"unknown agent {agent!r}: not an agent name",
            hint="agent names are lower-case letters, digits, '-' and '_' (as in the spec's name)",
        )
    for suffix in (".yaml", ".yml"):
        candidate = base / f"{agent}{suffix}"
        if candidate.is_file():
            return candidate
    known = sorted(p.stem for p in base.glob("*.y*ml")) if base.is_dir() else []
    hint = (
        f"known agents in {base}: {', '.join(known)}"
        if known
        else f"no runbooks in {base}; pass --runbooks-dir or set {ENV_RUNBOOKS}"
    )
    raise UnknownAgentError(f"unknown agent {agent!r}: no {base / (agent + '.yaml')}", hint=hint)


def load_agent(agent: str, directory: str | Path | None = None) -> AgentSpec:
    """Load ``<runbooks>/<agent>.yaml``; the file's ``name`` must match."""
    path = find_spec(agent, directory)
    spec = load_spec(path)
    if spec.name != agent:
        raise SpecError(
            str(path),
            [SpecProblem(str(path), None, "name", f"is {spec.name!r}, expected {agent!r}")],
        )
    return spec


def load_spec(path: str | Path) -> AgentSpec:
    """Load and validate one spec file. Raises :class:`SpecError` listing every problem."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError as exc:
        raise SpecError(str(path), [SpecProblem(str(path), None, "", "file not found")]) from exc
    except (OSError, UnicodeDecodeError) as exc:
        raise SpecError(str(path), [SpecProblem(str(path), None, "", str(exc))]) from exc
    return parse_spec(text, str(path))


def parse_spec(text: str, source: str = "<spec>") -> AgentSpec:
    try:
        located = load_located(text)
    except YamlSyntaxError as exc:
        raise SpecError(source, [SpecProblem(source, exc.line, "", str(exc))]) from exc
    problems = [
        SpecProblem(source, line, _field(path), "duplicate key")
        for path, line in located.duplicates
    ]
    if not isinstance(located.data, dict):
        kind = "empty" if located.data is None else type(located.data).__name__
        problems.append(
            SpecProblem(source, located.line_for(()), "", f"expected a mapping, got {kind}")
        )
        raise SpecError(source, problems)
    try:
        spec = AgentSpec.model_validate(located.data)
    except ValidationError as exc:
        problems.extend(_problems(exc, located, source))
        raise SpecError(source, problems) from exc
    problems.extend(_step_problems(spec, located, source))
    if problems:
        raise SpecError(source, problems)
    return spec


def _step_problems(spec: AgentSpec, located: Located, source: str) -> Iterable[SpecProblem]:
    """Validate each step's ``action`` and ``inputs`` against the step kind's input model."""
    from agentctl.levers import registry

    for phase, runbook in spec.runbooks.items():
        for index, step in enumerate(runbook.steps):
            base: tuple[str | int, ...] = ("runbooks", phase.value, "steps", index)
            kind = registry.get(step.action)
            if kind is None:
                yield SpecProblem(
                    source,
                    located.line_for((*base, "action")),
                    _field((*base, "action")),
                    f"unknown action {step.action!r}; known: {', '.join(registry.kinds())}",
                )
                continue
            try:
                kind.Inputs.model_validate(step.inputs)
            except ValidationError as exc:
                yield from _problems(exc, located, source, prefix=(*base, "inputs"))


def _problems(
    exc: ValidationError, located: Located, source: str, prefix: tuple[str | int, ...] = ()
) -> list[SpecProblem]:
    out = []
    for err in exc.errors(include_url=False):
        loc = (*prefix, *(p for p in err["loc"] if not _is_model_tag(p)))
        message = err["msg"]
        if err["type"] == "extra_forbidden":
            message = "unknown key"
        elif err["type"] == "missing":
            message = "required field is missing"
        elif "input" in err and err["type"] not in ("value_error", "assertion_error"):
            message = f"{message} (got {_short(err['input'])})"
        out.append(SpecProblem(source, located.line_for(loc), _field(loc), message))
    return out


def _is_model_tag(part: object) -> bool:
    # pydantic puts union member / function names in loc, e.g. 'function-after[...]'
    return isinstance(part, str) and ("[" in part or part.startswith("function-"))


def _short(value: object) -> str:
    text = json.dumps(value, default=str)
    return text if len(text) <= 40 else text[:37] + "..."


def _field(path: tuple[str | int, ...]) -> str:
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out


def json_schema() -> dict[str, object]:
    """The JSON Schema of the agent spec, for editors (yaml-language-server)."""
    schema = AgentSpec.model_json_schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["$id"] = "https://agentctl.dev/schema/agent-spec-v1.json"
    schema["title"] = "agentctl agent spec"
    return schema
