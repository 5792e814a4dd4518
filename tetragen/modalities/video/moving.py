"""`moving-fashion-mnist`: short clips of Fashion-MNIST garments moving across a dark square, made here.

As Moving MNIST is made from MNIST digits, each clip of `moving-fashion-mnist` is one garment (shrunk to 5/8 of the
clip's side) gliding in one of eight directions (left, right, up, down and the diagonals) at a speed of its own,
starting where its whole path stays inside the frame, or bouncing: moving in a direction of its own, drawn from all
angles, fast enough to bounce off a wall of the frame at least once. The class of a clip is the garment and its
motion ("sneaker moving left", "sneaker bouncing"), 10 x 9 = 90 classes, and a clip's caption says both ("a sneaker
moving left", "a sneaker bouncing"). Each clip of
`moving-fashion-mnist-pairs` holds two different garments (3/8 of the side each) beside each other, moving apart or
together horizontally: its class is the pair, either way round, and the motion ("a shirt and a bag moving apart"),
45 x 2 = 90 classes. `moving-fashion-mnist-mixed` holds both kinds, half its clips each, and all 180 classes.
Training clips come from Fashion-MNIST's training images, test clips from its test images, so
the test garments are never seen in training.

Everything is fixed by the seed: which garments, motion, speed and start each clip has is drawn from it and written
to the manifest with the sha256 of the frames, so the set is made again byte for byte (the images come from the
verified Fashion-MNIST files). Sets: `moving-fashion-mnist` (16 frames of 32x32), `moving-fashion-mnist-64` (16
frames of 64x64, fewer clips: each is four times the size), `moving-fashion-mnist-pairs` and
`moving-fashion-mnist-mixed` (16 frames of 32x32).
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ...data.images import fashion_mnist
from ...data.sources import MANIFEST, cache_dir, made_dataset, made_set
from ...errors import UserError
from ...files import read_json, replace_atomically, write_json

VERSION = 2          # of the sets holding one garment: 2 added bouncing (the pairs' set is still version 1)
FRAMES_FILE = "frames.npy"
FRAMES = 16
GARMENTS = ["t-shirt", "trousers", "pullover", "dress", "coat", "sandal", "shirt", "sneaker", "bag", "ankle boot"]
# direction name -> (rows, columns) moved per step, before the clip's speed
DIRECTIONS = {"left": (0, -1), "right": (0, 1), "up": (-1, 0), "down": (1, 0),
              "up-left": (-1, -1), "up-right": (-1, 1), "down-left": (1, -1), "down-right": (1, 1)}
BOUNCING = "bouncing"
MOTIONS = [*DIRECTIONS, BOUNCING]


def said(motion: str) -> str:
    """How a class name says a motion: "moving left", "bouncing"."""
    return motion if motion == BOUNCING else f"moving {motion}"


CLASSES = [f"{g} {said(m)}" for g in GARMENTS for m in MOTIONS]
SPEED = (0.75, 1.0)   # fraction of the largest speed that keeps a whole path inside the frame
BOUNCE = (1.25, 1.75)  # a bouncing garment's path along its faster axis, in lengths of the room it has there
GARMENT = 5           # eighths of the clip's side that a garment's side is


def named(noun: str) -> str:
    """A garment with its article: "a sneaker", "an ankle boot", "trousers"."""
    return noun if noun == "trousers" else f"an {noun}" if noun[0] in "aeiou" else f"a {noun}"


# two garments: every pair of different garments (either one may be on the left), moving apart or together
PAIR_MOTIONS = ("apart", "together")
PAIRS = [(a, b) for a in range(len(GARMENTS)) for b in range(a + 1, len(GARMENTS))]
PAIR_CLASSES = [f"{named(GARMENTS[a])} and {named(GARMENTS[b])} moving {m}" for a, b in PAIRS for m in PAIR_MOTIONS]
PAIR_GARMENT = 6      # sixteenths of the clip's side that each garment's side is
NEAREST = 0.6         # the closest the garments' centres come, in garment sides (they overlap a little there)


@dataclass(frozen=True)
class Variant:
    name: str
    side: int
    train: int         # clips
    test: int
    garments: tuple = (1,)  # garments a clip may hold: 1 (moving in a direction or bouncing) and/or 2 (moving apart
                            # or together); a set of both holds each in half its clips, one-garment classes first
    version: int = VERSION  # its clips are drawn from (seed, version, split)

    @property
    def classes(self) -> list[str]:
        return [c for k in self.garments for c in (CLASSES if k == 1 else PAIR_CLASSES)]

    def parts(self) -> tuple[np.ndarray, np.ndarray]:
        """Per class, which garment (a pair of garments counts as one, numbered after the single garments) and which
        motion (the pairs' apart and together numbered after the one-garment motions) it is."""
        garment, motion = [], []
        for k in self.garments:
            things, motions = (len(GARMENTS), len(MOTIONS)) if k == 1 else (len(PAIRS), len(PAIR_MOTIONS))
            g0, m0 = len(set(garment)), len(set(motion))
            garment += [g0 + c // motions for c in range(things * motions)]
            motion += [m0 + c % motions for c in range(things * motions)]
        return np.array(garment), np.array(motion)

    def members(self) -> list[list[int]]:
        """Per class, the parts it is made of, as ids: its garment or both garments of its pair (the garments'
        indices), then its motion (numbered after the garments, the pairs' apart and together after the nine)."""
        out = []
        for k in self.garments:
            if k == 1:
                out += [[g, len(GARMENTS) + m] for g in range(len(GARMENTS)) for m in range(len(MOTIONS))]
            else:
                out += [[a, b, len(GARMENTS) + len(MOTIONS) + m] for a, b in PAIRS for m in range(len(PAIR_MOTIONS))]
        return out

    def make(self, images: np.ndarray, labels: np.ndarray, count: int, rng: np.random.Generator):
        """`count` clips, their class and how each was made; with both kinds, half of each in an order drawn."""
        if len(self.garments) == 1:
            return (make_clips if self.garments == (1,) else make_pairs)(images, labels, count, self.side, rng)
        ones, ones_y, ones_made = make_clips(images, labels, count // 2, self.side, rng)
        twos, twos_y, twos_made = make_pairs(images, labels, count - count // 2, self.side, rng)
        order = rng.permutation(count)
        made = [{"garments": 1, **m} for m in ones_made] + [{"garments": 2, **m} for m in twos_made]
        return (np.concatenate([ones, twos])[order], np.concatenate([ones_y, twos_y + len(CLASSES)])[order],
                [made[i] for i in order])

    def about(self) -> str:
        one = "a Fashion-MNIST garment moving in one of 8 directions or bouncing"
        two = "two Fashion-MNIST garments moving apart or together"
        kinds = {1: one, 2: two}
        return f"{' or '.join(kinds[k] for k in self.garments)} ({len(self.classes)} classes, captions)"


VARIANTS = {v.name: v for v in (Variant("moving-fashion-mnist", 32, 16000, 2000),
                                 Variant("moving-fashion-mnist-64", 64, 6000, 1000),
                                 Variant("moving-fashion-mnist-pairs", 32, 16000, 2000, garments=(2,), version=1),
                                 Variant("moving-fashion-mnist-mixed", 32, 16000, 2000, garments=(1, 2)))}


def caption(label: int) -> str:
    garment, motion = divmod(int(label), len(MOTIONS))
    return f"{named(GARMENTS[garment])} {said(MOTIONS[motion])}"


def _shrink(images: np.ndarray, side: int) -> np.ndarray:
    """uint8 (N, 28, 28) -> (N, side, side), bilinear (Pillow, the same bytes on every machine)."""
    from PIL import Image
    if side == images.shape[1]:
        return images
    return np.stack([np.asarray(Image.fromarray(im).resize((side, side), Image.BILINEAR)) for im in images])


def make_clips(images: np.ndarray, labels: np.ndarray, count: int, side: int, rng: np.random.Generator,
               frames: int = FRAMES) -> tuple[np.ndarray, np.ndarray, list[dict]]:
    """`count` clips uint8 (count, frames, side, side) of garments drawn from `images` (N, 28, 28) / `labels`, with
    their class (garment * 9 + motion) and how each was made."""
    g = side * GARMENT // 8
    room = side - g                                       # the top-left corner moves within [0, room]
    picks = rng.integers(0, len(images), size=count)
    motions = rng.integers(0, len(MOTIONS), size=count)
    speeds = rng.uniform(*SPEED, size=count) * room / (frames - 1)
    starts = rng.uniform(0.0, 1.0, size=(count, 2))
    angles = rng.uniform(0.0, 2 * np.pi, size=count)     # bouncing: its direction, and its path along the faster
    bounce = rng.uniform(*BOUNCE, size=count) * room      # axis (longer than the room there: it meets a wall)
    garments = _shrink(images[picks], g)
    clips = np.zeros((count, frames, side, side), np.uint8)
    made = []
    steps = np.arange(frames)
    for i in range(count):
        motion = MOTIONS[motions[i]]
        if motion == BOUNCING:
            v = np.array([np.sin(angles[i]), np.cos(angles[i])])
            v *= bounce[i] / (frames - 1) / np.abs(v).max()
            pos = [np.rint(_reflect(starts[i, k] * room + v[k] * steps, room)).astype(int) for k in range(2)]
            how = {"velocity": [round(float(x), 6) for x in v]}
        else:
            pos = []
            for d, u in zip(DIRECTIONS[motion], starts[i]):
                travel = speeds[i] * (frames - 1) * abs(d)
                lo = travel if d < 0 else 0.0             # the start that keeps the whole path inside [0, room]
                start = lo + u * (room - travel)
                pos.append(np.rint(start + d * speeds[i] * steps).astype(int))
            how = {"speed": round(float(speeds[i]), 6)}
        for t in range(frames):
            y, x = pos[0][t], pos[1][t]
            clips[i, t, y:y + g, x:x + g] = garments[i]
        made.append({"image": int(picks[i]), "motion": motion, **how, "start": [int(pos[0][0]), int(pos[1][0])]})
    return clips, labels[picks].astype(np.int64) * len(MOTIONS) + motions.astype(np.int64), made


def _reflect(x: np.ndarray, room: float) -> np.ndarray:
    """Positions along a line folded into [0, room] as a ball bouncing off walls at 0 and room goes."""
    x = np.mod(x, 2 * room)
    return np.where(x > room, 2 * room - x, x)


def make_pairs(images: np.ndarray, labels: np.ndarray, count: int, side: int, rng: np.random.Generator,
               frames: int = FRAMES) -> tuple[np.ndarray, np.ndarray, list[dict]]:
    """`count` clips uint8 (count, frames, side, side) of two different garments drawn from `images` (N, 28, 28) /
    `labels`, each at a height of its own, moving apart or together horizontally (overlapping a little where they
    may be closest: the brighter pixel shows), with their class (pair * 2 + motion) and how each was made."""
    g = side * PAIR_GARMENT // 16
    near, far = NEAREST * g, side - g                   # distances of the garments' left edges: closest, farthest
    picks = rng.integers(0, len(images), size=(count, 2))
    same = labels[picks[:, 0]] == labels[picks[:, 1]]
    while same.any():                                   # two different garments
        picks[same, 1] = rng.integers(0, len(images), size=int(same.sum()))
        same = labels[picks[:, 0]] == labels[picks[:, 1]]
    motions = rng.integers(0, len(PAIR_MOTIONS), size=count)
    travel = rng.uniform(*SPEED, size=count) * (far - near)  # how much the distance grows or shrinks in the clip
    u = rng.uniform(0.0, 1.0, size=(count, 4))          # the closest distance, the midpoint, the two rows
    garments = _shrink(images[picks.reshape(-1)], g).reshape(count, 2, g, g)
    clips = np.zeros((count, frames, side, side), np.uint8)
    made, steps = [], np.arange(frames) / (frames - 1)
    for i in range(count):
        closest = near + u[i, 0] * (far - near - travel[i])
        grow = steps if PAIR_MOTIONS[motions[i]] == "apart" else steps[::-1]
        distance = closest + travel[i] * grow                                     # (frames,)
        widest = closest + travel[i]
        mid = widest / 2 + u[i, 1] * (side - g - widest)  # both garments inside the frame at the widest
        xs = [np.rint(mid - distance / 2).astype(int), np.rint(mid + distance / 2).astype(int)]
        ys = np.rint(u[i, 2:] * (side - g)).astype(int)
        for t in range(frames):
            for k in range(2):
                patch = clips[i, t, ys[k]:ys[k] + g, xs[k][t]:xs[k][t] + g]
                np.maximum(patch, garments[i, k], out=patch)
        made.append({"images": [int(p) for p in picks[i]], "motion": PAIR_MOTIONS[motions[i]],
                     "travel": round(float(travel[i]), 6),
                     "start": [[int(ys[k]), int(xs[k][0])] for k in range(2)]})
    pair = [PAIRS.index(tuple(sorted(int(labels[p]) for p in two))) for two in picks]
    return clips, np.array(pair, np.int64) * len(PAIR_MOTIONS) + motions.astype(np.int64), made


def _sha256(a: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(a).data).hexdigest()


def folder_for(variant: Variant, seed: int) -> Path:
    return cache_dir() / f"{variant.name}-v{variant.version}-seed{seed}"


def make_variant(folder: Path, variant: Variant, seed: int) -> None:
    train, test = fashion_mnist()
    parts, clips_doc = [], []
    for split, source, count in (("train", train, variant.train), ("test", test, variant.test)):
        rng = np.random.default_rng((seed, variant.version, 0 if split == "train" else 1))
        clips, labels, made = variant.make(source.images[..., 0], source.labels, count, rng)
        parts.append(clips)
        clips_doc += [{"split": split, "label": variant.classes[int(y)], **m} for y, m in zip(labels, made)]
    frames = np.concatenate(parts)
    replace_atomically(folder / FRAMES_FILE, lambda tmp: np.save(tmp, frames, allow_pickle=False))
    write_json(folder / MANIFEST, {
        "name": variant.name, "version": variant.version, "seed": seed, "frames": FRAMES, "side": variant.side,
        "source": "fashion-mnist (verified files)", "classes": variant.classes, "shape": list(frames.shape),
        "sha256_frames": _sha256(frames),
        "sha256_clips": hashlib.sha256(json.dumps(clips_doc, sort_keys=True).encode()).hexdigest(),
        "clips": clips_doc})


def ensure(variant: Variant, seed: int = 0) -> Path:
    n = variant.train + variant.test
    return made_set(folder_for(variant, seed), lambda tmp: make_variant(Path(tmp), variant, seed),
                    f"making {variant.name} ({n} clips of {FRAMES}x{variant.side}x{variant.side} from Fashion-MNIST)")


def read_variant(variant: Variant, seed: int = 0) -> tuple[np.ndarray, dict]:
    """The clips uint8 (N, T, S, S) and the manifest, checked against its sha256 (made first when missing)."""
    folder = ensure(variant, seed)
    again = f"delete {folder} and make it again with `tetragen data fetch {variant.name}`"
    doc = read_json(folder / MANIFEST, again)
    try:
        frames = np.load(folder / FRAMES_FILE, allow_pickle=False)
    except (OSError, ValueError) as e:
        raise UserError(f"{folder / FRAMES_FILE}: unreadable ({str(e).splitlines()[0][:80]}); {again}") from None
    if _sha256(frames) != doc.get("sha256_frames"):
        raise UserError(f"{folder / FRAMES_FILE}: its sha256 differs from the manifest's (damaged); {again}")
    return frames, doc


DATASETS = [made_dataset(v.name, f"{v.train // 1000}k/{v.test // 1000}k clips, {FRAMES} frames of {v.side}x{v.side}: "
                                 f"{v.about()}",
                         "made on this machine from Fashion-MNIST", lambda v=v: folder_for(v, 0),
                         lambda v=v: ensure(v, 0), lambda doc: f"made from Fashion-MNIST, seed {doc['seed']}",
                         (FRAMES_FILE,))
            for v in VARIANTS.values()]
