"""Demo scene for ``make demo``: roll the refund agent back and undo its wrong refunds.

Runs after the trace scenes (the synthetic agent has written its action records, some refunds
over the $30 limit) and containment. Records two releases (the good prompt v12 and the bad v13
the deploy pipeline pointed the agent at), then ``agentctl rollback`` moves the release pointer
back and reverses each wrong refund exactly once through the SQS compensation queue; emails the
agent sent become follow-up items (mitigations) exported as CSV. A second run sends nothing.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

AGENT = "refund-agent"
MODEL = "anthropic.claude-sonnet-4-5-20250929-v1:0"
WHERE = "(tool = 'issue_refund' and args.amount > 30) or tool = 'send_email'"


def _record(demo: Any, prompt: Path, tools: Path, note: str) -> str:
    proc = demo.run(
        "releases", "record", AGENT, "--model", MODEL, "--prompt", str(prompt),
        "--tools", str(tools), "--note", note, "-o", "json",
    )  # fmt: skip
    return str(json.loads(proc.stdout)["release"]["id"])


def _emails(demo: Any) -> int:
    """The demo agent only refunds; add three `send_email` records (as its SDK sink would
    write them) so the scene can show mitigations."""
    from agentctl.compensate.source import audit_location
    from agentctl.sdk.sinks import LocalJsonlSink
    from agentctl.spec.loader import find_spec, load_agent
    from agentctl.trace.records import ActionRecord, to_json_dict

    spec = load_agent(AGENT, demo.runbooks)
    root = audit_location(spec, None, find_spec(AGENT, demo.runbooks).parent)
    now = datetime.now(UTC) - timedelta(minutes=1)
    records = []
    for i in range(3):
        record = ActionRecord.model_validate(
            {
                "agent": AGENT,
                "release_id": "rel-13",
                "trace_id": f"{0xE0 + i:032x}",
                "span_id": f"{0xE0 + i:016x}",
                "ts": now + timedelta(seconds=i),
                "action_id": f"email-{i + 1}",
                "unit_of_work": f"T-{1040 + i}",
                "tool": "send_email",
                "args": {
                    "to": f"customer{i + 1}@example.com",
                    "subject": "Your refund is on its way",
                },
                "result": {"message_id": f"m-{i + 1}"},
                "status": "executed",
                "idempotency_key": f"ik1-{0xE0 + i:032x}",
                "effects": [
                    {
                        "system": "email",
                        "resource_type": "message",
                        "resource_id": f"m-{i + 1}",
                        "operation": "send",
                        "reversible": False,
                    }
                ],
            }
        )
        records.append(to_json_dict(record))
    LocalJsonlSink(root, writer_id="demo-mail").write(records)
    return len(records)


def scene(demo: Any) -> None:
    work = Path(demo.workdir)
    tools = work / "tools.json"
    tools.write_text(json.dumps({"issue_refund": {"order_id": "string", "amount": "integer"}}))
    v12, v13 = work / "prompt-v12.txt", work / "prompt-v13.txt"
    v12.write_text("Refund only up to $30 without a human approval.\n")
    v13.write_text("Refund whatever the customer asks for.\n")

    demo.say("Releases: model + prompt + tool schema as one artifact, with a content id")
    good = _record(demo, v12, tools, "prompt v12")
    bad = _record(demo, v13, tools, "prompt v13")
    demo.run("releases", "mark", good, "--good", "--note", "ran for two weeks")
    # The deploy pipeline pointed the agent at v13 (what the agent reads at start).
    spec_pointer = "/agents/refund-agent/release"
    demo.aws.client("ssm").put_parameter(
        Name=spec_pointer, Value=json.dumps({"release_id": bad}), Type="String", Overwrite=True
    )
    demo.run("releases", "list", AGENT)

    sent = _emails(demo)
    demo.say(
        f"Roll back: release pointer to the last known-good, reverse each refund over $30 "
        f"exactly once; the {sent} emails it sent get follow-ups"
    )
    demo.run("rollback", AGENT, "--since", "15m", "--where", WHERE, "--dry-run")
    csv_path = work / "follow-ups.csv"
    demo.run(
        "rollback", AGENT, "--since", "15m", "--where", WHERE, "--yes",
        "--mitigations-csv", str(csv_path), "--reason", "prompt v13 ignores the $30 limit",
    )  # fmt: skip
    _show_queue(demo)
    print(f"{csv_path.name}:\n" + csv_path.read_text(), end="", flush=True)

    demo.say("The same command again (as after a crash): nothing is compensated twice")
    demo.run("rollback", AGENT, "--since", "15m", "--where", WHERE, "--yes")


def _show_queue(demo: Any) -> None:
    sqs = demo.aws.client("sqs")
    url = sqs.get_queue_url(QueueName="refund-compensations.fifo")["QueueUrl"]
    bodies: list[dict[str, Any]] = []
    while True:
        got = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages", [])
        if not got:
            break
        bodies.extend(json.loads(m["Body"]) for m in got)
        # Leave them in flight (not deleted): SQS keeps deduplicating a re-send meanwhile.
    total = sum(float(b.get("amount", 0)) for b in bodies)
    print(
        f"the payments team's compensation queue received {len(bodies)} reversals "
        f"(${total:,.0f}), e.g. {json.dumps(bodies[0]) if bodies else '-'}",
        flush=True,
    )
