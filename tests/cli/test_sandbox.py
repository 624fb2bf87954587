"""`agentctl sandbox up` runs a local endpoint other commands can point at."""

from __future__ import annotations

import os
import queue
import signal
import socket
import subprocess
import threading
from typing import IO

import pytest

from tests.cli.conftest import AGENTCTL, Run

pytestmark = pytest.mark.e2e


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def drain(stream: IO[bytes], lines: queue.Queue[str], seen: list[str]) -> None:
    """Keep reading the server's output so a full pipe can never block it."""
    for raw in iter(stream.readline, b""):
        line = raw.decode(errors="replace")
        seen.append(line)
        lines.put(line)


def test_sandbox_up_then_contain_against_it(cli: Run, cli_env: dict[str, str]) -> None:
    port = free_port()
    env = {k: v for k, v in cli_env.items() if k != "AWS_ENDPOINT_URL"}
    server = subprocess.Popen(
        [str(AGENTCTL), "sandbox", "up", "--port", str(port)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    assert server.stdout is not None
    lines: queue.Queue[str] = queue.Queue()
    seen: list[str] = []
    reader = threading.Thread(target=drain, args=(server.stdout, lines, seen), daemon=True)
    reader.start()
    try:
        banner = ""
        while "Ctrl-C stops it" not in banner:
            try:
                banner += lines.get(timeout=180)  # a loaded CI machine is slow to import moto
            except queue.Empty:
                pytest.fail(f"sandbox did not start: {''.join(seen)}")
        url = f"http://127.0.0.1:{port}"
        assert f"export AWS_ENDPOINT_URL={url}" in banner
        proc = cli("contain", "refund-agent", "--yes", "--endpoint-url", url, env=env)
        assert proc.returncode == 0, proc.stdout + proc.stderr
        assert "2 changed" in proc.stdout
    finally:
        os.killpg(server.pid, signal.SIGINT)
        try:
            server.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
            pytest.fail(f"sandbox did not stop on Ctrl-C; its output: {''.join(seen)}")
    assert server.returncode == 0, "".join(seen)  # Ctrl-C is the normal way to stop it


def test_seed_refuses_without_an_endpoint(cli: Run, cli_env: dict[str, str]) -> None:
    env = {k: v for k, v in cli_env.items() if k != "AWS_ENDPOINT_URL"}
    proc = cli("sandbox", "seed", env=env)
    assert proc.returncode == 2
    assert "sandbox seed needs a local endpoint" in proc.stderr
