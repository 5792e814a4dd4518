"""`option()`: a config field with its documentation and allowed range.

A leaf module: the run config (config.py) and every family's own config dataclass declare their keys with it, so
that a family's config never imports the run config (which looks families up in the registry).
"""
from __future__ import annotations

from dataclasses import field
from typing import Any


def option(default: Any, help: str = "", *, min: float | None = None, max: float | None = None,
           choices: list | None = None, min_exclusive: bool = False, max_exclusive: bool = False):
    """A config field with its documentation and its allowed range (`min_exclusive`/`max_exclusive`: the bound
    itself is not allowed)."""
    meta = {"help": help, "min": min, "max": max, "choices": choices, "min_exclusive": min_exclusive,
            "max_exclusive": max_exclusive}
    return field(default=default, metadata=meta)
