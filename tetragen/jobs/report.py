"""The report of a job (`tetragen quickstart`, `tetragen bench`): one self-contained HTML file.

Per family: what it was asked and answered, shown by its kind of content (the modality's `html`: generated text,
sample grids, ...), its loss and metric curves (matplotlib PNGs), the final metrics with the evaluator's scale references, training time and
steps, and the commands that reproduce, sample from and serve it; then one summary table across families. Every
image is inlined as a data: URL, so the file can be mailed or opened anywhere without its folder.
"""
from __future__ import annotations

import base64
import html
import io
import shlex
from pathlib import Path

from .. import files
from ..registry import get_family, get_modality, get_showcase, list_modalities
from .showcase import EVAL_IW, EVAL_N, EVAL_TOKENS, Result, read_metrics

STYLE = """
body{font:15px/1.5 system-ui,sans-serif;margin:0 auto;max-width:1100px;padding:1.5em;color:#1d2330;background:#fafbfc}
h1{font-size:1.7em;margin-bottom:.2em}h2{margin-top:2em;border-bottom:2px solid #dde3ec;padding-bottom:.2em}
table{border-collapse:collapse;margin:.8em 0}td,th{border:1px solid #dde3ec;padding:.3em .7em;text-align:left}
th{background:#eef2f7}td.n{text-align:right;font-variant-numeric:tabular-nums}
pre{background:#f1f4f8;padding:.7em;border-radius:6px;white-space:pre-wrap;overflow-x:auto}
code{background:#f1f4f8;padding:0 .25em;border-radius:3px}
figure{display:inline-block;margin:.5em 1em .5em 0;vertical-align:top}figcaption{font-size:.9em;color:#556}
img.grid{image-rendering:pixelated;width:min(100%,760px)}img.curve{width:min(100%,760px)}
.muted{color:#667}
"""


def write_report(path: Path, title: str, results: list[Result], out: Path, *, intro: str = "",
                 machine: dict | None = None) -> Path:
    """Write the report of `results` (runs under `out`) to `path`, atomically; returns the path."""
    parts = [f"<!doctype html><html><head><meta charset='utf-8'><title>{_e(title)}</title>"
             f"<style>{STYLE}</style></head><body><h1>{_e(title)}</h1>"]
    if intro:
        parts.append(f"<p>{intro}</p>")
    if machine:
        parts.append(f"<p class='muted'>{_e(machine.get('cpu', ''))} ({machine.get('cores')} cores; "
                     f"{_e(', '.join(machine.get('cpu_flags', [])) or 'no AVX-512/AMX')}), torch "
                     f"{_e(machine.get('torch', ''))}, python {_e(machine.get('python', ''))}</p>")
    parts.append(summary_table(results))
    for r in results:
        parts.append(family_section(r, out))
    runs = " ".join(shlex.quote(r.run) for r in servable(results))
    parts.append(f"<h2>Serve every model</h2><pre>tetragen serve {_e(runs)}</pre>"
                 "<p>then open <code>http://127.0.0.1:8000/</code> for the playground, or point any OpenAI client at "
                 "<code>http://127.0.0.1:8000/v1</code>.</p></body></html>")
    files.write_text(path, "\n".join(parts))
    return path


def made_by(r: Result):
    """The modality of what a result's run made."""
    return get_modality(r.kind or get_family(r.family).makes)


def servable(results: list[Result]) -> list[Result]:
    """The results whose runs `tetragen serve` has a route for (an image tokenizer has none)."""
    return [r for r in results if get_family(r.family).capabilities & set(made_by(r).routes)]


def headline(r: Result) -> tuple[str, float | None]:
    """The one lower-is-better metric a family is compared by: the first of its modality's headline metrics that
    the run has, else the family's primary metric."""
    for key in made_by(r).headline:
        if key in r.metrics:
            return key, r.metrics[key]
    key = get_family(r.family).primary_metric
    return key, r.metrics.get(key)


def metric_notes(results: list[Result]) -> str:
    """How to read the figures of each kind of content among `results` ("image: FID/KID in ...; text: ...")."""
    return "; ".join(f"{m}: {get_modality(m).note}" for m in list_modalities()
                     if any(made_by(r).name == m for r in results))


def summary_table(results: list[Result]) -> str:
    rows = []
    for r in results:
        key, value = headline(r)
        also = [k for k, _ in made_by(r).columns.values() if k != key and k in r.metrics]
        extra = ", ".join(f"{k} {r.metrics[k]:.3f}" for k in also)
        speed = f"{r.per_s['value']:.1f} {r.per_s['unit']}" if r.per_s else ""
        rows.append(f"<tr><td><a href='#{r.name}'>{r.name}</a></td><td>{_e(r.data)}</td>"
                    f"<td>{_e(key)}</td><td class='n'>{_num(value)}</td><td>{_e(extra)}</td>"
                    f"<td class='n'>{r.steps}</td><td class='n'>{r.train_s / 60:.1f} min ({r.budget_used:.0%})</td>"
                    f"<td class='n'>{r.params / 1e6:.2f} M</td><td>{_e(r.precision)}</td><td>{_e(speed)}</td></tr>")
    notes = metric_notes(results)
    return ("<h2>Summary</h2><table><tr><th>family</th><th>data</th><th>metric</th><th>value</th><th>also</th>"
            "<th>steps</th><th>training (share of its budget used)</th><th>parameters</th><th>precision</th><th>generation</th></tr>"
            + "".join(rows) + f"</table><p class='muted'>The metric is the lower-is-better headline of each kind of "
            f"content ({_e(notes)}); accuracies are higher-is-better.</p>")


def family_section(r: Result, out: Path) -> str:
    fam = get_family(r.family)
    parts = [f"<h2 id='{r.name}'>{r.name} <span class='muted'>— {_e(fam.description)}</span></h2>",
             f"<p>{r.steps} steps in {r.train_s / 60:.1f} min (budget {r.budget_minutes:g} min, "
             f"{r.budget_used:.0%} of it used; steps planned by <code>train.budget_minutes</code>), evaluated in "
             f"{r.eval_s:.0f} s; {r.params / 1e6:.2f} M parameters, {_e(r.precision)}.</p>"]
    modality = made_by(r)
    for item in r.shown:
        parts.append(modality.html(item, out))
    curves = curve_png(read_metrics(Path(r.run)), r.name, curve_metrics(r))
    if curves:
        parts.append(f"<figure><img class='curve' alt='training curves of {r.name}' "
                     f"src='data:image/png;base64,{base64.b64encode(curves).decode()}'>"
                     f"<figcaption>training loss and validation metrics by step</figcaption></figure>")
    parts.append("<table><tr><th>metric</th><th>value</th></tr>" + "".join(
        f"<tr><td>{_e(k)}</td><td class='n'>{_num(v)}</td></tr>" for k, v in sorted(r.metrics.items())
        if isinstance(v, (int, float))) + "</table>")
    if r.eval_lines:
        parts.append("<pre>" + _e("\n".join(r.eval_lines)) + "</pre>")
    parts.append("<pre>" + _e("\n".join(commands(r))) + "</pre>")
    return "\n".join(parts)


def commands(r: Result) -> list[str]:
    """The commands that reproduce the run, evaluate it, ask it what the report shows and serve it."""
    q = shlex.quote
    fam = get_family(r.family)
    lines = ["# reproduce", f"tetragen train {r.family} --data {q(r.data)} --preset {q(r.preset)} --out {q(r.run)} "
             + " ".join(q(o) for o in r.overrides) + f" train.budget_minutes={r.budget_minutes:g}",
             "# evaluate", f"tetragen eval {q(r.run)} --n {EVAL_N} --iw-samples {EVAL_IW} --eval-tokens {EVAL_TOKENS}", "# ask it"]
    prompt = next((t["prompt"] for t in r.shown if "prompt" in t), "") or next(iter(get_showcase(r.name).prompts), "")
    lines += made_by(r).commands(r.run, prompt, fam.capabilities)
    if servable([r]):
        lines += ["# serve", f"tetragen serve {q(r.run)}"]
    return lines




def curve_metrics(r: Result) -> list[str]:
    """The validation metrics a run's curves show: its modality's headline and columns, then its primary metric."""
    m = made_by(r)
    keys = [*m.headline, *(k for k, _ in m.columns.values()), get_family(r.family).primary_metric]
    return list(dict.fromkeys(keys))


def curve_png(records: list[dict], family: str, keys: list[str]) -> bytes | None:
    """Training losses (left) and the first two of `keys` that the validation records have (right) by step, as PNG
    bytes; None without records."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    train = [r for r in records if r.get("split") == "train"]
    val = [r for r in records if r.get("split") == "val"]
    if not train:
        return None
    losses = sorted({k for r in train for k in r if k.startswith("loss") and isinstance(r[k], (int, float))})
    metrics = [k for k in keys if any(k in r for r in val)][:2]
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.2), dpi=90)
    for k in losses:
        pts = [(r["step"], r[k]) for r in train if k in r]
        axes[0].plot(*zip(*pts), label=k)
    axes[0].set_title(f"{family}: training loss")
    axes[0].set_xlabel("step")
    axes[0].legend(fontsize=8)
    for k in metrics:
        pts = [(r["step"], r[k]) for r in val if k in r]
        axes[1].plot(*zip(*pts), marker="o", label=k)
    axes[1].set_title("validation")
    axes[1].set_xlabel("step")
    if metrics:
        axes[1].legend(fontsize=8)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    plt.close(fig)
    return buf.getvalue()


def _num(v) -> str:
    if v is None:
        return "—"
    return f"{v:.4g}" if isinstance(v, float) else str(v)


def _e(s) -> str:
    return html.escape(str(s), quote=True)
