"""Every handler kind against something real: moto (SQS, EventBridge, Lambda), a local HTTP
server, a Python entry point. Each: applied, failed before the effect, outcome unknown."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from botocore.stub import Stubber
from moto import mock_aws

from agentctl.aws import Aws, AwsSettings
from agentctl.clock import FakeClock
from agentctl.compensate.executor import Executor
from agentctl.compensate.handlers import Outcome, classify_aws_error
from agentctl.compensate.ledger import LedgerStatus
from agentctl.compensate.planner import plan_compensations
from agentctl.compensate.sqlite_ledger import SqliteLedger
from agentctl.errors import ExitCode
from tests.compensate import targets
from tests.compensate.conftest import REFUND_PAYLOAD, drain, make_queue, refund, spec_with


def _run(ledger: SqliteLedger, aws: Aws, spec: Any, clock: FakeClock, n: int = 3, **kw: Any):
    kw.setdefault("retries", 0)
    return Executor(ledger, aws, spec, clock=clock, workers=2, **kw).run(
        plan_compensations(spec, [refund(i) for i in range(n)])
    )


# -- EventBridge ---------------------------------------------------------------------------------
def test_events_are_put_with_the_key_in_the_detail(
    aws: Aws, ledger: SqliteLedger, clock: FakeClock
) -> None:
    url = make_queue(aws, "restores")
    arn = aws.client("sqs").get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])[
        "Attributes"
    ]["QueueArn"]
    events = aws.client("events")
    events.put_rule(Name="restores", EventPattern=json.dumps({"detail-type": ["refund.reverse"]}))
    events.put_targets(Rule="restores", Targets=[{"Id": "q", "Arn": arn}])
    spec = spec_with({"events": {"detail_type": "refund.reverse"}, "payload": REFUND_PAYLOAD})

    report = _run(ledger, aws, spec, clock)

    assert report.completed == 3 and report.exit_code is ExitCode.OK
    details = [json.loads(m["Body"])["detail"] for m in drain(aws, url)]
    assert sorted(d["refund_id"] for d in details) == ["re_0", "re_1", "re_2"]
    assert all(d["idempotency_key"].startswith("agentctl-comp-") for d in details)


def test_events_to_a_missing_bus_fail_before_the_effect(
    aws: Aws, ledger: SqliteLedger, clock: FakeClock
) -> None:
    spec = spec_with({"events": {"detail_type": "x", "bus": "no-such-bus"}})
    report = _run(ledger, aws, spec, clock)
    assert len(report.failed) == 3 and report.unknown == []
    assert {r.status for r in ledger.rows("refund-agent")} == {LedgerStatus.FAILED}


# -- Lambda --------------------------------------------------------------------------------------
@pytest.fixture
def lambda_aws() -> Iterator[Aws]:
    # moto's docker-free Lambda echoes the request payload back as the response.
    with mock_aws(config={"lambda": {"use_docker": False}}):
        aws = Aws(AwsSettings(region="us-east-1", max_attempts=1))
        role = aws.client("iam").create_role(
            RoleName="r", AssumeRolePolicyDocument=json.dumps({"Version": "2012-10-17"})
        )["Role"]["Arn"]
        aws.client("lambda").create_function(
            FunctionName="refund-reverser",
            Runtime="python3.12",
            Role=role,
            Handler="h.h",
            Code={"ZipFile": b"PK\x05\x06" + b"\x00" * 18},
        )
        yield aws


def test_lambda_is_invoked_with_the_payload_and_key(
    lambda_aws: Aws, ledger: SqliteLedger, clock: FakeClock
) -> None:
    spec = spec_with({"lambda": {"function": "refund-reverser"}, "payload": REFUND_PAYLOAD})
    report = _run(ledger, lambda_aws, spec, clock)
    assert report.completed == 3
    rows = list(ledger.rows("refund-agent"))
    assert all(r.status is LedgerStatus.COMPLETED for r in rows)
    echoed = json.loads(rows[0].result.split(": ", 1)[1])  # type: ignore[union-attr]
    assert echoed["idempotency_key"] == rows[0].dispatch_key
    assert echoed["op"] == "reverse_refund"


def test_a_function_error_leaves_the_outcome_unknown_and_is_not_resent(
    lambda_aws: Aws, ledger: SqliteLedger, clock: FakeClock
) -> None:
    # moto cannot make a function fail; botocore's Stubber answers this one call.
    spec = spec_with({"lambda": {"function": "refund-reverser"}})
    client = lambda_aws.client("lambda", retries=0)
    with Stubber(client) as stub:
        stub.add_response(
            "invoke", {"StatusCode": 200, "FunctionError": "Unhandled", "Payload": b"{}"}
        )
        report = _run(ledger, lambda_aws, spec, clock, n=1)
    assert len(report.unknown) == 1 and "function error" in report.unknown[0].detail
    again = _run(ledger, lambda_aws, spec, clock, n=1)  # moto would answer: but it is not asked
    assert len(again.unknown) == 1 and "not re-sent" in again.unknown[0].detail


# -- HTTP ----------------------------------------------------------------------------------------
class Receiver:
    """A compensation endpoint: records requests; answers with a configurable status."""

    def __init__(self) -> None:
        self.requests: list[tuple[dict[str, str], Any]] = []
        self.status = 200
        self.applied: set[str] = set()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                key = self.headers["Idempotency-Key"]
                receiver.requests.append((dict(self.headers), body))
                if receiver.status < 400 or receiver.status >= 500:
                    receiver.applied.add(key)  # a 5xx after the write: the classic unknown
                self.send_response(receiver.status)
                self.end_headers()

            def do_GET(self) -> None:
                key = self.path.rsplit("/", 1)[-1]
                self.send_response(200 if key in receiver.applied else 404)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    yield r
    r.server.shutdown()
    r.server.server_close()


def test_http_posts_json_with_an_idempotency_key_header(
    aws: Aws, ledger: SqliteLedger, clock: FakeClock, receiver: Receiver
) -> None:
    spec = spec_with(
        {
            "http": {"url": receiver.url + "/reverse", "headers": {"X-Team": "payments"}},
            "payload": REFUND_PAYLOAD,
        }
    )
    report = _run(ledger, aws, spec, clock)
    assert report.completed == 3
    headers, body = receiver.requests[0]
    assert headers["Idempotency-Key"].startswith("agentctl-comp-")
    assert headers["X-Team"] == "payments" and headers["Content-Type"] == "application/json"
    assert body["op"] == "reverse_refund"


def test_http_4xx_is_failed_before_effect_and_retried_next_run(
    aws: Aws, ledger: SqliteLedger, clock: FakeClock, receiver: Receiver
) -> None:
    spec = spec_with({"http": {"url": receiver.url + "/reverse"}})
    receiver.status = 422
    first = _run(ledger, aws, spec, clock)
    assert len(first.failed) == 3 and "http 422" in first.failed[0].detail
    receiver.status = 200
    second = _run(ledger, aws, spec, clock)
    assert second.completed == 3 and len(receiver.requests) == 6


def test_http_5xx_is_unknown_then_reconciled_through_the_check_url_without_resending(
    aws: Aws, ledger: SqliteLedger, clock: FakeClock, receiver: Receiver
) -> None:
    spec = spec_with(
        {
            "http": {
                "url": receiver.url + "/reverse",
                "check_url": receiver.url + "/reversals/{key}",
            }
        }
    )
    receiver.status = 502
    first = _run(ledger, aws, spec, clock)
    assert len(first.unknown) == 3 and first.exit_code is ExitCode.PARTIAL
    receiver.status = 200
    second = _run(ledger, aws, spec, clock)
    assert second.reconciled == 3 and second.exit_code is ExitCode.OK
    assert len(receiver.requests) == 3  # asked, not re-sent


def test_http_unreachable_is_not_applied(aws: Aws, ledger: SqliteLedger, clock: FakeClock) -> None:
    spec = spec_with({"http": {"url": "http://127.0.0.1:9/reverse"}})  # discard port: refused
    report = _run(ledger, aws, spec, clock, n=1)
    assert len(report.failed) == 1 and report.unknown == []


# -- Python entry point ---------------------------------------------------------------------
@pytest.fixture
def py_target() -> Iterator[None]:
    targets.reset()
    yield
    targets.reset()


def test_python_entry_point_gets_payload_and_key(
    aws: Aws, ledger: SqliteLedger, clock: FakeClock, py_target: None
) -> None:
    spec = spec_with(
        {"python": {"entry_point": "tests.compensate.targets:reverse"}, "payload": REFUND_PAYLOAD}
    )
    report = _run(ledger, aws, spec, clock)
    assert report.completed == 3
    assert sorted(p["refund_id"] for p, _ in targets.CALLS) == ["re_0", "re_1", "re_2"]
    assert all(k.startswith("agentctl-comp-") for _, k in targets.CALLS)


def test_python_not_applied_and_unknown_then_check(
    aws: Aws, ledger: SqliteLedger, clock: FakeClock, py_target: None
) -> None:
    spec = spec_with(
        {
            "python": {
                "entry_point": "tests.compensate.targets:reverse",
                "check": "tests.compensate.targets:was_applied",
            },
            "payload": REFUND_PAYLOAD,
        }
    )
    targets.MODE["value"] = "reject"
    assert len(_run(ledger, aws, spec, clock, n=2).failed) == 2
    targets.MODE["value"] = "crash-after-effect"
    report = _run(ledger, aws, spec, clock, n=2)
    assert len(report.unknown) == 2 and "RuntimeError" in report.unknown[0].detail
    targets.MODE["value"] = "ok"
    calls = len(targets.CALLS)
    final = _run(ledger, aws, spec, clock, n=2)
    assert final.reconciled == 2 and len(targets.CALLS) == calls  # checked, not called again


def test_an_unloadable_entry_point_fails_every_item_without_touching_the_ledger(
    aws: Aws, ledger: SqliteLedger, clock: FakeClock
) -> None:
    spec = spec_with({"python": {"entry_point": "tests.compensate.nowhere:reverse"}})
    report = _run(ledger, aws, spec, clock)
    assert len(report.failed) == 3 and "cannot load entry point" in report.failed[0].detail
    assert {r.status for r in ledger.rows("refund-agent")} == {LedgerStatus.PENDING}


# -- classification ------------------------------------------------------------------------------
def test_aws_errors_are_classified_by_whether_anything_could_have_happened() -> None:
    from botocore.exceptions import ClientError, EndpointConnectionError, ReadTimeoutError

    def client_error(code: str, status: int) -> ClientError:
        return ClientError(
            {
                "Error": {"Code": code, "Message": "m"},
                "ResponseMetadata": {"HTTPStatusCode": status},
            },
            "SendMessageBatch",
        )

    assert (
        classify_aws_error(client_error("ThrottlingException", 400)).outcome is Outcome.NOT_APPLIED
    )
    assert classify_aws_error(client_error("AccessDenied", 403)).outcome is Outcome.NOT_APPLIED
    assert classify_aws_error(client_error("InternalError", 500)).outcome is Outcome.UNKNOWN
    assert (
        classify_aws_error(EndpointConnectionError(endpoint_url="http://x")).outcome
        is Outcome.NOT_APPLIED
    )
    assert classify_aws_error(ReadTimeoutError(endpoint_url="http://x")).outcome is Outcome.UNKNOWN
