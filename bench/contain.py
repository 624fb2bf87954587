"""Benchmark: `agentctl contain --yes` end to end vs the same changes made with the aws CLI.

Starts a local AWS endpoint that adds a fixed latency to every request (default 50 ms, like a
real region), creates an agent with a role, a tool registry, two functions and a shadow flag, and
times, in one run and alternating:

* ``agentctl contain refund-agent --hard --yes`` (process start to verified), and
* a shell script making the same four changes with the ``aws`` CLI, one call after another
  (put-role-policy, ssm put-parameter, lambda put-function-concurrency x2), and
* a shell script doing the same work as agentctl, call for call (caller identity, read each
  target, write it, read it back: 13 calls), and
* the floor (``bench/contain_floor.py``): that same work in bare botocore, concurrent, with no
  spec, journal or output. No Python + botocore tool can be faster; it shows how much of
  agentctl's time is agentctl's own, and which ratio against the aws CLI is reachable at all,

resetting the agent between runs. Prints both medians, the ratio, and agentctl's time in units
of the injected round trip. Also times ``agentctl --help`` against ``python -c pass``.

    python bench/contain.py [--latency-ms 50] [--runs 7]

The aws CLI (v1, from PyPI) is installed into its own virtualenv under bench/results/ on first
use, so it cannot change the botocore version agentctl runs with.
"""

from __future__ import annotations

import argparse
import compileall
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(HERE))

from latency_endpoint import LatencyEndpoint  # noqa: E402

from agentctl.aws import Aws, AwsSettings  # noqa: E402
from agentctl.sandbox import SANDBOX_ENV, seed  # noqa: E402
from agentctl.spec import load_agent  # noqa: E402

AGENT = "refund-agent"
AWSCLI_VENV = HERE / "results" / "awscli-venv"


def awscli() -> Path | None:
    exe = AWSCLI_VENV / "bin" / "aws"
    if exe.exists():
        return exe
    print("installing the aws CLI (v1) into", AWSCLI_VENV, flush=True)
    subprocess.run([sys.executable, "-m", "venv", str(AWSCLI_VENV)], check=True)
    proc = subprocess.run(
        [str(AWSCLI_VENV / "bin" / "pip"), "install", "--quiet", "awscli"], check=False
    )
    return exe if proc.returncode == 0 and exe.exists() else None


def reset(aws: Aws) -> None:
    """Back to live: no deny policy, registry enabled, no reserved concurrency."""
    iam, ssm, lam = aws.client("iam"), aws.client("ssm"), aws.client("lambda")
    if (
        "agentctl-containment"
        in iam.list_role_policies(RoleName="refund-agent-role")["PolicyNames"]
    ):
        iam.delete_role_policy(RoleName="refund-agent-role", PolicyName="agentctl-containment")
    doc = json.loads(ssm.get_parameter(Name="/agents/refund-agent/tools")["Parameter"]["Value"])
    for entry in doc["tools"].values():
        entry["enabled"] = True
    ssm.put_parameter(
        Name="/agents/refund-agent/tools", Value=json.dumps(doc), Type="String", Overwrite=True
    )
    for fn in ("refund-agent-worker", "refund-agent-planner"):
        lam.delete_function_concurrency(FunctionName=fn)


def aws_script(aws_exe: Path) -> str:
    policy = json.dumps(
        {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Effect": "Deny",
                    "Action": ["lambda:InvokeFunction", "ses:SendEmail"],
                    "Resource": "*",
                }
            ],
        }
    )
    registry = json.dumps(
        {"tools": {t: {"enabled": False} for t in ("lookup_order", "issue_refund", "send_email")}}
    )
    return "\n".join(
        [
            "set -e",
            f"{aws_exe} iam put-role-policy --role-name refund-agent-role "
            f"--policy-name agentctl-containment --policy-document '{policy}'",
            f"{aws_exe} ssm put-parameter --name /agents/refund-agent/tools --type String "
            f"--overwrite --value '{registry}' > /dev/null",
            f"{aws_exe} lambda put-function-concurrency --function-name refund-agent-worker "
            "--reserved-concurrent-executions 0 > /dev/null",
            f"{aws_exe} lambda put-function-concurrency --function-name refund-agent-planner "
            "--reserved-concurrent-executions 0 > /dev/null",
        ]
    )


def aws_script_same_work(aws_exe: Path) -> str:
    """What agentctl does, call for call: who am I, read each target, write it, read it back."""
    writes = aws_script(aws_exe).splitlines()[1:]
    a = str(aws_exe)
    reads = [
        f"{a} iam get-role-policy --role-name refund-agent-role "
        "--policy-name agentctl-containment > /dev/null 2>&1 || true",
        f"{a} ssm get-parameter --name /agents/refund-agent/tools > /dev/null",
        f"{a} lambda get-function-concurrency --function-name refund-agent-worker > /dev/null",
        f"{a} lambda get-function-concurrency --function-name refund-agent-planner > /dev/null",
    ]
    reads_back = [r.replace(" 2>&1 || true", "") for r in reads]
    return "\n".join(
        ["set -e", f"{a} sts get-caller-identity > /dev/null", *reads, *writes, *reads_back]
    )


def timed(
    cmd: list[str], env: dict[str, str], cwd: Path
) -> tuple[float, subprocess.CompletedProcess[str]]:
    start = time.perf_counter()
    proc = subprocess.run(cmd, env=env, cwd=cwd, capture_output=True, text=True, check=False)
    return (time.perf_counter() - start) * 1000, proc


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--latency-ms", type=float, default=50.0)
    parser.add_argument("--runs", type=int, default=7)
    args = parser.parse_args()
    # agentctl's bytecode, as pip writes it at install (see bench/trace.py)
    compileall.compile_dir(str(REPO / "agentctl"), quiet=1)
    agentctl_exe = str(Path(sys.executable).parent / "agentctl")
    aws_exe = awscli()
    work = Path(tempfile.mkdtemp(prefix="agentctl-bench-"))
    runbooks = work / "runbooks"
    shutil.copytree(REPO / "runbooks", runbooks)
    os.environ.update(SANDBOX_ENV)
    with LatencyEndpoint(args.latency_ms) as url:
        env = {
            **os.environ,
            **SANDBOX_ENV,
            "AWS_ENDPOINT_URL": url,
            "AGENTCTL_RUNBOOKS": str(runbooks),
            "AGENTCTL_STORE": str(work / "s.db"),
            "AWS_EC2_METADATA_DISABLED": "true",
        }
        aws = Aws(AwsSettings(region="us-east-1", endpoint_url=url))
        seed(aws, load_agent(AGENT, runbooks))
        ours: list[float] = []
        engine: list[float] = []
        theirs: list[float] = []
        same: list[float] = []
        floor: list[float] = []
        script = work / "contain.sh"
        script_same = work / "contain-same-work.sh"
        if aws_exe:
            script.write_text(aws_script(aws_exe))
            script_same.write_text(aws_script_same_work(aws_exe))
        for i in range(args.runs):
            reset(aws)
            ms, proc = timed(
                [agentctl_exe, "contain", AGENT, "--hard", "--yes", "-o", "json"], env, work
            )
            if proc.returncode != 0:
                sys.exit(f"agentctl failed: {proc.stdout}{proc.stderr}")
            result = json.loads(proc.stdout)
            assert result["changed"] == 4, result
            ours.append(ms)
            engine.append(result["total_ms"])
            reset(aws)
            ms, proc = timed([sys.executable, str(HERE / "contain_floor.py")], env, work)
            if proc.returncode != 0:
                sys.exit(f"floor script failed: {proc.stderr}")
            floor.append(ms)
            if aws_exe:
                reset(aws)
                ms, proc = timed(["bash", str(script)], env, work)
                if proc.returncode != 0:
                    sys.exit(f"aws CLI script failed: {proc.stderr}")
                theirs.append(ms)
                reset(aws)
                ms, proc = timed(["bash", str(script_same)], env, work)
                if proc.returncode != 0:
                    sys.exit(f"aws CLI script failed: {proc.stderr}")
                same.append(ms)
            print(
                f"run {i + 1}/{args.runs}: agentctl {ours[-1]:.0f} ms, floor {floor[-1]:.0f} ms"
                + (f", aws CLI {theirs[-1]:.0f} ms / {same[-1]:.0f} ms" if theirs else ""),
                flush=True,
            )
        help_ms = [timed([agentctl_exe, "--help"], env, work)[0] for _ in range(args.runs)]
        pass_ms = [timed([sys.executable, "-c", "pass"], env, work)[0] for _ in range(args.runs)]
    rtt = args.latency_ms
    med = statistics.median
    print()
    print(f"injected latency per request: {rtt:g} ms; runs: {args.runs} (medians below)")
    print(
        f"agentctl contain --hard --yes (process start → verified): {med(ours):7.0f} ms"
        f"  = {med(ours) / rtt:.1f} round trips"
    )
    print(
        f"  of which in the engine (read, apply, verify, journal): {med(engine):7.0f} ms"
        f"  = {med(engine) / rtt:.1f} round trips"
    )
    print(
        f"  process start-up, imports, spec, store, output:       {med(ours) - med(engine):7.0f} ms"
    )
    line = "floor: same work in bare botocore, concurrent:"
    print(f"{line:<55}{med(floor):7.0f} ms  agentctl = {med(ours) / med(floor):.2f}x the floor")
    if theirs:
        line = "aws CLI script, the 4 changes one after another:"
        print(f"{line:<55}{med(theirs):7.0f} ms  ratio {med(theirs) / med(ours):.1f}x")
        line = "aws CLI script, same work (identity, read, write, read back: 13 calls):"
        print(f"{line:<55}{med(same):7.0f} ms  ratio {med(same) / med(ours):.1f}x")
        print(
            "best ratio any Python + botocore tool could reach (aws CLI / floor): "
            f"{med(theirs) / med(floor):.1f}x (4 changes), "
            f"{med(same) / med(floor):.1f}x (same work)"
        )
    else:
        print("aws CLI could not be installed: no comparison")
    print(f"agentctl --help:                                       {med(help_ms):7.0f} ms")
    print(f"python -c pass:                                        {med(pass_ms):7.0f} ms")
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
