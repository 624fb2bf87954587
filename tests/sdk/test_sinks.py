"""Writing must never block or break the agent: sink down, buffer full, recovery, layout."""

from __future__ import annotations

import gzip
import json
import logging
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from agentctl.clock import FakeClock
from agentctl.sdk import Agent, LocalJsonlSink, Writer


class FlakySink:
    def __init__(self) -> None:
        self.down = True
        self.batches: list[list[dict[str, Any]]] = []

    def write(self, records: list[dict[str, Any]]) -> None:
        if self.down:
            raise OSError("disk full")
        self.batches.append(list(records))


def make_agent(writer: Writer, clock: FakeClock) -> tuple[Agent, list[str]]:
    agent = Agent("refund-agent", writer=writer, now=clock.now)  # no SSM: nothing revoked
    ran: list[str] = []

    @agent.tool()
    def lookup_order(order_id: str) -> dict[str, str]:
        ran.append(order_id)
        return {"order": order_id}

    agent.lookup_order = lookup_order  # type: ignore[attr-defined]
    return agent, ran


def test_sink_down_does_not_break_the_agent_and_nothing_is_lost_on_recovery(
    clock: FakeClock,
) -> None:
    sink = FlakySink()
    writer = Writer(sink, batch_size=10, background=False)
    agent, ran = make_agent(writer, clock)
    with agent.unit_of_work("T-1"):
        for i in range(25):
            agent.lookup_order(f"o-{i}")  # type: ignore[attr-defined]
    assert len(ran) == 25
    assert agent.flush() is False
    assert writer.stats.sink_errors == 1 and writer.stats.pending == 26  # 25 actions + 1 input

    sink.down = False
    assert agent.flush() is True
    written = [r for batch in sink.batches for r in batch]
    assert len(written) == 26 and writer.stats.dropped == 0
    assert [r["args"]["order_id"] for r in written if r["record_type"] == "action"] == [
        f"o-{i}" for i in range(25)
    ]


def test_full_buffer_drops_counts_and_warns_but_the_agent_keeps_working(
    clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    sink = FlakySink()
    writer = Writer(sink, max_buffer=5, background=False)
    agent, ran = make_agent(writer, clock)
    with caplog.at_level(logging.WARNING, logger="agentctl.sdk"), agent.unit_of_work("T-1"):
        for i in range(10):
            agent.lookup_order(f"o-{i}")  # type: ignore[attr-defined]
    assert len(ran) == 10
    assert writer.stats.dropped == 6  # 11 submitted (input + 10), 5 kept
    assert "dropped" in caplog.text
    sink.down = False
    agent.flush()
    assert sum(len(b) for b in sink.batches) == 5


def test_background_writer_flushes_on_close(tmp_path: Path, clock: FakeClock) -> None:
    writer = Writer(LocalJsonlSink(tmp_path, writer_id="w"), flush_interval=60)
    agent, _ = make_agent(writer, clock)
    with agent.unit_of_work("T-1"):
        agent.lookup_order("o-1")  # type: ignore[attr-defined]
    agent.close()
    day = clock.now().strftime("%Y-%m-%d")
    lines = (tmp_path / f"dt={day}" / "actions-w-000001.jsonl").read_text().splitlines()
    assert [json.loads(line)["tool"] for line in lines] == ["lookup_order"]
    assert (tmp_path / f"dt={day}" / "decisions-w-000001.jsonl").exists()


def test_gzip_local_sink_appends_members_readable_as_one_file(tmp_path: Path) -> None:
    sink = LocalJsonlSink(tmp_path, writer_id="w", compress=True)
    rec = {"record_type": "action", "ts": "2026-11-24T01:00:00Z", "n": 1}
    sink.write([rec])
    sink.write([rec | {"n": 2}])
    path = tmp_path / "dt=2026-11-24" / "actions-w-000001.jsonl.gz"
    assert [json.loads(x)["n"] for x in gzip.decompress(path.read_bytes()).splitlines()] == [1, 2]


def test_local_sink_rolls_over_to_a_new_file(tmp_path: Path) -> None:
    sink = LocalJsonlSink(tmp_path, writer_id="w", max_file_bytes=10)
    rec = {"record_type": "action", "ts": "2026-11-24T01:00:00Z"}
    sink.write([rec])
    sink.write([rec])
    names = sorted(p.name for p in (tmp_path / "dt=2026-11-24").iterdir())
    assert names == ["actions-w-000001.jsonl", "actions-w-000002.jsonl"]


def test_sdk_imports_without_the_cli_or_heavy_dependencies() -> None:
    code = (
        "import sys, agentctl.sdk\n"
        "heavy = {'typer', 'rich', 'questionary', 'pydantic', 'duckdb', 'boto3', 'botocore',"
        " 'yaml', 'jinja2'}\n"
        "print(sorted(m for m in heavy if m in sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_otlp_http_sink_posts_genai_spans_and_a_collector_error_is_retried(
    clock: FakeClock,
) -> None:
    # A collector stand-in: the stdlib HTTP server records each POST; no AWS is involved.
    import http.server
    import threading

    from agentctl.sdk import OtlpHttpSink

    received: list[dict[str, Any]] = []
    answers = [503, 200]

    class Collector(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            status = answers.pop(0)
            if status == 200:
                received.append(json.loads(body))
            self.send_response(status)
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    server = http.server.HTTPServer(("127.0.0.1", 0), Collector)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{server.server_port}/v1/traces"
        writer = Writer(OtlpHttpSink(url), background=False)
        agent, ran = make_agent(writer, clock)
        with agent.unit_of_work("T-1"):
            agent.lookup_order("o-1")  # type: ignore[attr-defined]
        assert agent.flush() is False and writer.stats.sink_errors == 1  # 503: kept
        assert agent.flush() is True and ran == ["o-1"]
    finally:
        server.shutdown()
        server.server_close()
    [doc] = received
    spans = doc["resourceSpans"][0]["scopeSpans"][0]["spans"]
    assert [s["name"] for s in spans] == ["invoke_agent refund-agent", "execute_tool lookup_order"]
    attrs = {a["key"]: a["value"] for a in spans[1]["attributes"]}
    assert attrs["gen_ai.tool.name"] == {"stringValue": "lookup_order"}
    assert attrs["gen_ai.operation.name"] == {"stringValue": "execute_tool"}


class _Unprintable:
    def __str__(self) -> str:
        raise LookupError("row was deleted")  # as an ORM object's may


class _NotText:
    def __str__(self) -> Any:
        return 42


def _hostile_results() -> list[Any]:
    circular: dict[str, Any] = {"id": "re_1"}
    circular["self"] = circular
    return [
        circular,
        {("a", "b"): 1},
        {"note": "bad \ud800 text"},
        {"big": 10**5000},  # past Python's 4300-digit limit for int -> str
        {"obj": _Unprintable()},
        {"obj": _NotText()},
        {"n": 7},
    ]


HOSTILE_WRITTEN = [
    {"id": "re_1", "self": "<circular>"},
    {"('a', 'b')": 1},
    {"note": "bad ? text"},
    {"big": "<int of 16610 bits>"},
    {"obj": "<unprintable _Unprintable>"},
    {"obj": "<unprintable _NotText>"},
    {"n": 7},
]


def _call_with(agent: Agent, results: list[Any]) -> None:
    @agent.tool()
    def issue_refund(n: int) -> Any:
        return results[n]

    with agent.unit_of_work("T-1"):
        for n in range(len(results)):
            issue_refund(n)


def test_a_record_json_cannot_hold_as_it_is_is_written_safe_and_holds_nothing_back(
    tmp_path: Path, clock: FakeClock
) -> None:
    """A tool result that refers to itself, a key that is not a string, a lone surrogate, an
    int too long to print, an object whose str() fails: json.dumps refuses them. Before, the
    batch failed and was retried forever, holding back every record after it."""
    from datetime import timedelta

    from agentctl.trace.query import iter_actions
    from agentctl.trace.scan import ScanStats

    writer = Writer(LocalJsonlSink(tmp_path, writer_id="w"), background=False)
    agent = Agent("refund-agent", writer=writer, now=clock.now)
    results = _hostile_results()
    _call_with(agent, results)
    assert agent.flush() and writer.stats.written == writer.stats.submitted == len(results) + 1

    stats = ScanStats()
    window = (clock.now() - timedelta(hours=1), clock.now() + timedelta(hours=1))
    found = [r.result for r in iter_actions(str(tmp_path), "refund-agent", *window, stats=stats)]
    assert stats.bad_total == 0
    assert sorted(map(json.dumps, found)) == sorted(map(json.dumps, HOSTILE_WRITTEN))
    lines = [p.read_text().splitlines() for p in tmp_path.rglob("*.jsonl")]
    assert sum(map(len, lines)) == len(results) + 1  # each record once: no half-written retry


def test_the_otlp_sink_sends_records_json_cannot_hold_as_they_are(clock: FakeClock) -> None:
    import http.server
    import threading

    from agentctl.sdk import OtlpHttpSink

    received: list[dict[str, Any]] = []

    class Collector(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            received.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
            self.send_response(200)
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    server = http.server.HTTPServer(("127.0.0.1", 0), Collector)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_port}/v1/traces"
        writer = Writer(OtlpHttpSink(url), background=False)
        agent = Agent("refund-agent", writer=writer, now=clock.now)
        _call_with(agent, _hostile_results())
        assert agent.flush() and writer.stats.sink_errors == 0
    finally:
        server.shutdown()
        server.server_close()
    [doc] = received
    spans = doc["resourceSpans"][0]["scopeSpans"][0]["spans"]
    assert len([s for s in spans if s["name"] == "execute_tool issue_refund"]) == 7


class _FullDisk:
    """A file whose disk fills up: the ``fail_at``-th write keeps half its bytes and raises
    ENOSPC, as ``write(2)`` on a full disk does (the file itself is real)."""

    writes = 0
    fail_at = 0

    def __init__(self, f: Any) -> None:
        self.f = f

    def write(self, data: bytes) -> int:
        _FullDisk.writes += 1
        if _FullDisk.writes == _FullDisk.fail_at:
            self.f.write(data[: len(data) // 2])
            self.f.flush()
            raise OSError(28, "No space left on device")
        return int(self.f.write(data))

    def __getattr__(self, name: str) -> Any:
        return getattr(self.f, name)

    def __enter__(self) -> _FullDisk:
        return self

    def __exit__(self, *exc: object) -> None:
        self.f.close()


def test_a_disk_full_half_way_through_a_batch_leaves_every_record_once_and_no_broken_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from datetime import UTC, datetime

    import agentctl.sdk.sinks as sinks
    from agentctl.trace.query import iter_actions
    from agentctl.trace.scan import ScanStats

    _FullDisk.writes, _FullDisk.fail_at = 0, 2  # the batch's second file: half written
    real_open = open  # the sink's files are real; _FullDisk closes them on exit
    monkeypatch.setattr(sinks, "open", lambda *a, **k: _FullDisk(real_open(*a, **k)), raising=False)
    writer = Writer(LocalJsonlSink(tmp_path, writer_id="w1"), batch_size=100, background=False)
    clock = FakeClock(datetime(2026, 11, 24, 23, 59, 58, tzinfo=UTC))
    agent, _ = make_agent(writer, clock)
    with agent.unit_of_work("T-1"):  # its records fall on two days: two files, two appends
        for i in range(4):
            agent.lookup_order(f"o-{i}")  # type: ignore[attr-defined]
            clock.advance(1)
    assert agent.flush() is False  # the disk is full: the batch stays buffered
    assert agent.flush() is True  # space again: the same batch is retried
    stats = ScanStats()
    day = (datetime(2026, 11, 24, tzinfo=UTC), datetime(2026, 11, 26, tzinfo=UTC))
    got = list(iter_actions(str(tmp_path), "refund-agent", *day, stats=stats, engine="python"))
    assert sorted(a.args["order_id"] for a in got) == ["o-0", "o-1", "o-2", "o-3"]
    assert stats.bad_total == 0


def test_a_fan_out_retried_after_one_sink_failed_gives_the_other_each_record_once(
    tmp_path: Path, clock: FakeClock
) -> None:
    from datetime import UTC, datetime

    from agentctl.sdk import FanOutSink
    from agentctl.trace.query import iter_actions
    from agentctl.trace.scan import ScanStats

    flaky = FlakySink()  # down first: the batch fails on it, after the local sink took it
    writer = Writer(FanOutSink(LocalJsonlSink(tmp_path), flaky), background=False)
    agent, _ = make_agent(writer, clock)
    with agent.unit_of_work("T-1"):
        for i in range(3):
            agent.lookup_order(f"o-{i}")  # type: ignore[attr-defined]
    assert agent.flush() is False
    flaky.down = False
    assert agent.flush() is True
    day = (datetime(2026, 11, 24, tzinfo=UTC), datetime(2026, 11, 25, tzinfo=UTC))
    got = list(iter_actions(str(tmp_path), "refund-agent", *day, stats=ScanStats()))
    assert sorted(a.args["order_id"] for a in got) == ["o-0", "o-1", "o-2"]  # once each
    assert [len(b) for b in flaky.batches] == [4]  # 3 actions and the input, once
