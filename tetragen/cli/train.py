"""`tetragen train FAMILY --data NAME_OR_PATH --out RUN_DIR [--preset P] [--config F.yaml] [--resume] [key=value ...]`"""
from __future__ import annotations

import sys

from .. import api
from ..config import build_run_config


def add_parser(sub) -> None:
    p = sub.add_parser("train", help="train a model of any family",
                       description="Train FAMILY on --data, writing the run to --out. Overrides like "
                                   "train.lr=1e-3 model.n_layer=4 come last.")
    p.add_argument("family", help="a family from `tetragen ls`")
    p.add_argument("--data", default="", help="dataset name (e.g. tinyshakespeare, shakespeare) or a path")
    p.add_argument("--out", help="run folder to write")
    p.add_argument("--preset", help="named preset of the family (e.g. baby, small)")
    p.add_argument("--task", default="lm", choices=["lm", "classify"],
                   help="lm: the family's own objective (default); classify (bert): a text classifier from random "
                        "initialisation on --data FILE.csv|.jsonl of text,label rows")
    p.add_argument("--config", help="YAML run config (sections model:, train:, data:)")
    p.add_argument("--resume", action="store_true", help="continue the run in --out from its latest checkpoint")
    p.add_argument("--overwrite", action="store_true", help="replace an existing run in --out")
    p.add_argument("--init-from", metavar="PATH", help="gpt: start from a Hugging Face GPT-2 folder (config.json + "
                                                     "model.safetensors); its shape and tokenizer.json are used")
    p.add_argument("--print-config", action="store_true", help="print the resolved config as JSON and exit")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("overrides", nargs="*", metavar="key=value", help="config overrides, e.g. train.max_steps=100")
    p.set_defaults(run=run)


def run(args) -> int:
    from ..train.trainer import format_metrics
    if args.print_config:
        cfg = build_run_config(args.family, preset=args.preset, yaml_path=args.config, overrides=args.overrides)
        cfg.data.source = args.data
        api.checked(cfg)
        print(cfg.to_json())
        return 0
    if not args.out:
        from ..errors import UserError
        raise UserError("train: --out RUN_DIR is required (the folder the run is written to)")
    metrics = api.train(args.family, args.data, args.out, preset=args.preset, config=args.config,
                        overrides=args.overrides, resume=args.resume, overwrite=args.overwrite,
                        progress=not args.no_progress, init_from=args.init_from, task=args.task)
    print(f"done: {args.out}  {format_metrics(metrics)}", file=sys.stderr)
    return 0
