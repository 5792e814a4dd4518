"""`tetragen sample RUN_DIR --n N --out FILE [--class K|NAME] [--seed S] [--interpolate [--seed2 S2 | --images I J]
[--steps K]] [--sampler NAME --steps K --guidance-scale G] [--init-image FILE [--strength S] [--mask FILE]]`

Images from a trained image model: `.png` writes a grid, `.npz` writes `images` (uint8 [N,H,W] grey or [N,H,W,C]
colour) and, for a conditional model, `labels` (int64 [N], the class each image was asked for; without --class the
classes cycle evenly). The same seed gives the same images. `--interpolate` walks the latent space in --steps images:
for a GAN from the noise of --seed to that of --seed2 (default seed+1); for a VAE between the posterior means of two
test-split images (--images I J, default 0 1), decoded in the class of --class or of image I for a cvae (with
--seed2 a VAE walks between two prior draws instead, as a GAN does).

A run that chooses how it samples at sampling time (the `steer` capability: a diffusion model's solver, steps and
guidance) takes `--sampler`, `--steps` and `--guidance-scale`; one that edits (`edit`: img2img, inpainting) takes
`--init-image FILE` (redrawn --n times, 1 by default, from --seed, --seed + 1, ...) with `--strength` and `--mask`.
The run's pipeline names the settings it takes and checks them (tetragen/pipeline.py `Steered`, `Edits`).
"""
from __future__ import annotations

import sys

import numpy as np

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
    p.add_argument("--n", type=int, default=None, help="number of images (default 64; with --init-image 1)")
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
                   help="images along an --interpolate walk (default 8); otherwise a model's sampling steps "
                        "(diffusion: solver steps; a prompted model with a masked prior: unmasking steps; default: "
                        "the run's)")
    p.add_argument("--sampler", default=None,
                   help="models that choose their sampler at sampling time: which one (diffusion: euler, heun, "
                        "dpm++; default: the run's)")
    p.add_argument("--prompt", default=None, help="models that draw from text: what to draw, e.g. \"a dark sneaker\"")
    p.add_argument("--class-prompts", action="store_true",
                   help="models that draw from text: one caption per class, every class in turn (.npz gets labels)")
    p.add_argument("--guidance-scale", type=float, default=None,
                   help="models that draw from text or a class with classifier-free guidance: its scale (0: ignore "
                        "the prompt or class, 1: plain, default: the run's)")
    p.add_argument("--temperature", type=float, default=None, help="models that draw from text: token temperature")
    p.add_argument("--top-k", type=int, default=None, help="models that draw from text: keep the k likeliest tokens")
    p.add_argument("--init-image", default=None, metavar="FILE",
                   help="models that edit: the image to redraw (img2img; converted to the model's size and mode "
                        "with a notice)")
    p.add_argument("--strength", type=float, default=None,
                   help="with --init-image: how far it is redrawn, 0 (kept) to 1 (drawn anew; default 0.6, with "
                        "--mask 1)")
    p.add_argument("--mask", default=None, metavar="FILE",
                   help="with --init-image: inpaint; a black-and-white image of the model's size, white where the "
                        "image is drawn anew (or transparent where it is, with an alpha channel)")
    p.add_argument("--overwrite", action="store_true", help="replace --out if it exists")
    add_device(p)
    p.set_defaults(run=run)


def _check_seed(flag: str, seed: int | None) -> None:
    if seed is not None and not 0 <= seed <= MAX_SEED:
        raise UserError(f"{flag}: {seed} is out of range; use an integer from 0 to 2**63-1")


# flag -> the setting a Steered pipeline takes (tetragen/pipeline.py); --steps is an --interpolate walk's length
STEER_FLAGS = {"--sampler": "sampler", "--steps": "steps", "--guidance-scale": "guidance_scale"}
EDIT_FLAGS = {"--strength": "strength", "--mask": "mask", "--init-image": "images"}


def run(args) -> int:
    # everything that can be checked without the model is checked first; nothing is written until the images exist
    walk_steps = args.steps if args.steps is not None else 8
    editing = args.init_image is not None
    if args.n is None:
        args.n = 1 if editing else 64
    if not args.interpolate and args.n < 1:
        raise UserError(f"--n: {args.n} must be at least 1")
    for flag, value in (("--strength", args.strength), ("--mask", args.mask)):
        if value is not None and not editing:
            raise UserError(f"{flag}: edits an image; give the image with --init-image FILE")
    if args.strength is not None and not 0 <= args.strength <= 1:
        raise UserError(f"--strength: {args.strength:g} is out of range; use 0 (the image as it is) to 1 (drawn "
                        f"anew)")
    if editing and args.interpolate:
        raise UserError("--init-image and --interpolate: edit an image or walk between seeds, not both")
    if args.interpolate and (args.sampler is not None or args.guidance_scale is not None):
        flag = "--sampler" if args.sampler is not None else "--guidance-scale"
        raise UserError(f"{flag}: a walk (--interpolate) is drawn with the run's sampling settings; leave {flag} "
                        f"out")
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
    settings = _steering(args, pipe)
    prompted = {"--prompt": args.prompt, "--class-prompts": args.class_prompts or None,
                "--temperature": args.temperature, "--top-k": args.top_k}
    if settings is None:  # a prompted model's own settings
        prompted["--guidance-scale"] = args.guidance_scale
    asked = [flag for flag, value in prompted.items() if value is not None]
    if asked and "prompt" not in pipe.capabilities:
        require(pipe, "prompt", args.run_dir, f"{asked[0]} is for models that draw from a text prompt")
    if editing:
        return _edit(args, pipe, out, write, settings or {})
    if "prompt" in pipe.capabilities and not args.interpolate:
        return _sample_prompted(args, pipe, out, write, settings)
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
        images = pipe.sample(args.n, seed=args.seed, labels=labels, **(settings or {}))
        what = f"{args.n} samples"
    # a grid with one column per class reads best when the classes cycle
    columns = (pipe.num_classes if pipe.conditional and label is None and not args.interpolate
               and args.n >= pipe.num_classes and pipe.num_classes <= 16 else None)
    write(out, images, labels=labels.numpy() if labels is not None else None,
          columns=walk_steps if args.interpolate else columns)
    print(f"wrote {what} to {out}", file=sys.stderr)
    return 0


def _steering(args, pipe) -> dict | None:
    """The sampling settings given by flags, checked by a run that chooses them at sampling time (`steer`), with its
    defaults filled in; None for a run that does not, which is refused the flags a prompted model does not take
    either."""
    flags = {"--sampler": args.sampler, "--steps": args.steps, "--guidance-scale": args.guidance_scale}
    given = {flag: value for flag, value in flags.items() if value is not None}
    if args.interpolate:
        given.pop("--steps", None)  # the walk's length
    if "steer" not in pipe.capabilities:
        takes = ("--steps", "--guidance-scale") if "prompt" in pipe.capabilities else ()
        refused = [flag for flag in given if flag not in takes]
        if refused:
            require(pipe, "steer", args.run_dir, f"{refused[0]} is for models that choose their sampling at "
                                                  f"sampling time")
        return None
    require(pipe, "steer", args.run_dir)
    options = pipe.sampling_options
    for flag in given:
        if STEER_FLAGS[flag] not in options:
            takes = ", ".join("--" + o.replace("_", "-") for o in options)
            raise UserError(f"{flag}: a {pipe.config.family} run like {args.run_dir} does not take it here; it "
                            f"takes {takes}")
    return _flagged(lambda: pipe.check_sampling(**{STEER_FLAGS[f]: v for f, v in given.items()}),
                    {**STEER_FLAGS, **EDIT_FLAGS})


def _flagged(fn, flags: dict[str, str]):
    """fn(), its UserErrors about a setting ("steps: ...") told by the flag that gave it ("--steps: ...")."""
    try:
        return fn()
    except UserError as e:
        message = str(e)
        for flag, name in flags.items():
            if message.startswith(name + ":") or message.startswith(name + " "):
                raise UserError(flag + message[len(name):]) from None
        raise


def _edit(args, pipe, out, write, settings: dict) -> int:
    """--init-image redrawn --n times (seeds --seed, --seed + 1, ...) by a run that edits: img2img at --strength,
    inpainting with --mask."""
    require(pipe, "edit", args.run_dir, "--init-image is for models that edit images (img2img, inpainting)")
    with printed_warnings():
        image = _flagged(lambda: pipe.read_edit_input(args.init_image, name="--init-image"), EDIT_FLAGS)
    mask = None
    if args.mask is not None:
        mask = _flagged(lambda: pipe.read_edit_input(args.mask, mask=True, name="--mask"), EDIT_FLAGS)
    items = np.repeat(image, args.n, axis=0)
    condition = {}
    if args.prompt is not None:
        condition["prompt"] = args.prompt
    else:
        condition["labels"] = pipe.labels_for(args.n, args.label)
    with printed_warnings():
        images = _flagged(lambda: pipe.edit(items, strength=args.strength, mask=mask, seed=args.seed, **condition,
                                            **settings), {**STEER_FLAGS, **EDIT_FLAGS})
    labels = condition.get("labels")
    write(out, images, labels=labels.numpy() if labels is not None else None)
    how = "inpainted" if mask is not None else "redrawn"
    print(f"wrote {args.n} {how} image{'s' if args.n != 1 else ''} of {args.init_image} to {out}", file=sys.stderr)
    return 0


def _sample_prompted(args, pipe, out, write, settings: dict | None) -> int:
    """A model that draws from text: --prompt for every image, or the classes' prompts (--class-prompts, --class
    K, or by default every class in turn)."""
    labels = None if args.prompt is not None else pipe.labels_for(args.n, args.label)
    if settings is None:  # the prompted model's own settings
        settings = {"guidance_scale": args.guidance_scale, "steps": args.steps, "temperature": args.temperature,
                    "top_k": args.top_k}
    with printed_warnings():
        images = pipe.sample(args.n, seed=args.seed, prompt=args.prompt, labels=labels, **settings)
    columns = pipe.num_classes if labels is not None and args.label is None and 1 < pipe.num_classes <= 16 \
        and args.n >= pipe.num_classes else None
    write(out, images, labels=labels.numpy() if labels is not None else None, columns=columns)
    what = f"{args.n} samples of {args.prompt!r}" if args.prompt is not None else f"{args.n} class-prompted samples"
    print(f"wrote {what} to {out}", file=sys.stderr)
    return 0
