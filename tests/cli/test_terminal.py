"""On a terminal the CLI asks (questionary); the answer decides. Driven through a real pty."""

from __future__ import annotations

import os
import pty
import select
import subprocess
import time

import pytest

from agentctl.aws import Aws
from tests.cli.conftest import AGENTCTL

pytestmark = pytest.mark.e2e


def run_on_tty(args: list[str], env: dict[str, str], answer: bytes) -> tuple[int, str]:
    """Run the CLI with a pty as stdin/stdout; type ``answer`` once the question shows."""
    leader, follower = pty.openpty()
    proc = subprocess.Popen(
        [str(AGENTCTL), *args],
        env={**env, "TERM": "xterm"},
        stdin=follower,
        stdout=follower,
        stderr=follower,
        close_fds=True,
    )
    os.close(follower)
    seen = b""
    answered = False
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        ready, _, _ = select.select([leader], [], [], 0.2)
        if ready:
            try:
                chunk = os.read(leader, 4096)
            except OSError:  # the child closed the terminal
                break
            if not chunk:
                break
            seen += chunk
            if not answered and b"Apply" in seen and b"(y/N)" in seen:
                os.write(leader, answer)
                answered = True
        elif proc.poll() is not None:
            break
    code = proc.wait(timeout=30)
    os.close(leader)
    return code, seen.decode(errors="replace")


def test_no_at_the_prompt_aborts_and_changes_nothing(cli_env, sandbox_aws: Aws) -> None:
    code, out = run_on_tty(["contain", "refund-agent"], cli_env, b"n")
    assert "Apply 2 changes to refund-agent?" in out
    assert code == 6
    assert "aborted: nothing was changed" in out
    policies = sandbox_aws.client("iam").list_role_policies(RoleName="refund-agent-role")
    assert "agentctl-containment" not in policies["PolicyNames"]


def test_yes_at_the_prompt_applies(cli_env, sandbox_aws: Aws) -> None:
    code, out = run_on_tty(["contain", "refund-agent"], cli_env, b"y")
    assert code == 0, out
    policies = sandbox_aws.client("iam").list_role_policies(RoleName="refund-agent-role")
    assert "agentctl-containment" in policies["PolicyNames"]
