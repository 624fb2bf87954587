"""The drain fields of the agent spec: queues and intake, validated with file, line and field."""

from __future__ import annotations

from pathlib import Path

import pytest

from agentctl.errors import SpecError
from agentctl.spec import load_agent

BASE = """\
version: 1
name: a
owner: me
role: a-role
"""


def problems(tmp_path: Path, extra: str) -> list[str]:
    (tmp_path / "a.yaml").write_text(BASE + extra)
    with pytest.raises(SpecError) as info:
        load_agent("a", tmp_path)
    return [str(p) for p in info.value.problems]


def test_valid_intake_loads(tmp_path: Path) -> None:
    (tmp_path / "a.yaml").write_text(
        BASE
        + """\
queues:
  - name: https://sqs.us-east-1.amazonaws.com/123456789012/work.fifo
    review_queue: arn:aws:sqs:us-east-1:123456789012:review.fifo
intake:
  discover_mappings: false
  event_source_mappings: [0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0]
  rules: [{name: r1, bus: custom-bus}]
  schedules: [{name: s1}]
"""
    )
    spec = load_agent("a", tmp_path)
    assert spec.queues[0].review_queue is not None
    assert spec.intake.rules[0].bus == "custom-bus"
    assert spec.intake.schedules[0].group == "default"


def test_fifo_work_queue_needs_a_fifo_review_queue(tmp_path: Path) -> None:
    found = problems(tmp_path, "queues:\n  - name: work.fifo\n    review_queue: review\n")
    assert len(found) == 1
    assert "a.yaml:6" in found[0] and "its review_queue must be FIFO too" in found[0]


def test_review_queue_must_differ(tmp_path: Path) -> None:
    found = problems(tmp_path, "queues:\n  - name: work\n    review_queue: work\n")
    assert "review_queue must differ from the work queue" in found[0]


def test_every_problem_is_listed(tmp_path: Path) -> None:
    found = problems(
        tmp_path,
        """\
queues:
  - name: work
    reviewqueue: typo
intake:
  event_source_mappings: [not-a-uuid]
  schedules: [{name: "bad name!"}]
""",
    )
    text = "\n".join(found)
    assert len(found) == 3, text
    assert "reviewqueue" in text
    assert "not an event source mapping UUID: not-a-uuid" in text
    assert "schedules" in text


def test_duplicate_work_queues(tmp_path: Path) -> None:
    found = problems(tmp_path, "queues:\n  - name: work\n  - name: work\n")
    assert "duplicate work queues: work" in found[0]
