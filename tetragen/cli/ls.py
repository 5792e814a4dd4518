"""`tetragen ls`: the registered families with one-line descriptions and their presets."""
from __future__ import annotations

from ..registry import get_family, list_families


def add_parser(sub) -> None:
    p = sub.add_parser("ls", help="list model families")
    p.set_defaults(run=run)


def run(args) -> int:
    for name in list_families():
        f = get_family(name)
        presets = ", ".join(sorted(f.presets)) or "-"
        print(f"{name:8s} {f.description}  [presets: {presets}]")
    return 0
