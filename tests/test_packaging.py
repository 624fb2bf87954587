"""`pip install .` (not only editable) ships the templates, the schema and the example runbooks."""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--quiet",
            "--no-deps",
            "--no-build-isolation",
            "-w",
            str(out),
            str(REPO),
        ],
        check=True,
    )
    [built] = out.glob("agentctl-*.whl")
    return built


def test_wheel_contains_data_files(wheel: Path) -> None:
    names = set(zipfile.ZipFile(wheel).namelist())
    assert "agentctl/_data/templates/incident.md.j2" in names
    assert "agentctl/schema/agent-spec.schema.json" in names
    assert "agentctl/_data/runbooks/refund-agent.yaml" in names
    assert not any(n.startswith("tests/") for n in names)


def test_installed_copy_renders_a_template(wheel: Path, tmp_path: Path) -> None:
    """Install the wheel (without deps: they are in this venv) and use it from elsewhere."""
    target = tmp_path / "site"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--quiet",
            "--no-deps",
            "--target",
            str(target),
            str(wheel),
        ],
        check=True,
    )
    code = (
        "import agentctl.templates as t, pathlib;"
        "d = t.templates_dir(); print(d);"
        "assert 'site' in str(d), d;"
        "print(t.render('incident.md.j2', incident={'id': 'INC-1', 'agent': 'a', 'status': 'open',"
        " 'opened_at': 'now', 'opened_by': 'me', 'reason': '{{ 7*7 }}', 'closed_at': None},"
        " changes=[], journal=[]))"
    )
    env = {**os.environ, "PYTHONPATH": str(target)}
    proc = subprocess.run(
        [sys.executable, "-c", code],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=True,
    )
    assert "# INC-1: a" in proc.stdout
    assert "**Reason:** {{ 7*7 }}" in proc.stdout  # data stays data, never template source
