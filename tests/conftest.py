"""Shared fixtures: moto started before any client, a fresh store, the example runbooks."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from moto import mock_aws

from agentctl.aws import Aws, AwsSettings
from agentctl.clock import FakeClock
from agentctl.incidents.sqlite import SqliteStore
from agentctl.ops import Agentctl
from agentctl.sandbox import seed
from agentctl.spec import load_agent

REPO = Path(__file__).resolve().parents[1]
RUNBOOKS = REPO / "runbooks"


@pytest.fixture(autouse=True)
def aws_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Fake credentials and region; never a real account, never the user's config."""
    for key in (
        "AWS_PROFILE",
        "AWS_ENDPOINT_URL",
        "AWS_DEFAULT_PROFILE",
        "AGENTCTL_STORE",
        "AGENTCTL_RUNBOOKS",
    ):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_SESSION_TOKEN", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("AWS_REGION", "us-east-1")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "aws-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "aws-credentials"))
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))


@pytest.fixture
def moto() -> Iterator[None]:
    with mock_aws():
        yield


@pytest.fixture
def aws(moto: None) -> Aws:
    return Aws(AwsSettings(region="us-east-1", max_attempts=1))


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def runbooks(tmp_path: Path) -> Path:
    """A private copy of the example runbooks (tests may edit it)."""
    target = tmp_path / "runbooks"
    shutil.copytree(RUNBOOKS, target)
    return target


@pytest.fixture
def store(tmp_path: Path) -> Iterator[SqliteStore]:
    s = SqliteStore(tmp_path / "incidents.db")
    yield s
    s.close_connection()


@pytest.fixture
def seeded(aws: Aws, runbooks: Path) -> Aws:
    """The example agents' resources exist in moto."""
    for agent in ("refund-agent", "ticket-triager"):
        seed(aws, load_agent(agent, runbooks))
    return aws


@pytest.fixture
def agentctl(seeded: Aws, runbooks: Path, store: SqliteStore, clock: FakeClock) -> Agentctl:
    ac = Agentctl(seeded, runbooks_dir=runbooks, store=store, clock=clock, user="oncall")
    ac.engine.verify_interval = 0.01
    return ac
