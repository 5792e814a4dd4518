"""`tetragen eval RUN_DIR`: the run's metrics on its own data (or --data), as its family's pipeline reports them:
validation loss and bits per character for language models, FID/KID (+ class accuracy) of --n samples against the
test split for image generators (tetragen/eval/image.py), likelihood bounds where the model has one."""
from __future__ import annotations

import json

from .. import api
from ..errors import UserError
from .options import add_device


def add_parser(sub) -> None:
    p = sub.add_parser("eval", help="evaluate a trained run")
    p.add_argument("run_dir")
    p.add_argument("--data", default=None, help="evaluate on other data (default: the run's own)")
    p.add_argument("--eval-tokens", type=int, default=0, help="first N validation tokens only (0: the full split)")
    p.add_argument("--n", type=int, default=10000, help="image runs: samples scored with FID/KID (default 10000)")
    p.add_argument("--seed", type=int, default=0, help="image runs: seed of the samples (default 0)")
    p.add_argument("--iw-samples", type=int, default=100,
                   help="models with a likelihood bound (VAEs): importance samples per test image (default 100)")
    p.add_argument("--json", action="store_true", help="print the metrics as JSON")
    add_device(p)
    p.set_defaults(run=run)


def run(args) -> int:
    if args.eval_tokens < 0:
        raise UserError(f"--eval-tokens: {args.eval_tokens} must be >= 0 (0: the full validation split)")
    metrics, lines = api.evaluate(args.run_dir, device=args.device, data=args.data, n=args.n, seed=args.seed,
                                  iw_samples=args.iw_samples, eval_tokens=args.eval_tokens)
    print(json.dumps(metrics) if args.json else "\n".join([f"{args.run_dir}: {lines[0]}", *lines[1:]]))
    return 0
