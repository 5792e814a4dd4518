"""Shared helpers for the benchmarks: machine description, writing one section of bench/RESULTS.md, timing a
family's training step, and the attribute adherence of a prompted image pipeline.

Each benchmark owns the text between `<!-- NAME:start -->` and `<!-- NAME:end -->`; everything else in the file is
left untouched, so several benchmarks (and people) can keep their results in the same file.
"""
from __future__ import annotations

import datetime
import os
import platform
import re
import shlex
import subprocess
import sys
from pathlib import Path

from tetragen.files import write_text

RESULTS = Path(__file__).resolve().parent / "RESULTS.md"


def machine() -> str:
    """'<CPU model name>, <N> cores' from lscpu (falls back to platform/os when lscpu is missing)."""
    model = ""
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, timeout=10).stdout
        if m := re.search(r"^Model name:\s*(.+)$", out, re.M):
            model = m.group(1).strip()
    except (OSError, subprocess.SubprocessError):
        pass
    return f"{model or platform.processor() or platform.machine()}, {os.cpu_count()} cores"


def header(command: list[str] | None = None) -> list[str]:
    """The lines every section starts with: date, machine, torch version, the exact command."""
    import torch
    cmd = " ".join(shlex.quote(a) for a in (command or ["python", *sys.argv]))
    return [
        f"- date: {datetime.datetime.now().astimezone().strftime('%Y-%m-%d %H:%M %Z')}",
        f"- machine: {machine()}",
        f"- torch {torch.__version__}, {torch.get_num_threads()} threads; python {platform.python_version()}",
        f"- command: `{cmd}`",
        "- load average at the end (1/5/15 min): " + " / ".join(f"{x:.2f}" for x in os.getloadavg()),
    ]


def write_section(name: str, body: str, path: Path = RESULTS) -> None:
    """Replace the text between this benchmark's markers (creating the file or the markers when missing)."""
    start, end = f"<!-- {name}:start -->", f"<!-- {name}:end -->"
    block = f"{start}\n{body.strip()}\n{end}"
    text = path.read_text(encoding="utf-8") if path.is_file() else "# Benchmark results\n"  # re-read right now
    if start in text and end in text and text.index(start) < text.index(end):
        i, j = text.index(start), text.index(end) + len(end)
        text = text[:i] + block + text[j:]
    else:
        text = text.rstrip("\n") + "\n\n" + block + "\n"
    write_text(path, text)


def seconds_per_step(family: str, preset: str, data_source: str, overrides: list[str], warmup: int,
                     steps: int) -> float:
    """Wall seconds per training step of a throw-away trainer (`steps` timed steps after `warmup` untimed ones):
    how a benchmark turns a time budget into train.max_steps."""
    import tempfile
    import time

    from tetragen.api import load_data
    from tetragen.config import build_run_config, validate_cross
    from tetragen.train.trainer import Trainer
    cfg = build_run_config(family, preset=preset, overrides=overrides)
    cfg.data.source = data_source
    validate_cross(cfg)
    data = load_data(cfg)
    with tempfile.TemporaryDirectory() as tmp:
        trainer = Trainer(cfg, data, Path(tmp) / "probe", progress=False)
        for _ in range(warmup):
            trainer._train_step()
            trainer.step += 1
        t0 = time.perf_counter()
        for _ in range(steps):
            trainer._train_step()
            trainer.step += 1
        return (time.perf_counter() - t0) / steps


def train_for(family: str, data: str, out: Path, preset: str, minutes: float, seed: int, overrides=(),
              base: dict | None = None) -> tuple[int, float]:
    """Train `family` on `data` into `out` (emptied first) for `minutes` of budget, without evaluations while it
    trains: (the steps it took, the seconds it took). `base`: a component trained first into `out`'s sibling
    `<out>_<family>` for its `share` of the minutes (its `family`, `preset` and `overrides`), named to the run by the
    override key `override` (t2i's `model.tokenizer_run`); the run gets what is left of the minutes."""
    import json
    import shutil
    import time

    import tetragen
    common = [f"train.seed={seed}", "train.eval_every=0", "train.eval_samples=0"]
    overrides = list(overrides)
    t0 = time.perf_counter()
    if base is not None:
        part = out.parent / f"{out.name}_{base['family']}"
        shutil.rmtree(part, ignore_errors=True)
        tetragen.train(base["family"], data, part, preset=base["preset"], progress=False,
                       overrides=[*common, *base.get("overrides", ()),
                                  f"train.budget_minutes={minutes * base['share']:g}"])
        overrides.append(f"{base['override']}={part}")
    left = minutes - (time.perf_counter() - t0) / 60
    shutil.rmtree(out, ignore_errors=True)
    tetragen.train(family, data, out, preset=preset, progress=False,
                   overrides=[*common, *overrides, f"train.budget_minutes={max(left, 0.05):g}"])
    train_s = time.perf_counter() - t0
    records = [json.loads(ln) for ln in (out / "metrics.jsonl").read_text().splitlines()]
    return max(r["step"] for r in records if "step" in r), train_s


def per_second(pipe, amount, batch: int, batches: int) -> float:
    """How much `pipe.sample(batch)` makes a second (`amount(content)`), over `batches` calls after a warm-up."""
    import time
    pipe.sample(batch, seed=0)  # warm-up
    t0, made = time.perf_counter(), 0.0
    for i in range(batches):
        made += amount(pipe.sample(batch, seed=100 + i * batch))
    return made / (time.perf_counter() - t0)


def adherence(pipe, per_word: int) -> dict:
    """Attribute adherence of a prompt-conditioned image pipeline: for each class and each of "dark" / "light" (the
    brightness terciles 0 and 2) and "small" / "large" (size), `per_word` samples of the class's canonical caption
    with that word; the share whose measured attribute falls in the asked tercile, cut where the run's own captions
    cut (per class), so 1/3 by chance."""
    import numpy as np

    from tetragen.data.captions import CaptionBuilder, Terciles
    terciles = Terciles.from_json(pipe.assets.captions_record["terciles"])
    builder = CaptionBuilder(pipe.classes)
    out = {}
    for attribute in ("brightness", "size"):
        hits = []
        for tercile in (0, 2):  # the lower and the upper third: "dark" / "light", "small" / "large"
            for k in range(pipe.num_classes):
                prompt = builder.attribute_prompt(k, **{attribute: tercile})
                images = pipe.sample(per_word, prompt=prompt, seed=100 + k)
                got = terciles.buckets(images, np.full(len(images), k))[attribute]
                hits.append(float(np.mean(got == tercile)))
        out[f"adherence_{attribute}"] = float(np.mean(hits))
    return out
