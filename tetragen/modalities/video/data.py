"""What a run on video reads, and how its clips are scored.

A clip of T frames of S x S grey pixels is learnt as one S x S grid with T channels (the frames stacked as channels),
so every family that learns grids trains on clips unchanged: its convolutions see all frames at once and learn
appearance and motion together. `frames_of` / `grids_of` turn one form into the other.

The evaluator reads clips the same way (a CNN over the stacked frames, trained on the training clips' classes: the
garment and its motion), so it tells both what is in a clip and where it goes. Reference rows, each scored against
the same real test clips: the training clips (a perfect generator), the test clips frozen on their first frame (right
garment, no motion) and the test clips with their frames shuffled (right garment and places, motion scrambled).
"""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

from ...data.grids import is_trained
from ...data.images import ImageData, ImageSet
from ...errors import UserError
from ...files import read_json, write_json
from .folder import claims as folder_claims
from .folder import clip_folder
from .moving import CLASSES, DIRECTIONS, FRAMES, VARIANTS, read_variant

VIDEO_FILE = "video.json"      # a run's clip shape and frame rate, beside classes.json
FOLDER_SIDES = (32, 64)        # the sides a folder's clips are learnt at (the first unless model.image_size asks)
FPS = 10                       # frames per second of the clips a user gets (a GIF counts in 1/100 s)


def grids_of(frames: np.ndarray) -> np.ndarray:
    """uint8 clips (N, T, H, W) -> the grids models learn (N, H, W, T)."""
    return np.ascontiguousarray(np.moveaxis(frames, 1, -1))


def frames_of(grids: np.ndarray) -> np.ndarray:
    """The grids (N, H, W, T) -> clips (N, T, H, W)."""
    return np.ascontiguousarray(np.moveaxis(grids, -1, 1))


class VideoData(ImageData):
    """Clips as grids with one channel per frame."""
    kind = "video"
    unit = "clip"
    item = "clip"
    distance = "FD (video)"
    references_named = {"train": "train vs test", "still": "first frame held vs test",
                        "shuffled": "frames shuffled vs test"}

    def __init__(self, name: str, train: ImageSet, test: ImageSet, fps: int = FPS, class_parts: dict | None = None):
        super().__init__(name, train, test)
        self.fps = fps
        self.class_parts = class_parts or {}

    @property
    def frames(self) -> int:
        return int(self.image_shape[-1])

    def save_assets(self, folder: Path) -> None:
        super().save_assets(folder)
        write_json(Path(folder) / VIDEO_FILE, {"frames": self.frames, "side": int(self.image_shape[0]),
                                               "fps": self.fps})

    def references(self, real_idx: np.ndarray, train_idx: np.ndarray) -> dict[str, np.ndarray]:
        real = self.test.images[real_idx]
        order = np.random.default_rng(0).permutation(self.frames)
        return {"train": self.train.images[train_idx],
                "still": np.repeat(real[..., :1], self.frames, axis=-1),
                "shuffled": np.ascontiguousarray(real[..., order])}


def class_parts() -> dict[str, np.ndarray]:
    """The parts of a moving-fashion-mnist class that the evaluation scores apart: class index -> garment, and
    class index -> direction of motion."""
    k = np.arange(len(CLASSES))
    return {"garment": k // len(DIRECTIONS), "motion": k % len(DIRECTIONS)}


# ----------------------------------------------------------------------------------------------------------------
# the video modality's GridForm: which sources are video, and reading one for a run

def claims(source: str) -> bool:
    """Whether a --data source is video: one of the named clip sets, or a folder with clips in it."""
    if source in VARIANTS:
        return True
    p = Path(source).expanduser()
    return p.is_dir() and folder_claims(p)


def run_video(run_dir: Path) -> dict:
    """The clip shape and frame rate a video run was trained with (video.json beside its weights)."""
    doc = read_json(Path(run_dir) / VIDEO_FILE, "the run folder is incomplete")
    if not all(isinstance(doc.get(k), int) for k in ("frames", "side", "fps")):
        raise UserError(f"{Path(run_dir) / VIDEO_FILE}: needs integer 'frames', 'side' and 'fps'; the run folder is "
                        f"incomplete")
    return doc


def read_run_video(cfg, assets=None) -> VideoData:
    """The clips a run config asks for. A new run trains at the clips' shape (model.image_size and model.channels are
    set to it, with a line saying so when that changed them); a trained run's shape must be it."""
    source = cfg.data.source
    m = cfg.model
    trained = assets is not None or is_trained(m)
    if source in VARIANTS:
        side = VARIANTS[source].side
    elif trained or m.image_size in FOLDER_SIDES:
        side = m.image_size
    else:
        side = FOLDER_SIDES[0]
    channels = FRAMES
    if (m.image_size, m.channels) != (side, channels):
        if trained:
            raise UserError(f"data {source}: clips are learnt as {side}x{side} grids of {channels} frames but this "
                            f"run's model is {m.image_size}x{m.image_size}x{m.channels}; train a new run on it")
        print(f"tetragen: {source}: video, learnt as {side}x{side} grids with one channel per frame ({channels} "
              f"frames); model.image_size={side} model.channels={channels} set"
              + ("" if source in VARIANTS else f" (model.image_size={FOLDER_SIDES[1]} for {FOLDER_SIDES[1]}x"
                                                 f"{FOLDER_SIDES[1]})"), file=sys.stderr)
        m.image_size, m.channels = side, channels
    if source not in VARIANTS:
        root = Path(source).expanduser()
        if not root.is_dir():
            raise UserError(f"--data {source}: not a clip set ({', '.join(VARIANTS)}) or a folder of clips")
        train, test = clip_folder(root, FRAMES, side, cfg.data.val_fraction)
        return VideoData(str(root), train, test, FPS)
    frames, doc = read_variant(VARIANTS[source])
    labels = np.array([CLASSES.index(c["label"]) for c in doc["clips"]], dtype=np.int64)
    split = np.array([c["split"] == "test" for c in doc["clips"]])
    grids = grids_of(frames)
    train = ImageSet(grids[~split], labels[~split], list(CLASSES))
    test = ImageSet(grids[split], labels[split], list(CLASSES))
    return VideoData(source, train, test, FPS, class_parts())
