"""`tetragen finetune RUN_DIR --data NAME_OR_PATH --out NEW_DIR [key=value ...]`: a new run from a trained one.

It starts from RUN_DIR's weights, config and tokenizer and follows its own schedule (train.* overrides). Methods:
`finetune.method=full` (every weight) or `lora` (finetune.lora_rank, finetune.lora_alpha, finetune.lora_targets;
finetune.lora_save=merged writes plain weights, =adapter writes adapter.safetensors + adapter.json).

`--task classify` (bert runs): `--data FILE.csv|.jsonl` holds text,label rows; a classifier head on the pooled
representation (model.pooling: the [CLS] position by default, or mean) is trained with cross-entropy; the run
evaluates to val_loss and val_accuracy and keeps its labels in labels.json. Use it with `tetragen classify`. A
`split` column in the file (train, val/test) fixes which rows are evaluated. With finetune.method=lora the head is
trained whole beside the adapters. `tetragen train bert --task classify` makes the same classifier from random
initialisation.
"""
from __future__ import annotations

import sys

from .. import api


def add_parser(sub) -> None:
    p = sub.add_parser("finetune", help="fine-tune a trained run on new data (full or LoRA)")
    p.add_argument("run_dir", help="the trained run to start from")
    p.add_argument("--data", required=True, help="dataset name or path to fine-tune on (--task classify: a .csv "
                                                  "with a text,label header, or .jsonl)")
    p.add_argument("--task", default="lm", choices=["lm", "classify"],
                   help="lm: go on with the run's own objective (default); classify: a bert run becomes a text "
                        "classifier")
    p.add_argument("--out", required=True, help="folder of the new run")
    p.add_argument("--overwrite", action="store_true", help="replace an existing run in --out")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("overrides", nargs="*", metavar="key=value",
                   help="e.g. train.max_steps=200 train.lr=1e-4 finetune.method=lora finetune.lora_rank=4")
    p.set_defaults(run=run)


def run(args) -> int:
    from ..train.trainer import format_metrics
    metrics = api.finetune(args.run_dir, args.data, args.out, overrides=args.overrides, overwrite=args.overwrite,
                           progress=not args.no_progress, task=args.task)
    print(f"done: {args.out}  {format_metrics(metrics)}", file=sys.stderr)
    return 0
