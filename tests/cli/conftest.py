"""End-to-end fixtures: a moto server on 127.0.0.1 and the installed `agentctl` script."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from moto.server import ThreadedMotoServer

from agentctl.aws import Aws, AwsSettings
from agentctl.sandbox import seed
from agentctl.spec import load_agent

AGENTCTL = Path(sys.executable).parent / "agentctl"  # the console script pip installed


@pytest.fixture(scope="session")
def moto_server() -> Iterator[str]:
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


@pytest.fixture
def endpoint(moto_server: str) -> str:
    """A clean server for each test."""
    request = urllib.request.Request(f"{moto_server}/moto-api/reset", method="POST")
    urllib.request.urlopen(request).read()
    return moto_server


@pytest.fixture
def cli_env(endpoint: str, tmp_path: Path, runbooks: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "AGENTCTL_"))}
    env.update(
        {
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_REGION": "us-east-1",
            "AWS_ENDPOINT_URL": endpoint,
            "AWS_CONFIG_FILE": str(tmp_path / "aws-config"),
            "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "aws-credentials"),
            "AWS_EC2_METADATA_DISABLED": "true",
            "AGENTCTL_STORE": str(tmp_path / "incidents.db"),
            "AGENTCTL_RUNBOOKS": str(runbooks),
            "NO_COLOR": "1",
            "COLUMNS": "200",
        }
    )
    return env


@pytest.fixture
def sandbox_aws(endpoint: str, runbooks: Path, cli_env: dict[str, str]) -> Aws:
    """Resources of the example agents on the server, created through boto3."""
    aws = Aws(AwsSettings(region="us-east-1", endpoint_url=endpoint))
    for agent in ("refund-agent", "ticket-triager"):
        seed(aws, load_agent(agent, runbooks))
    return aws


Run = Callable[..., subprocess.CompletedProcess[str]]


@pytest.fixture
def cli(cli_env: dict[str, str], tmp_path: Path) -> Run:
    assert AGENTCTL.exists() or shutil.which("agentctl"), "agentctl is not installed"

    def run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(AGENTCTL), *args],
            env=env or cli_env,
            cwd=tmp_path,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )

    return run


def as_json(proc: subprocess.CompletedProcess[str]) -> Any:
    return json.loads(proc.stdout)
