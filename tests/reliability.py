"""Counts and figures of the reliability tests (tests/e2e/test_crash_safety.py, test_hostile_models.py,
test_injection.py, test_network_isolation.py, test_secrets.py).

CI runs scaled counts (a few minutes in all); `HEARTH_FULL_RELIABILITY=1` runs the full ones, whose
latest figures docs/RELIABILITY.md records. Each test prints its figures as one line starting with
"RELIABILITY" (`pytest -s` shows them), and appends them as JSON to the file named by
HEARTH_RELIABILITY_REPORT when that is set.
"""

from __future__ import annotations

import json
import os
from typing import Any

FULL_ENV = "HEARTH_FULL_RELIABILITY"
REPORT_ENV = "HEARTH_RELIABILITY_REPORT"


def full() -> bool:
    return os.environ.get(FULL_ENV, "") not in ("", "0")


def count(full_count: int, ci_count: int) -> int:
    """How many rounds: the full count with HEARTH_FULL_RELIABILITY=1, CI's otherwise."""
    return full_count if full() else ci_count


def report(name: str, **figures: Any) -> None:
    figures = {"test": name, "full": full(), **figures}
    print("RELIABILITY " + " ".join(f"{k}={v}" for k, v in figures.items()), flush=True)
    target = os.environ.get(REPORT_ENV)
    if target:
        with open(target, "a", encoding="utf-8") as f:
            f.write(json.dumps(figures) + "\n")
