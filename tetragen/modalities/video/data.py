"""What a run on video reads, and how its clips are scored.

A clip of T frames of S x S grey pixels is learnt as one S x S grid with T channels (the frames stacked as channels),
so every family that learns grids trains on clips unchanged: its convolutions see all frames at once and learn
appearance and motion together. `frames_of` / `grids_of` turn one form into the other.

The evaluator reads clips the same way (a CNN over the stacked frames, trained on the training clips' classes: the
garment and its motion), so it tells both what is in a clip and where it goes. Its front end (`ClipFront`) gives it
each frame twice: as it is (where the garment goes) and shifted so that the frame's brightness centroid sits at the
centre (what the garment is: in those channels it stands still, so the first convolution sees one garment, not a
smear of sixteen places). Reference rows, each scored against
the same real test clips: the training clips (a perfect generator), the test clips frozen on their first frame (right
garment, no motion), the test clips with their frames shuffled (right garment and places, motion scrambled) and
clips whose every frame comes from another test clip (garments that change from frame to frame).

The clips made from Fashion-MNIST are also scored frame by frame by the image evaluator (`frame_fid`, per-frame
FID): each frame centred on its garment, cut to 28x28, against the test clips' frames read the same way.

Temporal consistency (`drift`): how much a clip's garment changes from one frame to the next, whatever its motion:
the mean absolute change of a centred frame from the previous one, in grey levels (0-255), shown beside the test
clips' own figure and the references'.
"""
from __future__ import annotations

import functools
import sys
from pathlib import Path

import numpy as np
import torch
from torch import nn

from ...data.grids import View, is_trained
from ...data.images import ImageData, ImageSet
from ...errors import UserError
from ...eval.classifier import to_float
from ...files import read_json, write_json
from .folder import claims as folder_claims
from .folder import clip_folder
from .moving import FRAMES, VARIANTS, Variant, read_variant

VIDEO_FILE = "video.json"      # a run's clip shape and frame rate, beside classes.json
FOLDER_SIDES = (32, 64)        # the sides a folder's clips are learnt at (the first unless model.image_size asks)
FPS = 10                       # frames per second of the clips a user gets (a GIF counts in 1/100 s)


def grids_of(frames: np.ndarray) -> np.ndarray:
    """uint8 clips (N, T, H, W) -> the grids models learn (N, H, W, T)."""
    return np.ascontiguousarray(np.moveaxis(frames, 1, -1))


def frames_of(grids: np.ndarray) -> np.ndarray:
    """The grids (N, H, W, T) -> clips (N, T, H, W)."""
    return np.ascontiguousarray(np.moveaxis(grids, -1, 1))


def centred(frames: torch.Tensor) -> torch.Tensor:
    """Float frames (N, T, H, W) in [-1, 1] -> each frame shifted (bilinear, dark outside) so that its brightness
    centroid sits at the centre; a dark frame stays as it is."""
    n, t, h, w = frames.shape
    light = (frames.reshape(n * t, 1, h, w) + 1) / 2
    mass = light.sum((-1, -2)).clamp_min(1e-6)                                     # (NT, 1)
    ys = torch.arange(h, dtype=light.dtype, device=light.device).view(1, 1, h, 1)
    xs = torch.arange(w, dtype=light.dtype, device=light.device).view(1, 1, 1, w)
    cy = (light * ys).sum((-1, -2)) / mass - (h - 1) / 2                          # pixels off centre
    cx = (light * xs).sum((-1, -2)) / mass - (w - 1) / 2
    theta = torch.zeros(n * t, 2, 3, dtype=light.dtype, device=light.device)
    theta[:, 0, 0] = theta[:, 1, 1] = 1
    theta[:, 0, 2] = 2 * cx[:, 0] / (w - 1)                                       # read from centroid + offset
    theta[:, 1, 2] = 2 * cy[:, 0] / (h - 1)
    grid = nn.functional.affine_grid(theta, [n * t, 1, h, w], align_corners=True)
    moved = nn.functional.grid_sample(light, grid, align_corners=True, padding_mode="zeros")
    return (moved * 2 - 1).view(n, t, h, w)


class ClipFront(nn.Module):
    """What the video evaluator reads, as its classifier's input: uint8 clips as grids (N, H, W, T) -> float
    (N, 2T, H, W) in [-1, 1], the frames as they are and then each frame centred (`centred`)."""

    def forward(self, grids: torch.Tensor) -> torch.Tensor:
        frames = to_float(grids)
        return torch.cat([frames, centred(frames)], dim=1)


def drift(grids: np.ndarray) -> np.ndarray:
    """uint8 clips as grids (N, H, W, T) -> (N,): the mean absolute change of each centred frame from the previous
    one, in grey levels (0 for a garment that never changes; its motion alone changes nothing)."""
    out = [((frames[:, 1:] - frames[:, :-1]).abs().mean((1, 2, 3)) * 127.5).numpy()
           for frames in centred_frames(grids)]
    return np.concatenate(out) if out else np.zeros(0, dtype=np.float32)


FRAME_SIDE = 28   # the side of the images the image evaluator (Fashion-MNIST's) reads


def centred_frames(grids: np.ndarray, chunk: int = 256):
    """uint8 clips as grids (N, H, W, T) -> float (k, T, H, W) chunks of their frames, each centred (`centred`)."""
    for i in range(0, len(grids), chunk):
        yield centred(to_float(torch.from_numpy(np.ascontiguousarray(grids[i:i + chunk]))))


def frame_images(grids: np.ndarray) -> np.ndarray:
    """uint8 clips as grids (N, H, W, T) -> their frames as the Fashion-MNIST image evaluator reads images, uint8
    (N * T, 28, 28, 1): each frame centred on its garment (`centred`), its middle 7/8 kept (28 of 32 pixels) and
    scaled to 28x28."""
    out = []
    for frames in centred_frames(grids):
        side = frames.shape[-1]
        crop = round(side * 7 / 8)
        start = (side - crop) // 2
        x = frames[..., start:start + crop, start:start + crop].reshape(-1, 1, crop, crop)
        if crop != FRAME_SIDE:
            x = nn.functional.interpolate(x, size=(FRAME_SIDE, FRAME_SIDE), mode="bilinear", antialias=True,
                                          align_corners=False)
        out.append(((x + 1) * 127.5).round().clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1).numpy())
    return np.concatenate(out) if out else np.zeros((0, FRAME_SIDE, FRAME_SIDE, 1), dtype=np.uint8)


@functools.lru_cache(maxsize=4)
def image_evaluator(device):
    """The shipped Fashion-MNIST image evaluator (the frames' garments are Fashion-MNIST's), read once per device
    (its data digest reads all of Fashion-MNIST)."""
    from ...data.images import load_image_data
    return load_image_data("fashion-mnist", FRAME_SIDE, 1).evaluator(device)


# per-frame FID of the clips made from Fashion-MNIST: their frames in the image evaluator, beside the clip one; and
# the garment that evaluator reads in them (its classes are Fashion-MNIST's, in the garments' order), a reading of
# the garment by a network that never saw a clip
FRAMES_VIEW = {"frame": View("per-frame FID (each frame centred on its garment, 28x28, Fashion-MNIST's image "
                             "evaluator)", frame_images, image_evaluator, part="garment",
                             part_title="per-frame garment accuracy (the garment Fashion-MNIST's image evaluator reads "
                                        "most often over a clip's centred frames is the asked one)")}


class VideoData(ImageData):
    """Clips as grids with one channel per frame."""
    kind = "video"
    unit = "clip"
    item = "clip"
    distance = "FD (video)"
    references_named = {"train": "train vs test", "still": "first frame held vs test",
                        "shuffled": "frames shuffled vs test", "mixed": "frames of different clips vs test"}

    stats = {"drift": ("temporal drift (grey levels a centred frame changes per frame)", drift)}

    def __init__(self, name: str, train: ImageSet, test: ImageSet, fps: int = FPS, class_parts: dict | None = None,
                 views: dict | None = None, eval_parts: list[list[int]] | None = None, eval_epochs: int = 8):
        super().__init__(name, train, test)
        self.fps = fps
        self.eval_epochs = eval_epochs
        self.eval_parts = eval_parts  # per class, the parts its evaluator scores it by (None: a score a class)
        self.class_parts = class_parts or {}
        self.views = views or {}

    @property
    def frames(self) -> int:
        return int(self.image_shape[-1])

    @property
    def eval_shape(self) -> tuple:
        h, w, t = self.image_shape
        return (h, w, 2 * t)

    def eval_front(self) -> nn.Module:
        return ClipFront()

    def eval_identity(self) -> dict:
        parts = {"class_parts": self.eval_parts} if self.eval_parts else {}
        return {"front": {"clip": "frames, then frames centred on their brightness centroid"}, **parts}

    def eval_settings(self) -> dict:
        # 32 stacked frames of 20-pixel garments: the image defaults (16 channels, 3 epochs) underfit them
        return {"width": 32, "epochs": self.eval_epochs}

    def save_assets(self, folder: Path) -> None:
        super().save_assets(folder)
        write_json(Path(folder) / VIDEO_FILE, {"frames": self.frames, "side": int(self.image_shape[0]),
                                               "fps": self.fps})

    def references(self, real_idx: np.ndarray, train_idx: np.ndarray) -> dict[str, np.ndarray]:
        real = self.test.images[real_idx]
        rng = np.random.default_rng(0)
        order = rng.permutation(self.frames)
        others = np.stack([rng.permutation(len(real)) for _ in range(self.frames)], axis=-1)  # (N, T)
        return {"train": self.train.images[train_idx],
                "still": np.repeat(real[..., :1], self.frames, axis=-1),
                "shuffled": np.ascontiguousarray(real[..., order]),
                "mixed": np.ascontiguousarray(np.stack([real[others[:, t], ..., t] for t in range(self.frames)],
                                                       axis=-1))}


def class_parts(variant: Variant) -> dict[str, np.ndarray]:
    """The parts of a moving-fashion-mnist class that the evaluation scores apart: class index -> garment (the pair
    of garments, for two), and class index -> motion."""
    garment, motion = variant.parts()
    return {"garment": garment, "motion": motion}


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


def fit_video_shape(cfg, assets=None) -> str | None:
    """A new run trains at the clips' shape (model.image_size and model.channels are set to it; the line saying so is
    returned where that changed them); a trained run's shape must be it. The video modality's `GridForm.shape`."""
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
        m.image_size, m.channels = side, channels
        return (f"{source}: video, learnt as {side}x{side} grids with one channel per frame ({channels} frames); "
                f"model.image_size={side} model.channels={channels} set"
                + ("" if source in VARIANTS else f" (model.image_size={FOLDER_SIDES[1]} for {FOLDER_SIDES[1]}x"
                                                   f"{FOLDER_SIDES[1]})"))
    return None


def read_run_video(cfg, assets=None) -> VideoData:
    """The clips a run config asks for, at the shape `fit_video_shape` sets."""
    notice = fit_video_shape(cfg, assets)
    if notice:
        print(f"tetragen: {notice}", file=sys.stderr)
    side, source = cfg.model.image_size, cfg.data.source
    if source not in VARIANTS:
        root = Path(source).expanduser()
        if not root.is_dir():
            raise UserError(f"--data {source}: not a clip set ({', '.join(VARIANTS)}) or a folder of clips")
        train, test = clip_folder(root, FRAMES, side, cfg.data.val_fraction)
        return VideoData(str(root), train, test, FPS)
    variant = VARIANTS[source]
    frames, doc = read_variant(variant)
    classes = list(variant.classes)
    labels = np.array([classes.index(c["label"]) for c in doc["clips"]], dtype=np.int64)
    split = np.array([c["split"] == "test" for c in doc["clips"]])
    grids = grids_of(frames)
    train = ImageSet(grids[~split], labels[~split], classes)
    test = ImageSet(grids[split], labels[split], classes)
    # per-frame FID centres a frame on its garment: one garment a clip
    one = variant.garments == (1,)
    # the sets with pairs: their evaluator learns each garment from every clip it is in, not each pair apart, and
    # for 20 epochs (docs/video.md, "Evaluation")
    return VideoData(source, train, test, FPS, class_parts(variant), FRAMES_VIEW if one else None,
                     None if one else variant.members(), 8 if one else 20)
