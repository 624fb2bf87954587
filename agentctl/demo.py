"""``make demo``: the whole story on an embedded sandbox, through the real CLI.

Starts a local AWS endpoint (moto server on 127.0.0.1), creates the example agent's resources,
and runs each scene's ``agentctl`` commands as subprocesses, printing exactly what an on-call
would see. No AWS account is needed; nothing outside a temporary directory is touched.
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from agentctl.aws import Aws, AwsSettings
from agentctl.sandbox import SANDBOX_ENV, seed, start_server
from agentctl.spec.loader import load_agent

AGENT = "refund-agent"
Scene = Callable[["Demo"], None]


class DemoFailed(Exception):
    pass


class Demo:
    """What a scene gets: run the CLI, narrate, reach the sandbox."""

    def __init__(self, endpoint: str, workdir: Path, runbooks: Path) -> None:
        self.endpoint = endpoint
        self.workdir = workdir
        self.runbooks = runbooks
        self.store = workdir / "incidents.db"
        self.env = {
            **os.environ,
            **SANDBOX_ENV,
            "AWS_ENDPOINT_URL": endpoint,
            "AGENTCTL_STORE": str(self.store),
            "AGENTCTL_RUNBOOKS": str(runbooks),
            "COLUMNS": os.environ.get("COLUMNS", "110"),
        }
        self.env.pop("AWS_PROFILE", None)
        self.aws = Aws(AwsSettings(region=SANDBOX_ENV["AWS_REGION"], endpoint_url=endpoint))
        self.agentctl = [sys.executable, "-m", "agentctl"]

    def say(self, text: str) -> None:
        print(
            f"\n\033[1;36m## {text}\033[0m" if sys.stdout.isatty() else f"\n## {text}", flush=True
        )

    def run(self, *args: str, expect: tuple[int, ...] = (0,)) -> subprocess.CompletedProcess[str]:
        """Run ``agentctl ARGS`` as a subprocess and show the command and its output."""
        print(f"$ agentctl {shlex.join(args)}", flush=True)
        started = time.perf_counter()
        proc = subprocess.run(
            [*self.agentctl, *args],
            env=self.env,
            cwd=self.workdir,
            capture_output=True,
            text=True,
            check=False,
        )
        sys.stdout.write(proc.stdout)
        sys.stdout.write(proc.stderr)
        took = (time.perf_counter() - started) * 1000
        print(f"(exit {proc.returncode}, {took:.0f} ms)", flush=True)
        if proc.returncode not in expect:
            raise DemoFailed(f"`agentctl {shlex.join(args)}` exited {proc.returncode}")
        return proc


def containment(demo: Demo) -> None:
    demo.say("The refund agent is issuing wrong refunds. Look before touching anything:")
    demo.run("contain", AGENT, "--dry-run")
    demo.say("Contain it: revoke its tools (IAM deny + tool registry) and stop its functions")
    demo.run("contain", AGENT, "--hard", "--yes", "--reason", "refunding every ticket twice")
    demo.say("Every lever, read back from AWS")
    demo.run("status", AGENT)
    demo.say("A second contain changes nothing and says so")
    demo.run("contain", AGENT, "--hard", "--yes")


def recovery(demo: Demo) -> None:
    demo.say("After the fix: resume restores the exact before-state")
    demo.run("resume", AGENT, "--yes", "--reason", "fixed prompt deployed")
    demo.run("status", AGENT)
    demo.say("The incident timeline: who changed what, when, before and after")
    demo.run("incidents", "list")


def scenes() -> list[Scene]:
    """The scenes in story order: the agent misbehaves, is contained, its trace is read, its
    intake drained, its damage rolled back, and finally it is resumed."""
    from agentctl.compensate import demo as rollback
    from agentctl.drain import demo as drain
    from agentctl.trace import demo as trace

    return [
        trace.agent_runs,
        containment,
        trace.after_contain,
        drain.scene,
        rollback.scene,
        recovery,
    ]


def main() -> int:
    workdir = Path(tempfile.mkdtemp(prefix="agentctl-demo-"))
    runbooks = workdir / "runbooks"
    shutil.copytree(_runbooks_source(), runbooks)
    os.environ.update(SANDBOX_ENV)
    server, endpoint = start_server(0)
    print(f"sandbox: moto server at {endpoint}; state in {workdir}")
    try:
        demo = Demo(endpoint, workdir, runbooks)
        created = seed(demo.aws, load_agent(AGENT, runbooks)).created
        print(f"created {len(created)} resources for {AGENT}: " + ", ".join(created))
        for scene in scenes():
            scene(demo)
    except DemoFailed as exc:
        print(f"demo failed: {exc}", file=sys.stderr)
        return 1
    finally:
        server.stop()
        shutil.rmtree(workdir, ignore_errors=True)
    print("\ndemo finished: every command above ran the real CLI against the local sandbox")
    return 0


def _runbooks_source() -> Path:
    """The example runbooks: the repo's, or the copy shipped inside the installed package."""
    repo = Path(__file__).resolve().parents[1] / "runbooks"
    if repo.is_dir():
        return repo
    return Path(__file__).resolve().parent / "_data" / "runbooks"


if __name__ == "__main__":
    sys.exit(main())
