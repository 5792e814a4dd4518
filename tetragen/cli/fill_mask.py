"""`tetragen fill-mask RUN_DIR --text "To be, or not to [MASK]" [--top-k K]`: a masked LM's top-k candidates."""
from __future__ import annotations

import json
import sys

from .. import api
from ..errors import UserError
from ..pipeline import require
from .options import add_device, printed_warnings


def add_parser(sub) -> None:
    p = sub.add_parser("fill-mask", help="predict the [MASK] tokens of a text with a trained masked LM (BERT)")
    p.add_argument("run_dir")
    p.add_argument("--text", required=True, help='text with one or more [MASK], e.g. "To be, or not to [MASK]"')
    p.add_argument("--top-k", type=int, default=5, help="candidates per [MASK] (default 5)")
    p.add_argument("--json", action="store_true", help="print the candidates as JSON")
    add_device(p)
    p.set_defaults(run=run)


def run(args) -> int:
    if args.top_k < 1:
        raise UserError(f"--top-k: {args.top_k} must be at least 1")
    if "[MASK]" not in args.text:
        raise UserError(f"--text: no [MASK] in {args.text!r}; write [MASK] where a token should be predicted")
    pipe = api.load(args.run_dir, device=args.device)
    require(pipe, "fill_mask", args.run_dir)
    unknown = pipe.tokenizer.count_unknown(args.text.replace("[MASK]", ""))
    if unknown:
        print(f"tetragen: warning: {unknown} distinct character(s) of the text are not in the model's vocabulary "
              f"and are read as unknown", file=sys.stderr)
    with printed_warnings():
        per_mask = pipe.fill_mask(args.text, top_k=args.top_k)
    if args.json:
        print(json.dumps([[{"token": t, "prob": p} for t, p in cands] for cands in per_mask], ensure_ascii=False))
        return 0
    for n, cands in enumerate(per_mask, 1):
        if len(per_mask) > 1:
            print(f"[MASK] {n}:")
        for token, prob in cands:
            print(f"{prob:.4f}  {json.dumps(token, ensure_ascii=False)}")
    return 0
