"""The ``audit:`` section of an agent spec: where the agent's decision traces and action records
live, and (optionally) the Athena table over them.

``location`` is a local directory or an ``s3://bucket/prefix`` URI holding the day-partitioned
layout of :mod:`agentctl.sdk.layout`. A relative local path resolves against the directory of the
spec file (not the current directory), so ``agentctl actions`` reads the same files wherever the
on-call runs it from.
"""

from __future__ import annotations

import re
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, field_validator


class _AuditModel(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, defer_build=True)


class AthenaSpec(_AuditModel):
    """Athena settings for ``--engine athena`` (only for an ``s3://`` location)."""

    database: str = Field(default="agentctl", pattern=r"^[a-z0-9_]{1,128}$")
    table: str | None = Field(
        default=None,
        pattern=r"^[a-z0-9_]{1,128}$",
        description="Table name; default `<agent>_records` (dashes become underscores).",
    )
    workgroup: str = Field(default="primary", min_length=1)
    output_location: str | None = Field(
        default=None, description="s3:// URI for query results (default: the workgroup's)."
    )

    @field_validator("output_location")
    @classmethod
    def _s3(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith("s3://"):
            raise ValueError("must be an s3:// URI")
        return value


class AuditSpec(_AuditModel):
    """Where the agent's trace and action records are written (by ``agentctl.sdk``) and read."""

    location: str = Field(
        min_length=1,
        description="Local directory (relative paths: against the spec file's directory) "
        "or `s3://bucket/prefix`.",
    )
    athena: AthenaSpec | None = None

    @field_validator("location")
    @classmethod
    def _location(cls, value: str) -> str:
        if value.startswith("s3://") and not re.match(
            r"^s3://[a-z0-9][a-z0-9.\-]{1,62}(/|$)", value
        ):
            raise ValueError("not a valid s3://bucket/prefix URI")
        if "://" in value and not value.startswith("s3://"):
            raise ValueError("only local paths and s3:// URIs are supported")
        return value

    @property
    def is_s3(self) -> bool:
        return self.location.startswith("s3://")

    def resolve(self, spec_dir: str | Path) -> str:
        """The location as a reader needs it: S3 URIs as they are, local paths made absolute."""
        if self.is_s3:
            return self.location
        path = Path(self.location).expanduser()
        return str(path if path.is_absolute() else (Path(spec_dir) / path).resolve())
