"""Notices for the person running a command: what was decided for them (a val split carved
out of train, a subsampled split) and what looks wrong in their data (a typo that would
become a class, a class with two examples). Logged on the `mtl_split` logger, which the CLI
prints on stderr; runs also record them (run.json)."""
from __future__ import annotations

import logging
import sys

LOGGER = "mtl_split"


def logger(part: str) -> logging.Logger:
    return logging.getLogger(f"{LOGGER}.{part}")


def show_on_stderr() -> None:
    """Print notices as `mtl-split: <message>` on stderr (once, however often called)."""
    root = logging.getLogger(LOGGER)
    if not any(getattr(h, "_mtl_split", False) for h in root.handlers):
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("mtl-split: %(message)s"))
        handler._mtl_split = True  # type: ignore[attr-defined]
        root.addHandler(handler)
        root.setLevel(logging.INFO)
