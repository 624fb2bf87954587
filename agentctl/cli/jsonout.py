"""``--output json``: stable JSON on stdout. Apart from render.py so that a script's run never
imports rich (about 25 ms of start-up)."""

from __future__ import annotations

import json
import sys
from typing import Any


def print_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, indent=2, default=str) + "\n")
    sys.stdout.flush()
