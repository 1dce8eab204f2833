"""Logging set-up for entry points (library modules only call logging.getLogger)."""

from __future__ import annotations

import logging
import sys


def configure(level: int = logging.INFO) -> None:
    root = logging.getLogger()
    if any(getattr(h, "_lakeloop", False) for h in root.handlers):
        return
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    handler._lakeloop = True  # type: ignore[attr-defined]
    root.addHandler(handler)
    root.setLevel(level)
    for noisy in ("py4j", "kafka", "great_expectations", "urllib3", "alembic"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
