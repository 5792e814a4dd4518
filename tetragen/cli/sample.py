"""`tetragen sample RUN_DIR --n N --out FILE [--class K|NAME] [--seed S] [--interpolate [--seed2 S2 | --images I J]
[--steps K]]`

Images from a trained image model: `.png` writes a grid, `.npz` writes `images` (uint8 [N,H,W] grey or [N,H,W,C]
colour) and, for a conditional model, `labels` (int64 [N], the class each image was asked for; without --class the
classes cycle evenly). The same seed gives the same images. `--interpolate` walks the latent space in --steps images:
for a GAN from the noise of --seed to that of --seed2 (default seed+1); for a VAE between the posterior means of two
test-split images (--images I J, default 0 1), decoded in the class of --class or of image I for a cvae (with
--seed2 a VAE walks between two prior draws instead, as a GAN does).
"""
from __future__ import annotations

import sys

from .. import api
from ..errors import UserError
from ..pipeline import require
from ..registry import get_family, run_modality
from ..sample.images import check_output
from .options import add_device, printed_warnings

MAX_SEED = (1 << 63) - 1


def add_parser(sub) -> None:
    p = sub.add_parser("sample", help="draw images from a trained image model (GAN, VAE, VAE-GAN, "
                                               "prompt -> image)")
    p.add_argument("run_dir")
    p.add_argument("--n", type=int, default=64, help="number of images (default 64)")
    p.add_argument("--out", required=True, help="output file: .png (a grid) or .npz (arrays)")
    p.add_argument("--class", dest="label", default=None, metavar="K|NAME",
                   help="conditional models: the class, by index or name (default: every class in turn)")
    p.add_argument("--seed", type=int, default=None, help="same seed, same images (default: random)")
    p.add_argument("--interpolate", action="store_true",
                   help="walk the latent space: GANs from --seed to --seed2, VAEs between two test images' codes")
    p.add_argument("--seed2", type=int, default=None, help="the other end of --interpolate (default: seed + 1)")
    p.add_argument("--images", type=int, nargs=2, default=None, metavar=("I", "J"),
                   help="VAEs with --interpolate: the test-split indices of the walk's two ends (default 0 1)")
    p.add_argument("--steps", type=int, default=None,
                   help="images along an --interpolate walk (default 8); for a prompted model with a masked prior, "
                        "the unmasking steps (default: the run's)")
    p.add_argument("--prompt", default=None, help="models that draw from text: what to draw, e.g. \"a dark sneaker\"")
    p.add_argument("--class-prompts", action="store_true",
                   help="models that draw from text: one caption per class, every class in turn (.npz gets labels)")
    p.add_argument("--guidance-scale", type=float, default=None,
                   help="models that draw from text: classifier-free guidance (0: ignore the prompt, 1: plain, "
                        "default: the run's)")
    p.add_argument("--temperature", type=float, default=None, help="models that draw from text: token temperature")
    p.add_argument("--top-k", type=int, default=None, help="models that draw from text: keep the k likeliest tokens")
    p.add_argument("--overwrite", action="store_true", help="replace --out if it exists")
    add_device(p)
    p.set_defaults(run=run)


def _check_seed(flag: str, seed: int | None) -> None:
    if seed is not None and not 0 <= seed <= MAX_SEED:
        raise UserError(f"{flag}: {seed} is out of range; use an integer from 0 to 2**63-1")


def run(args) -> int:
    # everything that can be checked without the model is checked first; nothing is written until the images exist
    walk_steps = args.steps if args.steps is not None else 8
    if not args.interpolate and args.n < 1:
        raise UserError(f"--n: {args.n} must be at least 1")
    if args.interpolate and walk_steps < 2:
        raise UserError(f"--steps: {walk_steps} must be at least 2 (the two ends of the walk)")
    if args.prompt is not None and args.class_prompts:
        raise UserError("--prompt and --class-prompts: give one prompt, or sweep the classes' prompts")
    _check_seed("--seed", args.seed)
    _check_seed("--seed2", args.seed2)
    if args.images is not None and not args.interpolate:
        raise UserError("--images: the ends of a walk; use it with --interpolate")
    if args.images is not None and args.seed2 is not None:
        raise UserError("--images and --seed2: a walk goes between two test images or two seeds; give one of them")
    if args.images is not None and min(args.images) < 0:
        raise UserError(f"--images {args.images[0]} {args.images[1]}: test-split indices start at 0")
    run_config = api.read_run_config(args.run_dir)
    if "sample" not in get_family(run_config.family).capabilities:  # says which families sample, before --out is judged
        require(api.load(args.run_dir, device=args.device), "sample", args.run_dir)
    writers = run_modality(run_config).writers  # the files of the run's kind of content, by --out's suffix
    out = check_output(args.out, overwrite=args.overwrite, suffixes=tuple(writers))
    folder = "/" in writers and (str(args.out).endswith(("/", "\\")) or out.is_dir())  # one file per sample
    write = writers["/" if folder else out.suffix.lower()]
    pipe = api.load(args.run_dir, device=args.device)
    require(pipe, "sample", args.run_dir)
    prompted = {"--prompt": args.prompt, "--class-prompts": args.class_prompts or None,
                "--guidance-scale": args.guidance_scale, "--temperature": args.temperature, "--top-k": args.top_k}
    asked = [flag for flag, value in prompted.items() if value is not None]
    if asked and "prompt" not in pipe.capabilities:
        require(pipe, "prompt", args.run_dir, f"{asked[0]} is for models that draw from a text prompt")
    if "prompt" in pipe.capabilities and not args.interpolate:
        return _sample_prompted(args, pipe, out, write)
    label = pipe.class_index(args.label) if args.label is not None else None  # checks it before any work
    image_walk = args.interpolate and "encode" in pipe.capabilities and args.seed2 is None
    if args.images is not None and not image_walk:
        raise UserError(f"--images: a {pipe.config.family} run has no encoder to place images in its latent "
                        f"space; its walk goes from --seed to --seed2")
    if image_walk:
        i, j = args.images if args.images is not None else (0, 1)
        data = api.load_data(pipe.config)
        count = len(data.test.labels)
        if max(i, j) >= count:
            raise UserError(f"--images {i} {j}: out of range; the test split of {data.name} has {count} images "
                            f"(0 to {count - 1})")
        ends = data.test.images[[i, j]]
        images = pipe.interpolate_images(ends, walk_steps, labels=data.test.labels[[i, j]] if pipe.conditional
                                         else None, label=label)
        walk_label = label if label is not None else int(data.test.labels[i])
        labels = pipe.labels_for(walk_steps, walk_label) if pipe.conditional else None
        what = f"a walk of {walk_steps} images between the codes of test images {i} and {j}"
    elif args.interpolate:
        seed = args.seed if args.seed is not None else 0
        seed2 = args.seed2 if args.seed2 is not None else seed + 1
        images = pipe.interpolate(seed, seed2, walk_steps, label=label)
        labels = pipe.labels_for(walk_steps, label if label is not None else 0) if pipe.conditional else None
        what = f"a walk of {walk_steps} images from seed {seed} to {seed2}"
    else:
        labels = pipe.labels_for(args.n, label)
        images = pipe.sample(args.n, seed=args.seed, labels=labels)
        what = f"{args.n} samples"
    # a grid with one column per class reads best when the classes cycle
    columns = (pipe.num_classes if pipe.conditional and label is None and not args.interpolate
               and args.n >= pipe.num_classes and pipe.num_classes <= 16 else None)
    write(out, images, labels=labels.numpy() if labels is not None else None,
          columns=walk_steps if args.interpolate else columns)
    print(f"wrote {what} to {out}", file=sys.stderr)
    return 0


def _sample_prompted(args, pipe, out, write) -> int:
    """A model that draws from text: --prompt for every image, or the classes' prompts (--class-prompts, --class
    K, or by default every class in turn)."""
    labels = None if args.prompt is not None else pipe.labels_for(args.n, args.label)
    with printed_warnings():
        images = pipe.sample(args.n, seed=args.seed, prompt=args.prompt, labels=labels,
                             guidance_scale=args.guidance_scale, steps=args.steps, temperature=args.temperature,
                             top_k=args.top_k)
    columns = pipe.num_classes if labels is not None and args.label is None and 1 < pipe.num_classes <= 16 \
        and args.n >= pipe.num_classes else None
    write(out, images, labels=labels.numpy() if labels is not None else None, columns=columns)
    what = f"{args.n} samples of {args.prompt!r}" if args.prompt is not None else f"{args.n} class-prompted samples"
    print(f"wrote {what} to {out}", file=sys.stderr)
    return 0
