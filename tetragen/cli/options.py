"""Flags that several verbs share."""
from __future__ import annotations

import contextlib
import sys
import warnings


def add_device(p) -> None:
    p.add_argument("--device", default="cpu", help="where the model runs: cpu, cuda, cuda:1, ... (default cpu)")


@contextlib.contextmanager
def printed_warnings():
    """Warnings the library raises inside the block, printed after it as `tetragen: warning: ...` lines."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        yield
    for w in caught:
        print(f"tetragen: warning: {w.message}", file=sys.stderr)
