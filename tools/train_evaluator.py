"""Train the evaluator that tetragen ships for a named dataset (images, sound, video; music's style classifier), with
the fixed seed of `EvaluatorConfig`.

    python tools/train_evaluator.py fashion-mnist
    python tools/train_evaluator.py spoken-words
    python tools/train_evaluator.py music21-styles

Writes tetragen/eval/weights/<dataset key>/ (config.json, model.safetensors, metrics.json) and records the weights'
sha256 and test accuracy in tetragen/eval/weights/README.md. Run it once per dataset; every machine then scores
samples with these exact weights.
"""
from __future__ import annotations

import argparse
import datetime
import hashlib
import platform
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from tetragen.api import load_data  # noqa: E402
from tetragen.config import build_run_config  # noqa: E402
from tetragen.eval import classifier  # noqa: E402
from tetragen.registry import get_family, get_modality, list_families, list_modalities  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("dataset", help="a named dataset, e.g. fashion-mnist, spoken-words or music21-styles")
    args = ap.parse_args()
    torch.set_num_threads(1)  # the same arithmetic on any machine with the same kernels
    # the data as a run of a family that learns it reads it (any such family: the data does not depend on it), a
    # family of token sequences where a modality's token form claims the dataset, else one of grids
    tokens = any(m.tokens and m.tokens.claims(args.dataset) for m in map(get_modality, list_modalities()))
    cfg = build_run_config(next(n for n in list_families() if getattr(get_family(n), "tokens" if tokens else "grids")))
    cfg.data.source = args.dataset
    data = load_data(cfg)
    data = data.eval_view() if hasattr(data, "eval_view") else data   # what its evaluator reads, where not itself
    want, settings = classifier.wanted(data)
    folder = classifier.SHIPPED / classifier.dataset_key(data, want["data_sha256"])
    ev = classifier._train(data, folder, want, settings, torch.device("cpu"), verbose=True)
    sha = hashlib.sha256((folder / "model.safetensors").read_bytes()).hexdigest()
    cpu = next((ln.split(":", 1)[1].strip() for ln in open("/proc/cpuinfo") if ln.startswith("model name")),
               platform.processor())
    line = (f"| {folder.name} | {ev.test_acc:.4f} | `{sha}` | {datetime.date.today()} | {cpu}, torch "
            f"{torch.__version__} |")
    readme = classifier.SHIPPED / "README.md"
    head = ("# Shipped evaluators\n\nMade by `python tools/train_evaluator.py DATASET` (fixed seed, one thread). "
            "tetragen uses a folder here whenever its data digest and settings match the data being scored.\n\n"
            "| folder | test accuracy | sha256 of model.safetensors | date | machine |\n|---|---:|---|---|---|\n")
    rows = [r for r in (readme.read_text().splitlines() if readme.is_file() else []) if r.startswith("| ")
            and not r.startswith(("| folder", f"| {folder.name} "))]
    readme.write_text(head + "\n".join([*rows, line]) + "\n", encoding="utf-8")
    print(line)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
