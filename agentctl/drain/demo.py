"""The drain scene of ``make demo``: stop intake, let a backlog build, divert it to review.

The lead's demo runs it after ``contain``/``status`` and before ``resume``:
``scene(demo)`` with ``demo.run(...)`` (the real CLI), ``demo.say(...)`` and ``demo.aws``.
"""

from __future__ import annotations

import json
from typing import Any

AGENT = "refund-agent"
QUEUE = "refund-requests"
REVIEW = "refund-requests-review"
BACKLOG = 50


def scene(demo: Any) -> None:
    demo.say(
        "Stop new work reaching the agent: its queue's event source mapping, its rule and "
        "its schedule; then wait for in-flight work to finish"
    )
    demo.run("drain", AGENT, "--yes", "--timeout", "10", "--reason", "refunding every ticket")
    # The messages arrive after intake stopped: with the mapping enabled, the sandbox would try
    # to run the function for each one (it has no container runtime) and log the failures.
    demo.say(f"Upstream keeps sending: {BACKLOG} refund requests pile up in {QUEUE}")
    sqs = demo.aws.client("sqs")
    url = sqs.get_queue_url(QueueName=QUEUE)["QueueUrl"]
    for first in range(0, BACKLOG, 10):
        sqs.send_message_batch(
            QueueUrl=url,
            Entries=[
                {
                    "Id": str(i),
                    "MessageBody": json.dumps({"ticket": f"T-{1000 + i}", "amount": 40 + i}),
                    "MessageAttributes": {
                        "customer": {"DataType": "String", "StringValue": f"C-{i % 7}"}
                    },
                }
                for i in range(first, min(first + 10, BACKLOG))
            ],
        )
    demo.say("Divert the backlog to the review queue, exactly once, for humans to look at")
    demo.run("drain", AGENT, "--divert", "--yes")
    demo.say("Counts, read back from AWS")
    for name in (QUEUE, REVIEW):
        attrs = sqs.get_queue_attributes(
            QueueUrl=sqs.get_queue_url(QueueName=name)["QueueUrl"],
            AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
        )["Attributes"]
        print(
            f"  {name}: {attrs['ApproximateNumberOfMessages']} queued, "
            f"{attrs['ApproximateNumberOfMessagesNotVisible']} in flight",
            flush=True,
        )
    demo.run("status", AGENT)
