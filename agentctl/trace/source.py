"""Where records live: a local directory or an ``s3://bucket/prefix``, in the day layout.

:func:`open_location` gives a :class:`Location` that lists the record files of the day partitions
a time window touches (partition pruning happens here, before any file is opened) and opens them.
S3 locations use a client passed in (``Aws.client("s3")``); nothing here builds one.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import IO, Any

from agentctl.audit_layout import (
    ACTIONS_PREFIX,
    DECISIONS_PREFIX,
    JSONL_SUFFIXES,
    OTLP_SUFFIXES,
    days_between,
    partition_day,
)
from agentctl.errors import BadInputError


@dataclass(frozen=True)
class RecordFile:
    """One file: ``name`` is what users see (path or s3 URI); ``kind`` is actions/decisions/otlp."""

    name: str
    kind: str
    size: int
    # changes when the content may have: mtime, ctime and inode (local; a copy that keeps the
    # size and mtime, `cp -p` or `rsync -t`, still gets a new ctime) or ETag (S3)
    stamp: str = ""

    @property
    def partition(self) -> str:
        """The ``dt=YYYY-MM-DD`` directory the file sits in."""
        return self.name.rstrip("/").split("/")[-2]


def file_kind(basename: str) -> str | None:
    if basename.endswith(OTLP_SUFFIXES):
        return "otlp"
    if not basename.endswith(JSONL_SUFFIXES):
        return None
    if basename.startswith(ACTIONS_PREFIX):
        return "actions"
    if basename.startswith(DECISIONS_PREFIX):
        return "decisions"
    return "mixed"  # a JSONL file written by something else: read every record type in it


class Location:
    url: str

    def files(
        self, since: datetime | None, until: datetime | None, kinds: frozenset[str]
    ) -> list[RecordFile]:
        raise NotImplementedError

    def open(self, file: RecordFile) -> IO[bytes]:
        raise NotImplementedError


class LocalLocation(Location):
    def __init__(self, root: Path) -> None:
        self.root = root
        self.url = str(root.resolve())  # also the cache key: the same directory, however named

    def _partitions(self, since: datetime | None, until: datetime | None) -> Iterator[Path]:
        if not self.root.is_dir():
            raise BadInputError(
                f"audit location {self.root} does not exist",
                hint="check `audit.location` in the agent spec (relative to the spec file)",
            )
        wanted = set(days_between(since, until)) if since and until else None
        for entry in sorted(os.scandir(self.root), key=lambda e: e.name):
            day = partition_day(entry.name)
            if day is None or not entry.is_dir():
                continue
            if wanted is not None and day not in wanted:
                continue
            if wanted is None and since and day < since.date():
                continue
            yield Path(entry.path)

    def files(
        self, since: datetime | None, until: datetime | None, kinds: frozenset[str]
    ) -> list[RecordFile]:
        out: list[RecordFile] = []
        for part in self._partitions(since, until):
            for entry in sorted(os.scandir(part), key=lambda e: e.name):
                kind = file_kind(entry.name)
                if kind is not None and kind in kinds and entry.is_file():
                    st = entry.stat()
                    stamp = f"{st.st_mtime_ns}:{st.st_ctime_ns}:{st.st_ino}"
                    out.append(RecordFile(entry.path, kind, st.st_size, stamp))
        return out

    def open(self, file: RecordFile) -> IO[bytes]:
        return open(file.name, "rb")


class S3Location(Location):
    def __init__(self, bucket: str, prefix: str, client: Any) -> None:
        self.bucket = bucket
        self.prefix = prefix.strip("/") + "/" if prefix.strip("/") else ""
        self.client = client
        self.url = f"s3://{bucket}/{self.prefix}"

    def files(
        self, since: datetime | None, until: datetime | None, kinds: frozenset[str]
    ) -> list[RecordFile]:
        from agentctl.aws import translate_error

        if since and until:
            prefixes = [f"{self.prefix}dt={d.isoformat()}/" for d in days_between(since, until)]
        else:
            prefixes = [self.prefix]
        out: list[RecordFile] = []
        try:
            for prefix in prefixes:
                pages = self.client.get_paginator("list_objects_v2").paginate(
                    Bucket=self.bucket, Prefix=prefix
                )
                for page in pages:
                    for obj in page.get("Contents", []):
                        key = obj["Key"]
                        rel = key[len(self.prefix) :].split("/")
                        if len(rel) != 2 or partition_day(rel[0]) is None:
                            continue
                        kind = file_kind(rel[1])
                        if kind is not None and kind in kinds:
                            out.append(
                                RecordFile(
                                    f"s3://{self.bucket}/{key}",
                                    kind,
                                    int(obj["Size"]),
                                    str(obj.get("ETag", "")),
                                )
                            )
        except Exception as exc:
            raise translate_error(exc, "s3:ListBucket") from exc
        return sorted(out, key=lambda f: f.name)

    def key_of(self, file: RecordFile) -> str:
        return file.name[len(f"s3://{self.bucket}/") :]

    def open(self, file: RecordFile) -> IO[bytes]:
        from agentctl.aws import translate_error

        try:
            body = self.client.get_object(Bucket=self.bucket, Key=self.key_of(file))["Body"]
        except Exception as exc:
            raise translate_error(exc, "s3:GetObject") from exc
        return body


def split_s3(url: str) -> tuple[str, str]:
    rest = url[len("s3://") :]
    bucket, _, prefix = rest.partition("/")
    if not bucket:
        raise BadInputError(f"not an S3 location: {url!r}", hint="use s3://bucket/prefix")
    return bucket, prefix


def open_location(source: str, *, s3_client: Any | None = None) -> Location:
    """A local directory or ``s3://bucket/prefix``. S3 needs ``s3_client``."""
    if source.startswith("s3://"):
        bucket, prefix = split_s3(source)
        if s3_client is None:
            raise BadInputError(f"reading {source} needs an S3 client")
        return S3Location(bucket, prefix, s3_client)
    return LocalLocation(Path(source))
