"""Benchmark: `agentctl actions` / `agentctl trace` against jq over the same files, and the SDK's
per-call overhead.

    .venv/bin/python bench/trace.py [--records 1000000] [--days 30] [--runs 5] [--jq-runs 3]
        [--data-dir DIR] [--cache-dir DIR]

Generates (once, cached under ``--data-dir``, default bench/results/trace-data/) a
day-partitioned audit directory:
``--records`` action records over ``--days`` days from 4 writers, plus an input and a model-call
record per action in the decisions files (realistic sizes: ~0.9 kB per action). Then, in one run:

1. ``agentctl actions refund-agent --since D0 --until D30 --tool issue_refund
   --where 'args.amount > 30' --count`` vs ``jq -n 'reduce (inputs | select(...)) ...'`` doing the
   same filter and count over the same action files (results must agree);
2. the same over a one-day window (partition pruning: agentctl opens one day, jq is handed the
   same day's files);
3. ``agentctl trace ACTION_ID`` (find by id over all 30 days + decision chain) vs
   ``jq 'select(.action_id == ...)'`` over every action file (find only);

each agentctl figure three ways: cold (the day-partition cache is emptied before each run, so
cold is a median of ``--runs`` runs too: JSONL is parsed and the cache built in the same pass),
warm (the cache is current), and cache off (``AGENTCTL_TRACE_CACHE=off``: JSONL parsed on every
run); the 30-day count also as "new day" (the newest day's cache entry removed before each run:
the daily case, where the days before were cached by an earlier query). ``trace`` never uses
the cache (it
filters lines on the quoted id before parsing), so its three runs differ only by what the OS
has cached. The cache lives in ``--cache-dir`` (default bench/results/trace-cache; deleted at
the start);
4. SDK overhead per guarded call: a no-op tool guarded (kill switch cached, local JSONL sink with
   its background writer) minus the bare call, median over batches.

Prints medians, ratios and each process's peak RSS (``wait4``). Targets (issue 4): >= 10x faster
than jq, peak memory < 1 GB, one-action lookup < 2 s, SDK overhead < 50 us median.
"""

from __future__ import annotations

import argparse
import compileall
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

CACHE = REPO / "bench" / "results" / "trace-data"
AGENT = "refund-agent"
START = datetime(2026, 10, 26, tzinfo=UTC)
WRITERS = 4
REASONS = [
    "item arrived damaged",
    "order never delivered, tracking shows returned to sender",
    "charged twice for the same order",
    "wrong size, customer wants money back instead of an exchange",
    "subscription renewed after cancellation",
]


def _hex(rng: random.Random, n: int) -> str:
    return rng.getrandbits(n * 4).to_bytes(n // 2, "big").hex()


def generate(root: Path, records: int, days: int, seed: int = 7) -> dict[str, Any]:
    """Write the audit directory; returns facts the benchmark needs (a sample action id)."""
    rng = random.Random(seed)
    per_day = records // days
    sample: str | None = None
    dumps = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False).encode
    for day in range(days):
        date = START + timedelta(days=day)
        part = root / f"dt={date:%Y-%m-%d}"
        part.mkdir(parents=True, exist_ok=True)
        count = per_day + (records - per_day * days if day == days - 1 else 0)
        step = 86400 / count
        actions = [open(part / f"actions-w{w}-000001.jsonl", "w") for w in range(WRITERS)]  # noqa: SIM115 - closed below
        decisions = [open(part / f"decisions-w{w}-000001.jsonl", "w") for w in range(WRITERS)]  # noqa: SIM115
        for i in range(count):
            w = i % WRITERS
            ts = date + timedelta(seconds=i * step + rng.random() * step)
            ts_text = ts.isoformat(timespec="microseconds").replace("+00:00", "Z")
            trace_id, root_span = _hex(rng, 32), _hex(rng, 16)
            unit = f"T-{day * 100000 + i}"
            common = {
                "schema_version": 1,
                "agent": AGENT,
                "release_id": "rel-12" if day < days - 2 else "rel-13",
                "trace_id": trace_id,
                "parent_span_id": root_span,
                "unit_of_work": unit,
            }
            ticket = rng.choice(REASONS)
            decisions[w].write(
                dumps(
                    {
                        **common,
                        "record_type": "input",
                        "span_id": root_span,
                        "parent_span_id": None,
                        "ts": ts_text,
                        "channel": "sqs",
                        "content": {
                            "ticket": unit,
                            "customer": f"c-{rng.randrange(90000)}",
                            "text": ticket,
                        },
                    }
                )
                + "\n"
            )
            decisions[w].write(
                dumps(
                    {
                        **common,
                        "record_type": "model_call",
                        "span_id": _hex(rng, 16),
                        "ts": ts_text,
                        "model_requested": "anthropic.claude-sonnet",
                        "model_answered": "claude-sonnet-4-5-20250929",
                        "prompt_template": "refund-decision",
                        "prompt_version": "v12",
                        "input": None,
                        "output": {"decision": "refund", "reason": ticket},
                        "input_tokens": rng.randrange(800, 4000),
                        "output_tokens": rng.randrange(20, 200),
                        "finish_reason": "tool_use",
                    }
                )
                + "\n"
            )
            tool = rng.choices(["lookup_order", "issue_refund", "send_email"], [40, 35, 25])[0]
            order = f"o-{rng.randrange(10_000_000)}"
            key = "ik1-" + _hex(rng, 32)
            if tool == "issue_refund":
                amount = round(rng.uniform(5, 120), 2)
                args: dict[str, Any] = {
                    "amount": amount,
                    "currency": "USD",
                    "order_id": order,
                    "reason": ticket,
                }
                result: Any = {"refund_id": f"re_{_hex(rng, 12)}", "status": "succeeded"}
                effects = [
                    {
                        "system": "payments",
                        "resource_type": "refund",
                        "resource_id": result["refund_id"],
                        "operation": "create",
                        "reversible": True,
                        "idempotency_key": key,
                        "details": {"amount": amount, "currency": "USD", "order_id": order},
                    }
                ]
            elif tool == "send_email":
                args = {
                    "template": "refund-confirmation",
                    "to": f"c{rng.randrange(90000)}@example.com",
                    "variables": {"order_id": order},
                }
                result = {"message_id": f"<{_hex(rng, 16)}@mail.example.com>"}
                effects = [
                    {
                        "system": "email",
                        "resource_type": "message",
                        "resource_id": result["message_id"],
                        "operation": "send",
                        "reversible": False,
                        "idempotency_key": key,
                        "details": {},
                    }
                ]
            else:
                args = {"order_id": order}
                result = {
                    "order_id": order,
                    "status": "delivered",
                    "total": round(rng.uniform(5, 400), 2),
                    "items": rng.randrange(1, 6),
                }
                effects = []
            action_id = "act-" + _hex(rng, 16)
            if day == days // 2 and i == count // 2:
                sample = action_id
            actions[w].write(
                dumps(
                    {
                        **common,
                        "record_type": "action",
                        "span_id": _hex(rng, 16),
                        "ts": ts_text,
                        "action_id": action_id,
                        "tool": tool,
                        "args": args,
                        "result": result,
                        "status": "executed",
                        "error": None,
                        "idempotency_key": key,
                        "effects": effects,
                        "duration_ms": round(rng.uniform(20, 900), 1),
                    }
                )
                + "\n"
            )
        for f in actions + decisions:
            f.close()
    facts = {"records": records, "days": days, "seed": seed, "sample_action": sample}
    (root / "facts.json").write_text(json.dumps(facts))
    return facts


def ensure_data(records: int, days: int, base: Path = CACHE) -> tuple[Path, dict[str, Any]]:
    root = base / f"{records}-{days}"
    facts_file = root / "facts.json"
    if facts_file.exists():
        return root, json.loads(facts_file.read_text())
    if root.exists():
        shutil.rmtree(root)
    print(
        f"generating {records:,} action records over {days} days in {root} (once) ...", flush=True
    )
    started = time.perf_counter()
    facts = generate(root, records, days)
    size = sum(p.stat().st_size for p in root.rglob("*.jsonl"))
    print(
        f"  done in {time.perf_counter() - started:.0f} s, {size / 1e9:.2f} GB on disk", flush=True
    )
    return root, facts


def timed(cmd: list[str], env: dict[str, str] | None = None) -> tuple[float, int, str]:
    """(seconds, peak RSS in bytes of the process, stdout)."""
    with tempfile.TemporaryFile() as out:
        started = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.PIPE, env=env)
        _, status, usage = os.wait4(proc.pid, 0)
        took = time.perf_counter() - started
        proc.returncode = os.waitstatus_to_exitcode(status)
        err = proc.stderr.read().decode() if proc.stderr else ""
        out.seek(0)
        text = out.read().decode()
    if proc.returncode != 0:
        raise SystemExit(f"command failed ({proc.returncode}): {' '.join(cmd)}\n{err}")
    return took, usage.ru_maxrss * 1024, text


def measure(
    label: str,
    cmd: list[str],
    runs: int,
    env: dict[str, str] | None = None,
    before: Callable[[], None] | None = None,
) -> tuple[float, int, str]:
    """Median wall time of ``runs`` runs (``before`` runs untimed ahead of each one)."""
    times, peaks, text = [], [], ""
    for _ in range(runs):
        if before is not None:
            before()
        t, peak, text = timed(cmd, env)
        times.append(t)
        peaks.append(peak)
    med = statistics.median(times)
    print(
        f"  {label:<44} median {med:7.2f} s  (n={runs}, min {min(times):.2f}, max "
        f"{max(times):.2f})  peak RSS {max(peaks) / 2**20:6.0f} MiB",
        flush=True,
    )
    return med, max(peaks), text


def action_files(root: Path, days: list[str] | None = None) -> list[str]:
    parts = sorted(p for p in root.iterdir() if p.name.startswith("dt="))
    if days is not None:
        parts = [p for p in parts if p.name[3:] in days]
    return [str(f) for p in parts for f in sorted(p.glob("actions-*.jsonl"))]


JQ_FILTER = (
    'reduce (inputs | select(.record_type == "action" and .agent == $agent and .tool == $tool '
    'and .ts >= $since and .ts < $until and (.args.amount | type) == "number" '
    "and .args.amount > 30)) as $r (0; . + 1)"
)


def jq_count(files: list[str], since: str, until: str) -> list[str]:
    return [
        "jq",
        "-n",
        "--arg",
        "agent",
        AGENT,
        "--arg",
        "tool",
        "issue_refund",
        "--arg",
        "since",
        since,
        "--arg",
        "until",
        until,
        JQ_FILTER,
        *files,
    ]


def agentctl_count(root: Path, since: str, until: str) -> list[str]:
    return [
        sys.executable,
        "-m",
        "agentctl",
        "actions",
        AGENT,
        "--source",
        str(root),
        "--since",
        since,
        "--until",
        until,
        "--tool",
        "issue_refund",
        "--where",
        "args.amount > 30",
        "--count",
        "-o",
        "json",
    ]


def sdk_overhead(calls: int = 20000, batch: int = 500) -> tuple[float, float, float]:
    """(median guarded call us, median bare call us, overhead us)."""
    from agentctl.sdk import Agent, LocalJsonlSink, Writer

    class Ssm:  # the kill switch is read once per ttl; this answers those reads
        def get_parameters(self, **_: Any) -> dict[str, Any]:
            return {
                "Parameters": [
                    {"Name": "/r", "Value": '{"tools": {"issue_refund": {"enabled": true}}}'},
                    {"Name": "/m", "Value": "live"},
                ]
            }

    tmp = Path(tempfile.mkdtemp(prefix="agentctl-bench-sdk-"))
    try:
        agent = Agent(
            AGENT,
            release_id="rel-12",
            ssm=Ssm(),
            registry_parameter="/r",
            shadow_parameter="/m",
            writer=Writer(LocalJsonlSink(tmp), max_buffer=10**6),
        )

        def bare(order_id: str, amount: float) -> dict[str, str]:
            return {"refund_id": "re_1"}

        guarded = agent.tool("issue_refund")(bare)
        guarded_times, bare_times = [], []
        with agent.unit_of_work("T-1"):
            for i in range(calls // batch):
                t0 = time.perf_counter()
                for j in range(batch):
                    guarded(f"o-{i}-{j}", 42.5)
                t1 = time.perf_counter()
                for j in range(batch):
                    bare(f"o-{i}-{j}", 42.5)
                t2 = time.perf_counter()
                guarded_times.append((t1 - t0) / batch * 1e6)
                bare_times.append((t2 - t1) / batch * 1e6)
        agent.close()
        assert agent.writer.stats.dropped == 0 and agent.writer.stats.pending == 0
        g, b = statistics.median(guarded_times), statistics.median(bare_times)
        return g, b, g - b
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=1_000_000)
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--jq-runs", type=int, default=3)
    parser.add_argument("--data-dir", type=Path, default=CACHE, help="generated data (reused)")
    parser.add_argument(
        "--cache-dir",
        type=Path,
        default=REPO / "bench" / "results" / "trace-cache",
        help="agentctl's partition cache for the run (deleted first)",
    )
    args = parser.parse_args()
    # agentctl's bytecode, as pip writes it at install: with PYTHONDONTWRITEBYTECODE=1 (set on
    # some machines) a checkout would otherwise compile its modules again in every timed run
    compileall.compile_dir(str(REPO / "agentctl"), quiet=1)

    root, facts = ensure_data(args.records, args.days, args.data_dir)
    since = f"{START:%Y-%m-%d}T00:00:00Z"
    until = f"{START + timedelta(days=args.days):%Y-%m-%d}T00:00:00Z"
    files = action_files(root)
    size = sum(Path(f).stat().st_size for f in files)
    print(
        f"data: {root} ({facts['records']:,} actions, {len(files)} action files, "
        f"{size / 1e9:.2f} GB of action JSONL; decisions files alongside)"
    )
    has_jq = shutil.which("jq") is not None
    if not has_jq:
        print("jq is NOT installed: the jq baseline and ratios are skipped (apt-get install -y jq)")

    cache_dir = args.cache_dir
    shutil.rmtree(cache_dir, ignore_errors=True)
    warm_env = {**os.environ, "AGENTCTL_TRACE_CACHE": str(cache_dir)}
    direct_env = {**os.environ, "AGENTCTL_TRACE_CACHE": "off"}

    print(
        f"\n1. actions over {args.days} days, --tool issue_refund --where 'args.amount > 30' "
        "--count"
    )
    count_cmd = agentctl_count(root, since, until)
    # cold: the cache emptied before each run, so cold is a median too, not one sample; the last
    # cold run leaves the cache the warm runs read
    c_t, c_peak, c_out = measure(
        "agentctl, cold (parses JSONL, builds cache)",
        count_cmd,
        args.runs,
        warm_env,
        before=lambda: shutil.rmtree(cache_dir, ignore_errors=True),
    )
    a_t, a_peak, a_out = measure(
        "agentctl, warm (day-partition cache)", count_cmd, args.runs, warm_env
    )
    # the daily case: yesterday's query cached the days before it; the newest day is parsed
    last = f"dt={START + timedelta(days=args.days - 1):%Y-%m-%d}"

    def newest_day_uncached() -> None:
        for manifest in cache_dir.glob(f"*/{last}/manifest.json"):
            manifest.unlink()

    i_t, i_peak, i_out = measure(
        f"agentctl, new day ({args.days - 1} days cached)",
        count_cmd,
        args.runs,
        warm_env,
        before=newest_day_uncached,
    )
    n_t, n_peak, n_out = measure(
        "agentctl, cache off (JSONL every time)", count_cmd, args.runs, direct_env
    )
    a_count = json.loads(a_out)["count"]
    assert json.loads(c_out)["count"] == a_count == json.loads(n_out)["count"]
    assert json.loads(i_out)["count"] == a_count
    ratio = ratio_direct = ratio_cold = None
    if has_jq:
        j_t, _, j_out = measure(
            "jq same filter + count", jq_count(files, since, until), args.jq_runs
        )
        assert int(j_out) == a_count, f"jq counted {j_out.strip()}, agentctl {a_count}"
        ratio, ratio_direct, ratio_cold = j_t / a_t, j_t / n_t, j_t / c_t
        print(
            f"  all count {a_count:,}; vs jq: warm {ratio:.1f}x, new day {j_t / i_t:.1f}x, "
            f"cache off {ratio_direct:.1f}x, cold {ratio_cold:.1f}x faster"
        )

    day = START + timedelta(days=args.days // 2)
    d_since, d_until = f"{day:%Y-%m-%d}T00:00:00Z", f"{day + timedelta(days=1):%Y-%m-%d}T00:00:00Z"
    print(f"\n2. one-day window {day:%Y-%m-%d} (partition pruning)")
    day_cmd = agentctl_count(root, d_since, d_until)
    d_t, d_peak, d_out = measure("agentctl, warm", day_cmd, args.runs, warm_env)
    dn_t, dn_peak, _ = measure("agentctl, cache off", day_cmd, args.runs, direct_env)
    if has_jq:
        dj_t, _, dj_out = measure(
            "jq over that day's files",
            jq_count(action_files(root, [f"{day:%Y-%m-%d}"]), d_since, d_until),
            args.jq_runs,
        )
        assert int(dj_out) == json.loads(d_out)["count"]
        print(f"  vs jq: warm {dj_t / d_t:.1f}x, cache off {dj_t / dn_t:.1f}x faster")

    sample = facts["sample_action"]
    print(f"\n3. one action by id ({sample}), no time hint: find over {args.days} days + chain")
    trace_cmd = [
        sys.executable,
        "-m",
        "agentctl",
        "trace",
        sample,
        "--source",
        str(root),
        "-o",
        "json",
    ]
    tc_t, tc_peak, _ = measure("agentctl trace, first (cache on)", trace_cmd, 1, warm_env)
    t_t, t_peak, t_out = measure("agentctl trace, warm (cache on)", trace_cmd, args.runs, warm_env)
    tn_t, tn_peak, _ = measure("agentctl trace, cache off", trace_cmd, args.runs, direct_env)
    chain = json.loads(t_out)["traces"][0]["chain"]
    assert [r["record_type"] for r in chain] == ["input", "model_call", "action"], chain
    if has_jq:
        tj_t, _, tj_out = measure(
            "jq select(.action_id == ID) (find only)",
            ["jq", "-c", "--arg", "id", sample, "select(.action_id == $id)", *files],
            args.jq_runs,
        )
        assert sample in tj_out
        print(
            f"  vs jq (which only finds the line): first {tj_t / tc_t:.1f}x, warm "
            f"{tj_t / t_t:.1f}x, cache off {tj_t / tn_t:.1f}x faster"
        )

    print("\n4. SDK overhead per guarded call (kill switch cached, local JSONL sink)")
    g, b, over = sdk_overhead()
    print(f"  guarded {g:.1f} us, bare {b:.2f} us: overhead {over:.1f} us median per call")

    peak = max(c_peak, a_peak, i_peak, n_peak, d_peak, dn_peak, tc_peak, t_peak, tn_peak)
    size_cache = sum(p.stat().st_size for p in cache_dir.rglob("*.parquet"))

    def verdict(ok: bool | None) -> str:
        return "n/a" if ok is None else ("met" if ok else "NOT met")

    print("\nsummary")
    print(
        f"  actions, {args.days} days: warm {a_t:.2f} s, new day {i_t:.2f} s, cache off "
        f"{n_t:.2f} s, cold {c_t:.2f} s"
    )
    if ratio:
        print(
            f"  vs jq: warm {ratio:.1f}x, new day {j_t / i_t:.1f}x, cache off "
            f"{ratio_direct:.1f}x, cold {ratio_cold:.1f}x"
            f"  (target >= 10x: warm {verdict(ratio >= 10)}, new day "
            f"{verdict(j_t / i_t >= 10)}, cache off "
            f"{verdict((ratio_direct or 0) >= 10)}, cold {verdict((ratio_cold or 0) >= 10)})"
        )
    print(
        f"  peak memory of any agentctl run: {peak / 2**20:.0f} MiB  (target < 1024 MiB: "
        f"{verdict(peak < 2**30)})"
    )
    print(
        f"  one-action trace: warm {t_t:.2f} s, cache off {tn_t:.2f} s, first {tc_t:.2f} s  "
        f"(target < 2 s: warm {verdict(t_t < 2)}, cache off {verdict(tn_t < 2)}, first "
        f"{verdict(tc_t < 2)})"
    )
    print(f"  SDK overhead: {over:.1f} us  (target < 50 us: {verdict(over < 50)})")
    print(
        f"  cache size: {size_cache / 1e6:.0f} MB of Parquet for "
        f"{sum(Path(f).stat().st_size for f in files) / 1e6:.0f} MB of action JSONL"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
