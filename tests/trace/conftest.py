"""Trace tests run twice: with the partition cache (the default) and without it. The
end-to-end fixtures of tests/cli (moto server, installed script) are re-exported here."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.cli.conftest import (  # noqa: F401 - re-exported fixtures
    cli,
    cli_env,
    endpoint,
    moto_server,
    sandbox_aws,
)


@pytest.fixture(autouse=True, params=["cache", "nocache"])
def trace_cache(
    request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> str:
    value = str(tmp_path / "trace-cache") if request.param == "cache" else "off"
    monkeypatch.setenv("AGENTCTL_TRACE_CACHE", value)
    if "cli_env" in request.fixturenames:
        request.getfixturevalue("cli_env")["AGENTCTL_TRACE_CACHE"] = value
    return str(request.param)
