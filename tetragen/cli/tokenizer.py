"""`tetragen tokenizer train --data NAME_OR_PATH --vocab-size N --out DIR`: a byte-level BPE for `data.tokenizer`.

Writes DIR/tokenizer.json in the Hugging Face format; train with it by `data.tokenizer=DIR/tokenizer.json`. It is
trained on the training split of the corpus (the first 1 - val_fraction of its characters) and holds the special
tokens [PAD], [MASK] and [CLS], so the same file serves GPT and BERT runs.
"""
from __future__ import annotations

import sys
from pathlib import Path

from ..data.text import build_tokenizer, resolve_text_source
from ..errors import UserError


def add_parser(sub) -> None:
    p = sub.add_parser("tokenizer", help="train a byte-level BPE tokenizer on a corpus")
    actions = p.add_subparsers(dest="action", required=True)
    t = actions.add_parser("train", help="train a byte-level BPE and write DIR/tokenizer.json")
    t.add_argument("--data", required=True, help="dataset name (e.g. shakespeare) or a path to .txt files")
    t.add_argument("--vocab-size", type=int, default=2048, help="ids in all: 256 bytes, specials and merges")
    t.add_argument("--val-fraction", type=float, default=0.1, help="last fraction of the text left out (as in train)")
    t.add_argument("--out", required=True, help="folder to write tokenizer.json into")
    t.add_argument("--overwrite", action="store_true", help="replace an existing DIR/tokenizer.json")
    t.set_defaults(run=run)


def run(args) -> int:
    out = Path(args.out)
    target = out / "tokenizer.json"
    if out.exists() and not out.is_dir():
        raise UserError(f"--out {out}: exists and is not a folder")
    if target.exists() and not args.overwrite:
        raise UserError(f"--out {out}: tokenizer.json is already there; pass --overwrite or choose another folder")
    if not 0 < args.val_fraction <= 0.5:
        raise UserError(f"--val-fraction: {args.val_fraction} must be in (0, 0.5]")
    if args.vocab_size > 1 << 20:
        raise UserError(f"--vocab-size: {args.vocab_size} is too large; use at most {1 << 20}")
    _, files = resolve_text_source(args.data)
    tok = build_tokenizer(files, "bpe", vocab_size=args.vocab_size, val_fraction=args.val_fraction)
    out.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(target.name + ".tmp")
    tok.save(tmp)
    tmp.replace(target)
    print(f"wrote {target}: byte-level BPE, {tok.vocab_size} ids (special: {', '.join(tok.specials)})",
          file=sys.stderr)
    return 0
