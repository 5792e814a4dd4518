"""`tetragen export RUN_DIR --format hf --out DIR`: a gpt run as a Hugging Face GPT-2 folder.

The folder (config.json, model.safetensors, tokenizer.json, tokenizer_config.json) loads offline with
`transformers.GPT2LMHeadModel.from_pretrained(DIR)` and `AutoTokenizer.from_pretrained(DIR)`.
"""
from __future__ import annotations

import sys

from ..errors import UserError


def add_parser(sub) -> None:
    p = sub.add_parser("export", help="write a trained run in another library's format (hf: GPT-2 for transformers)")
    p.add_argument("run_dir", help="the trained run to export")
    p.add_argument("--format", default="hf", help="hf: a Hugging Face GPT-2 folder (gpt runs)")
    p.add_argument("--out", required=True, help="folder to write")
    p.add_argument("--overwrite", action="store_true", help="replace an earlier export in --out")
    p.set_defaults(run=run)


def run(args) -> int:
    if args.format != "hf":
        raise UserError(f"--format: {args.format!r} is not supported; choose hf")
    from ..families.gpt.hf import export_hf
    out = export_hf(args.run_dir, args.out, overwrite=args.overwrite)
    print(f"done: {out}  (load with transformers: GPT2LMHeadModel.from_pretrained({str(out)!r}))", file=sys.stderr)
    return 0
