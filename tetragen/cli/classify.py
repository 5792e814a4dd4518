"""`tetragen classify RUN_DIR --text "..."`: the label probabilities of a fine-tuned classifier (bert runs made with
`tetragen finetune RUN --task classify`), most likely first."""
from __future__ import annotations

import json
import sys

from .. import api
from ..pipeline import require
from .options import add_device, printed_warnings


def add_parser(sub) -> None:
    p = sub.add_parser("classify", help="label probabilities of a text, from a fine-tuned classifier")
    p.add_argument("run_dir")
    p.add_argument("--text", required=True, help="the text to classify")
    p.add_argument("--json", action="store_true", help="print {label: probability} as JSON")
    add_device(p)
    p.set_defaults(run=run)


def run(args) -> int:
    pipe = api.load(args.run_dir, device=args.device)
    require(pipe, "classify", args.run_dir, "fine-tune a classifier with `tetragen finetune RUN --task classify "
                                           "--data FILE.csv --out NEW_RUN`")
    unknown = pipe.tokenizer.count_unknown(args.text)
    if unknown:
        print(f"tetragen: warning: {unknown} distinct character(s) of the text are not in the model's vocabulary "
              f"and are read as unknown", file=sys.stderr)
    with printed_warnings():
        probs = pipe.classify(args.text)
    if args.json:
        print(json.dumps(probs, ensure_ascii=False))
        return 0
    for label, p in probs.items():
        print(f"{p:.4f}  {label}")
    return 0
