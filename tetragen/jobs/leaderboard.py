"""`tetragen bench`'s tables: one leaderboard per kind of content (its modality's columns, ranked by its headline
metric), as Markdown, JSON and HTML, from the results of a job in which every family had the same budget."""
from __future__ import annotations

import html
import json
from pathlib import Path

from .. import files
from ..registry import get_family, get_modality, list_modalities
from .report import STYLE, headline, made_by, metric_notes
from .showcase import Result


def rows(results: list[Result], columns: dict) -> list[list[str]]:
    out = []
    for r in results:
        cells = [r.name]
        for key, fmt in columns.values():
            v = r.metrics.get(key)
            cells.append(fmt.format(v) if isinstance(v, (int, float)) else "—")
        speed = f"{r.per_s['value']:.1f} {r.per_s['unit']}" if r.per_s else "—"
        cells += [speed, f"{r.params / 1e6:.2f} M", str(r.steps), f"{r.train_s / 60:.1f} min", r.precision]
        out.append(cells)
    return out


def tables(results: list[Result]) -> list[tuple[str, list[str], list[list[str]]]]:
    """(title, header, rows) of each leaderboard with at least one family, one per modality: rows ranked by the
    headline metric (lower is better; families without it last)."""
    tail = ["generation", "parameters", "steps", "training", "precision"]
    out = []
    for kind in list_modalities():
        modality = get_modality(kind)
        chosen = [r for r in results if made_by(r).name == kind]
        chosen.sort(key=lambda r: (headline(r)[0] != modality.headline[0], headline(r)[1] is None,
                                   headline(r)[1] or 0.0))
        if chosen:
            out.append((f"{kind} families", ["family", *modality.columns, *tail], rows(chosen, modality.columns)))
    return out


def write_bench(out: Path, results: list[Result], meta: dict) -> list[Path]:
    """bench.md, bench.json and bench.html in `out`; returns their paths."""
    md = [f"# tetragen bench: {meta['budget_minutes']:g} minutes per family", "",
          f"- machine: {meta['machine']['cpu']}, {meta['machine']['cores']} cores "
          f"({', '.join(meta['machine']['cpu_flags']) or 'no AVX-512/AMX'})",
          f"- torch {meta['machine']['torch']}, python {meta['machine']['python']}; seed {meta['seed']}", ""]
    body = []
    for title, header, table in tables(results):
        md += [f"## {title}", "", "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
        md += ["| " + " | ".join(row) + " |" for row in table] + [""]
        body.append(f"<h2>{html.escape(title)}</h2><table><tr>" + "".join(f"<th>{html.escape(h)}</th>"
                                                                         for h in header) + "</tr>" +
                    "".join("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in row) + "</tr>" for row in table)
                    + "</table>")
    md.append(metric_notes(results) + ".")
    doc = {**meta, "results": [r.__dict__ for r in results]}
    paths = [out / "bench.md", out / "bench.json", out / "bench.html"]
    files.write_text(paths[0], "\n".join(md) + "\n")
    files.write_text(paths[1], json.dumps(doc, indent=1) + "\n")
    files.write_text(paths[2], f"<!doctype html><html><head><meta charset='utf-8'><title>tetragen bench</title>"
                               f"<style>{STYLE}</style></head><body><h1>tetragen bench</h1><p>"
                               + html.escape(" · ".join(md[2:4])) + "</p>" + "".join(body) + "</body></html>")
    return paths
