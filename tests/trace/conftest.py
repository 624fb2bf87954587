"""The end-to-end fixtures of tests/cli (moto server, installed script) for the trace commands."""

from tests.cli.conftest import (  # noqa: F401 - re-exported fixtures
    cli,
    cli_env,
    endpoint,
    moto_server,
    sandbox_aws,
)
