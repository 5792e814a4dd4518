"""`tetragen eval RUN_DIR`: text families, the family's evaluation on the validation split of the run's data;
image families, FID/KID (+ class accuracy) of --n samples against the test split (tetragen/eval/image.py), and for
models with a likelihood bound (VAEs: their pipeline has `.likelihood`) the test ELBO and importance-weighted NLL."""
from __future__ import annotations

import json

import torch

from .. import api
from ..errors import UserError
from ..registry import get_family


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
    p.set_defaults(run=run)


def run(args) -> int:
    if args.eval_tokens < 0:
        raise UserError(f"--eval-tokens: {args.eval_tokens} must be >= 0 (0: the full validation split)")
    from ..eval.image import check_n, evaluate_images, report_lines
    check_n(args.n)
    from ..eval.likelihood import check_iw_samples
    args.iw_samples = check_iw_samples(args.iw_samples)
    pipe = api.load(args.run_dir)
    cfg = pipe.config
    if args.data:
        cfg.data.source = args.data
    cfg.train.eval_tokens = args.eval_tokens
    try:
        data = api.load_data(cfg, getattr(pipe, "tokenizer", None))
    except UserError as e:
        if args.data:
            raise
        raise UserError(f"{args.run_dir}: cannot read the data the run was trained on ({e}); "
                        f"pass --data NAME_OR_PATH to evaluate on a copy of it") from None
    if get_family(cfg.family).data_kind == "image":
        metrics = evaluate_images(pipe, data, n=args.n, seed=args.seed)
        lines = report_lines(args.run_dir, data.name, metrics)
        if hasattr(pipe, "likelihood"):  # the family can bound the likelihood (a VAE)
            extra, more = pipe.likelihood(data, iw_samples=args.iw_samples, seed=args.seed)
            metrics.update(extra)
            lines += more
        print(json.dumps(metrics) if args.json else "\n".join(lines))
        return 0
    metrics = get_family(cfg.family).evaluate(pipe.model, data, cfg, torch.device("cpu"))
    if args.json:
        print(json.dumps(metrics))
        return 0
    split = "the full validation split" if not args.eval_tokens else f"the first {args.eval_tokens} validation tokens"
    if "val_examples" in metrics:  # a classifier: loss and accuracy of its labels
        print(f"{args.run_dir}: {data.name}, validation split ({int(metrics['val_examples'])} examples)")
        print(f"val_loss     {metrics['val_loss']:.4f} nats/example")
        print(f"val_accuracy {metrics['val_accuracy']:.4f}")
        return 0
    if "val_accuracy" in metrics:  # a masked LM: loss and accuracy at the masked positions
        print(f"{args.run_dir}: {data.name}, {split} ({int(metrics['val_masked_tokens'])} masked tokens)")
        print(f"val_loss     {metrics['val_loss']:.4f} nats/masked token")
        print(f"val_accuracy {metrics['val_accuracy']:.4f}")
        return 0
    print(f"{args.run_dir}: {data.name}, {split} ({int(metrics['val_tokens'])} tokens)")
    print(f"val_loss {metrics['val_loss']:.4f} nats/token")
    print(f"val_bpc  {metrics['val_bpc']:.4f} bits/char")
    return 0
