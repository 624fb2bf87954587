"""The on-disk (and S3) layout of audit records (public name; defined in
:mod:`agentctl.audit_layout`, see there). Standard library only.

::

    <location>/dt=YYYY-MM-DD/actions-<writer>-<seq>.jsonl[.gz]     action records
    <location>/dt=YYYY-MM-DD/decisions-<writer>-<seq>.jsonl[.gz]   input / retrieval / model_call
    <location>/dt=YYYY-MM-DD/<anything>.otlp.json                  OTLP JSON exports (read only)
"""

from __future__ import annotations

from agentctl.audit_layout import (
    ACTIONS_PREFIX,
    DECISIONS_PREFIX,
    JSONL_SUFFIXES,
    OTLP_SUFFIX,
    OTLP_SUFFIXES,
    PARTITION,
    days_between,
    partition_day,
    partition_of,
)

__all__ = [
    "ACTIONS_PREFIX",
    "DECISIONS_PREFIX",
    "JSONL_SUFFIXES",
    "OTLP_SUFFIX",
    "OTLP_SUFFIXES",
    "PARTITION",
    "days_between",
    "partition_day",
    "partition_of",
]
