"""Logging set-up for entry points (library modules only call logging.getLogger)."""

from __future__ import annotations

import logging
import os
import sys

from lakeloop.config import mask


class _MaskingFormatter(logging.Formatter):
    """Formats as usual, then hides every secret value the config has read (`config.mask`):
    an exception text that quotes a credential never reaches the terminal or a task log."""

    def format(self, record: logging.LogRecord) -> str:
        return mask(super().format(record))


class _StderrHandler(logging.StreamHandler):
    """Writes to whatever sys.stderr is now (test runners swap it), not the one at set-up."""

    @property
    def stream(self):  # type: ignore[override]
        return sys.stderr

    @stream.setter
    def stream(self, _value) -> None:
        pass


def configure(level: int | str | None = None) -> None:
    """One stderr handler on the root logger; level from the argument, else LAKELOOP_LOG_LEVEL,
    else INFO."""
    level = level or os.environ.get("LAKELOOP_LOG_LEVEL", "INFO").upper()
    root = logging.getLogger()
    if any(getattr(h, "_lakeloop", False) for h in root.handlers):
        return
    handler = _StderrHandler()
    handler.setFormatter(_MaskingFormatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    handler._lakeloop = True  # type: ignore[attr-defined]
    root.addHandler(handler)
    root.setLevel(level)
    for noisy in ("py4j", "kafka", "great_expectations", "urllib3", "alembic", "httpx"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
