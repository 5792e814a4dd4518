"""`tetragen reconstruct RUN_DIR --n 16 --out grid.png [--seed S]`

Test images beside the model's reconstructions of them (the decoder's mean at the posterior mean), as one PNG grid of
(original, reconstruction) pairs. Models with an encoder only (VAEs). The first --n test images, or with --seed a
seeded random choice of them.
"""
from __future__ import annotations

import math
import sys

import numpy as np

from .. import api
from ..errors import UserError
from ..pipeline import require
from ..eval.image import subset
from ..sample.images import check_output, write_png
from .options import add_device


def add_parser(sub) -> None:
    p = sub.add_parser("reconstruct", help="test images beside their reconstructions (VAEs, image tokenizers)")
    p.add_argument("run_dir")
    p.add_argument("--n", type=int, default=16, help="number of test images (default 16)")
    p.add_argument("--out", required=True, help="output .png: (original, reconstruction) pairs side by side")
    p.add_argument("--seed", type=int, default=None, help="pick the test images at random with this seed "
                                                          "(default: the first --n)")
    p.add_argument("--data", default=None, help="take the images from other data (default: the run's own)")
    p.add_argument("--overwrite", action="store_true", help="replace --out if it exists")
    add_device(p)
    p.set_defaults(run=run)


def run(args) -> int:
    if args.n < 1:
        raise UserError(f"--n: {args.n} must be at least 1")
    if args.seed is not None and args.seed < 0:
        raise UserError(f"--seed: {args.seed} must be >= 0")
    out = check_output(args.out, overwrite=args.overwrite, suffixes=(".png",))
    pipe = api.load(args.run_dir, device=args.device)
    require(pipe, "reconstruct", args.run_dir)
    cfg = pipe.config
    if args.data:
        cfg.data.source = args.data
    data = api.load_data(cfg)
    count = len(data.test.labels)
    idx = np.arange(min(args.n, count)) if args.seed is None else subset(count, args.n, args.seed)
    if args.n > count:
        print(f"tetragen: the test split has {count} images; reconstructing all of them", file=sys.stderr)
    images, labels = data.test.images[idx], data.test.labels[idx]
    recon = pipe.reconstruct(images, labels if pipe.conditional else None)
    pairs = np.stack([images, recon], axis=1).reshape(-1, *images.shape[1:])  # original, reconstruction, ...
    write_png(out, pairs, columns=2 * math.ceil(math.sqrt(len(images))))
    print(f"wrote {len(images)} test images beside their reconstructions to {out}", file=sys.stderr)
    return 0
