"""Effects derived from the agent spec, for action records that carry none of their own.

No standard says which records a tool call changed. agentctl's SDK writes ``effects`` on every
action; an agent that emits only OpenTelemetry GenAI spans, or records written before the agent
declared effects, has none. For those, a tool in the spec may declare extractors
(``tools[].effects``, :class:`agentctl.spec.models.EffectExtractor`): each names the system,
resource type, operation and reversibility, and dotted paths into the record's ``args`` /
``result`` for the resource id, the idempotency key and the details.

Rules (what readers of action records apply, so ``agentctl actions``, ``agentctl trace`` and
rollback see the same thing):

- only ``executed`` actions get derived effects: refused and shadowed calls changed nothing, and
  a ``failed`` call's effects are unknown (claiming one from its arguments could make rollback
  reverse something that never happened);
- a record that lists effects of its own is left exactly as it is;
- each derived effect carries ``"derived": true`` (recorded ones have no such key), and its
  ``idempotency_key`` defaults to the action's;
- a path is followed through objects (and list indexes written as digits), nothing else: values
  from the agent are data, never evaluated, never rendered as a template;
- a resource id (or declared idempotency key) that is missing, null, or not a string/number
  yields no effect for that extractor; a missing detail is left out of ``details``. Every such
  miss is counted in :class:`ExtractStats` (by tool, field, path and reason, with the first few
  action ids), never silently dropped and never an error.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from agentctl.spec.models import AgentSpec, EffectExtractor
    from agentctl.trace.records import ActionRecord, Effect  # pydantic: imported on first use

DERIVED_FROM = frozenset({"executed"})
MAX_EXAMPLES = 5
_ABSENT = object()


@dataclass(frozen=True)
class Miss:
    """One value an extractor could not read from one action."""

    tool: str
    field: str  # resource_id | idempotency_key | details.<name>
    path: str
    reason: str  # missing (absent or null) | not_scalar (an object, a list or a boolean)
    action_id: str

    def to_dict(self) -> dict[str, str]:
        return {
            "tool": self.tool,
            "field": self.field,
            "path": self.path,
            "reason": self.reason,
            "action_id": self.action_id,
        }


@dataclass
class ExtractStats:
    """What extraction did over one read."""

    candidates: int = 0  # executed actions of tools with extractors that listed no effects
    derived_actions: int = 0  # ... of which got at least one derived effect
    effects: int = 0  # derived effects in total
    missing: Counter[tuple[str, str, str, str]] = field(default_factory=Counter)
    examples: list[Miss] = field(default_factory=list)

    @property
    def missing_total(self) -> int:
        return sum(self.missing.values())

    def add_miss(self, miss: Miss) -> None:
        self.missing[(miss.tool, miss.field, miss.path, miss.reason)] += 1
        if len(self.examples) < MAX_EXAMPLES:
            self.examples.append(miss)

    def to_dict(self) -> dict[str, Any]:
        return {
            "candidates": self.candidates,
            "derived_actions": self.derived_actions,
            "effects": self.effects,
            "missing": self.missing_total,
            "missing_by_path": [
                {"tool": t, "field": f, "path": p, "reason": r, "count": n}
                for (t, f, p, r), n in sorted(self.missing.items())
            ],
            "examples": [m.to_dict() for m in self.examples],
        }


def lookup(args: Mapping[str, Any], result: Any, path: str) -> Any:
    """The value at ``path`` (``args.x.y`` / ``result`` / ``result.x.0``), or ``_ABSENT``."""
    head, _, rest = path.partition(".")
    current: Any = args if head == "args" else result
    for part in rest.split(".") if rest else ():
        if isinstance(current, Mapping) and part in current:
            current = current[part]
        elif isinstance(current, list) and part.isdigit() and int(part) < len(current):
            current = current[int(part)]
        else:
            return _ABSENT
    return current


def _identifier(value: Any) -> str | None:
    """A resource id or key as text; None for what cannot be one (objects, lists, booleans)."""
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        return None
    if isinstance(value, str) and not value.strip():
        return None  # an empty id names nothing: a compensation must never be sent for it
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def derive(
    action: ActionRecord, extractors: Sequence[EffectExtractor], stats: ExtractStats
) -> list[Effect]:
    """The effects ``extractors`` read from ``action`` (no eligibility check: see :func:`apply`)."""
    from agentctl.trace.records import Effect

    out: list[Effect] = []
    for ex in extractors:
        fields: dict[str, Any] = {}
        ok = True
        for name, path in (
            ("resource_id", ex.resource_id),
            ("idempotency_key", ex.idempotency_key),
        ):
            if path is None:
                continue
            raw = lookup(action.args, action.result, path)
            value = None if raw is _ABSENT else _identifier(raw)
            if value is None:
                blank = isinstance(raw, str)  # "" or whitespace: as good as absent
                reason = "missing" if raw is _ABSENT or raw is None or blank else "not_scalar"
                stats.add_miss(Miss(action.tool, name, path, reason, action.action_id))
                ok = False
            fields[name] = value
        if not ok:
            continue
        details: dict[str, Any] = {}
        for name, path in ex.details.items():
            raw = lookup(action.args, action.result, path)
            if raw is _ABSENT or raw is None:
                stats.add_miss(
                    Miss(action.tool, f"details.{name}", path, "missing", action.action_id)
                )
            else:
                details[name] = raw
        out.append(
            Effect.model_validate(
                {
                    "system": ex.system,
                    "resource_type": ex.resource_type,
                    "resource_id": fields["resource_id"],
                    "operation": ex.operation,
                    "reversible": ex.reversible,
                    "idempotency_key": fields.get("idempotency_key") or action.idempotency_key,
                    "details": details,
                    "derived": True,
                }
            )
        )
    return out


def apply(
    action: ActionRecord,
    extractors: Mapping[str, Sequence[EffectExtractor]],
    stats: ExtractStats,
) -> ActionRecord:
    """``action`` with derived effects when it is eligible (module docstring), else itself."""
    declared = extractors.get(action.tool)
    if not declared or action.effects or action.status.value not in DERIVED_FROM:
        return action
    stats.candidates += 1
    effects = derive(action, declared, stats)
    if not effects:
        return action
    stats.derived_actions += 1
    stats.effects += len(effects)
    return action.model_copy(update={"effects": effects})


def extractors_of(spec: AgentSpec | None) -> dict[str, tuple[EffectExtractor, ...]]:
    """Tool name → its declared extractors (tools without any are left out)."""
    if spec is None:
        return {}
    return {t.name: tuple(t.effects) for t in spec.tools if t.effects}


class Extraction:
    """The extractors of one agent spec, applied to the actions of one read, with its counts."""

    def __init__(self, spec: AgentSpec | None, stats: ExtractStats | None = None) -> None:
        self.by_tool = extractors_of(spec)
        self.stats = stats if stats is not None else ExtractStats()

    def __bool__(self) -> bool:
        return bool(self.by_tool)

    def __call__(self, action: ActionRecord) -> ActionRecord:
        return apply(action, self.by_tool, self.stats) if self.by_tool else action

    def all(self, actions: Iterable[ActionRecord]) -> Iterator[ActionRecord]:
        for action in actions:
            yield self(action)
