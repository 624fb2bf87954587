"""The floor under `agentctl contain --hard`: the same work in bare botocore, nothing else.

Run by ``bench/contain.py`` as its own process, against the same latency endpoint and agent.
It does what agentctl's engine does on the wire, as fast as a Python process with botocore can:

1. one round trip: caller identity and every before-state read, concurrently (each client is
   created in the worker that uses it, so creation overlaps the other workers' waits);
2. one round trip: the four writes, concurrently;
3. one round trip: each target read back.

No spec, no journal, no confirmation, no output: what is left is interpreter start-up, the
botocore import, four clients and three round trips. agentctl can only be as fast as this, so it
says how far apart the two are, and what any Python + botocore tool could reach against the aws
CLI script.
"""

from __future__ import annotations

import json
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import botocore.session
from botocore.config import Config

ROLE = "refund-agent-role"
POLICY = "agentctl-containment"
REGISTRY = "/agents/refund-agent/tools"
FUNCTIONS = ("refund-agent-worker", "refund-agent-planner")
DENY = {
    "Version": "2012-10-17",
    "Statement": [
        {"Effect": "Deny", "Action": ["lambda:InvokeFunction", "ses:SendEmail"], "Resource": "*"}
    ],
}
OFF = {"tools": {t: {"enabled": False} for t in ("lookup_order", "issue_refund", "send_email")}}

session = botocore.session.Session()
config = Config(retries={"mode": "standard", "max_attempts": 5})
clients: dict[str, Any] = {}
lock = threading.Lock()


def client(name: str) -> Any:
    with lock:  # one client per service, as agentctl
        if name not in clients:
            clients[name] = session.create_client(name, config=config)
        return clients[name]


def read_policy() -> Any:
    iam = client("iam")
    try:
        return iam.get_role_policy(RoleName=ROLE, PolicyName=POLICY)
    except iam.exceptions.NoSuchEntityException:
        return None


def write_and_read_back(target: str) -> None:
    if target == "iam":
        client("iam").put_role_policy(
            RoleName=ROLE, PolicyName=POLICY, PolicyDocument=json.dumps(DENY)
        )
        read_policy()
    elif target == "ssm":
        ssm = client("ssm")
        ssm.put_parameter(Name=REGISTRY, Value=json.dumps(OFF), Type="String", Overwrite=True)
        ssm.get_parameter(Name=REGISTRY)
    else:
        lam = client("lambda")
        lam.put_function_concurrency(FunctionName=target, ReservedConcurrentExecutions=0)
        lam.get_function_concurrency(FunctionName=target)


def main() -> None:
    with ThreadPoolExecutor(max_workers=8) as pool:
        reads = [
            pool.submit(lambda: client("sts").get_caller_identity()),
            pool.submit(read_policy),
            pool.submit(lambda: client("ssm").get_parameter(Name=REGISTRY)),
            *[
                pool.submit(
                    lambda fn=fn: client("lambda").get_function_concurrency(FunctionName=fn)
                )
                for fn in FUNCTIONS
            ],
        ]
        for future in reads:
            future.result()
        writes = [pool.submit(write_and_read_back, t) for t in ("iam", "ssm", *FUNCTIONS)]
        for future in writes:
            future.result()


if __name__ == "__main__":
    main()
