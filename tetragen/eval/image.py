"""Image metrics for every image family: FID, KID and class accuracy of samples, with two scale references.

FID (Heusel et al. 2017, https://arxiv.org/abs/1706.08500) and KID (Binkowski et al. 2018,
https://arxiv.org/abs/1801.01401) are torchmetrics' `FrechetInceptionDistance` and `KernelInceptionDistance`, given
tetragen's own evaluator (eval/classifier.py) as the `feature=` module: features are its penultimate layer (128-d by
default), not Inception-v3's. Images go to `update` as uint8 tensors (N, H, W, C) and the extractor converts them
itself, so both metrics are built with `normalize=False`.

The real set is the data's test split (a fixed-seed subset of n images when it is larger). A FID means little
alone, so two references at the same n are computed once per evaluator and cached beside it (references.json):
train split vs test split (what a perfect generator would score) and test images blurred with a 3x3 box filter vs
test (a visibly degraded "generator").

Everything here depends only on the sampling interface, never on a family:

    sample(n, *, seed=None, labels=None) -> np.ndarray uint8 (n, H, W, C)

`labels` is an int64 array (n,) of class ids for conditional models (the classes cycle evenly: 0, 1, ..., K-1, 0, ...)
and None otherwise. `tetragen.load(run_dir)` returns, for an image family, an object with that `.sample` plus
`.classes`, `.conditional`, `.config` and `.model` (see `ImageSampler`).
"""
from __future__ import annotations

import json
import sys
import warnings
from typing import Callable, Protocol

import numpy as np
import torch
import torch.nn.functional as F

from ..errors import UserError
from ..files import write_json
from .classifier import Evaluator, EvaluatorConfig, load_evaluator

SampleFn = Callable[..., np.ndarray]  # sample(n, *, seed=None, labels=None) -> uint8 (n, H, W, C)
KID_SUBSET_SIZE = 1000
KID_SUBSETS = 100


class ImageSampler(Protocol):
    """What `tetragen.load(run_dir)` returns for an image family."""
    classes: list[str]
    conditional: bool
    config: object          # the run's RunConfig
    model: torch.nn.Module

    def sample(self, n: int, *, seed: int | None = None, labels=None) -> np.ndarray:
        """n images, uint8 (n, H, W, C); `labels` (n,) class ids for conditional models."""


def check_n(n: int, flag: str = "--n") -> None:
    if not isinstance(n, (int, np.integer)) or isinstance(n, bool) or n < 2:
        raise UserError(f"{flag}: {n!r} samples; FID and KID need at least 2 (default 10000)")


def class_cycle(n: int, num_classes: int) -> np.ndarray:
    """The labels asked of a conditional model: every class in turn, so each gets n / num_classes samples."""
    return np.arange(n, dtype=np.int64) % num_classes


def box_blur(images: np.ndarray) -> np.ndarray:
    """3x3 box filter on uint8 (N, H, W, C); at the borders each pixel averages the neighbours inside the image."""
    x = torch.from_numpy(np.ascontiguousarray(images)).permute(0, 3, 1, 2).float()
    x = F.avg_pool2d(x, 3, stride=1, padding=1, count_include_pad=False)
    return x.round().clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1).numpy()


def subset(count: int, n: int, seed: int) -> np.ndarray:
    """Indices of n of `count` items (all of them when n >= count), drawn with a fixed seed, in order."""
    if n >= count:
        return np.arange(count)
    return np.sort(np.random.default_rng(seed).permutation(count)[:n])


def real_images(data, n: int, seed: int) -> np.ndarray:
    """The real set: n test images (all of them when there are fewer), a fixed-seed subset. FID needs two, so a test
    split of one image is refused in one line."""
    count = len(data.test.labels)
    if count < 2:
        raise UserError(f"{data.name}: its test split has {count} image, and FID/KID need at least 2; add images "
                        f"(the last data.val_fraction of each class is the test split) or raise data.val_fraction")
    return data.test.images[subset(count, n, seed)]


class Distances:
    """torchmetrics FID and KID over one real and one generated set, both fed uint8 (N, H, W, C) in chunks."""

    def __init__(self, evaluator: Evaluator, n_real: int, n_fake: int, device: torch.device | str):
        from torchmetrics.image.fid import FrechetInceptionDistance
        from torchmetrics.image.kid import KernelInceptionDistance
        with warnings.catch_warnings():  # KID warns that it keeps every feature vector: 10k x 128 floats is small
            warnings.filterwarnings("ignore", message=".*will save all extracted features.*")
            # sync_on_compute=False: only one process (rank 0) evaluates, so there is nothing to gather
            self.fid = FrechetInceptionDistance(feature=evaluator.features, normalize=False,
                                                sync_on_compute=False).to(device)
            self.kid = KernelInceptionDistance(feature=evaluator.features, normalize=False, subsets=KID_SUBSETS,
                                               subset_size=min(KID_SUBSET_SIZE, n_real, n_fake),
                                               sync_on_compute=False).to(device)
        self.device = device

    def update(self, images: np.ndarray, *, real: bool, chunk: int = 1000) -> None:
        for i in range(0, len(images), chunk):
            x = torch.from_numpy(np.ascontiguousarray(images[i:i + chunk])).to(self.device)
            self.fid.update(x, real=real)
            self.kid.update(x, real=real)

    def compute(self, seed: int = 0) -> dict:
        torch.manual_seed(seed)  # KID draws its subsets from the global generator (callers fork it)
        kid, kid_std = self.kid.compute()
        return {"fid": float(self.fid.compute()), "kid": float(kid), "kid_std": float(kid_std)}


def _check_samples(images, k: int, shape: tuple) -> np.ndarray:
    if not isinstance(images, np.ndarray) or images.dtype != np.uint8 or images.shape != (k, *shape):
        got = (f"{images.dtype} {images.shape}" if isinstance(images, np.ndarray) else type(images).__name__)
        raise ValueError(f"sample({k}) must return a uint8 array shaped {(k, *shape)}, got {got}")
    return images


def _rng_scope(device: torch.device | str):
    device = torch.device(device)
    return torch.random.fork_rng(devices=[device] if device.type == "cuda" else [])


@torch.no_grad()
def image_metrics(sample: SampleFn, data, *, n: int = 10000, device: torch.device | str = "cpu",
                  conditional: bool = False, seed: int = 0, evaluator: Evaluator | None = None,
                  batch_size: int = 500) -> dict:
    """Score n samples against the test split of `data` (an `ImageData`).

    `sample(k, seed=s, labels=y)` is called in chunks of `batch_size` (seeds seed, seed+1, ...). Returns {"fid",
    "kid", "kid_std"} (+ "class_acc" when `conditional`: the fraction of samples the evaluator assigns to the class
    they were asked for). "fid" is the primary metric; lower is better. The caller's RNG state is left untouched,
    and the evaluator is trained (and cached) on first use.
    """
    check_n(n, "n")
    real = real_images(data, n, seed)
    labels = class_cycle(n, len(data.classes)) if conditional else None
    correct = 0
    with _rng_scope(device):  # training the evaluator on first use must not move the caller's RNG either
        ev = evaluator or load_evaluator(data, device)
        dist = Distances(ev, len(real), n, device)
        dist.update(real, real=True)
        for i, start in enumerate(range(0, n, batch_size)):
            k = min(batch_size, n - start)
            asked = labels[start:start + k] if conditional else None
            images = _check_samples(sample(k, seed=seed + i, labels=asked), k, tuple(data.image_shape))
            dist.update(images, real=False)
            if conditional:
                correct += int((ev.predict(images, device) == asked).sum())
        out = dist.compute(seed)
    if conditional:
        out["class_acc"] = correct / n
    return out


@torch.no_grad()
def reference_metrics(data, evaluator: Evaluator, n: int, device: torch.device | str = "cpu", seed: int = 0) -> dict:
    """FID/KID of the train split vs the test split and of 3x3-blurred test images vs the test images, at n.

    Computed once per (evaluator, n, seed) and cached in the evaluator's cache folder as references.json.
    """
    check_n(n, "n")
    path = evaluator.cache_folder / "references.json"
    key = f"n={n},seed={seed}"
    try:
        cache = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        cache = {}
    if isinstance(cache.get(key), dict):
        return cache[key]
    real = real_images(data, n, seed)
    train = data.train.images[subset(len(data.train.labels), n, seed + 1)]
    refs = {"n_real": int(len(real)), "n_train": int(len(train))}
    with _rng_scope(device):
        for name, fake in (("train", train), ("blur", box_blur(real))):
            dist = Distances(evaluator, len(real), len(fake), device)
            dist.update(real, real=True)
            dist.update(fake, real=False)
            refs.update({f"{name}_{k}": v for k, v in dist.compute(seed).items()})
    cache[key] = refs
    path.parent.mkdir(parents=True, exist_ok=True)
    write_json(path, cache)
    return refs


@torch.no_grad()
def reconstruction_distances(reconstruct, data, *, n: int, device, seed: int = 0, evaluator=None,
                             batch_size: int = 500) -> dict:
    """FID/KID of the reconstructions of n test images (a fixed-seed subset; all when the split is smaller) against
    those same images, in the features of tetragen's evaluator for `data` (trained and cached on first use):
    {"recon_fid", "recon_kid", "recon_kid_std", "recon_n"}. `reconstruct(uint8 (k, H, W, C)) -> uint8 (k, H, W, C)`.
    Torch's RNG is left as it was (the evaluator's training and KID's subsets draw from it)."""
    check_n(n, "n")
    real = real_images(data, n, seed)
    device = torch.device(device)
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        ev = evaluator or load_evaluator(data, device)
        dist = Distances(ev, len(real), len(real), device)
        dist.update(real, real=True)
        for i in range(0, len(real), batch_size):
            dist.update(reconstruct(real[i:i + batch_size]), real=False)
        out = dist.compute(seed)
    return {"recon_fid": out["fid"], "recon_kid": out["kid"], "recon_kid_std": out["kid_std"],
            "recon_n": float(len(real))}


def evaluate_images(sampler: ImageSampler, data, *, n: int = 10000, device: torch.device | str = "cpu",
                    seed: int = 0, evaluator_settings: EvaluatorConfig | None = None) -> dict:
    """Everything `tetragen eval` reports for an image run: the sample metrics, both references and the
    evaluator's own test accuracy, as one flat dict of numbers (plus the evaluator's cache folder)."""
    check_n(n)
    real_images(data, n, seed)  # a test split too small to score is refused before the evaluator is trained
    ev = load_evaluator(data, device, evaluator_settings)
    conditional = bool(sampler.conditional)
    if conditional and list(sampler.classes) != list(data.classes):
        print(f"tetragen: the run's classes differ from those of {data.name}; class accuracy is skipped",
              file=sys.stderr)
        conditional = False
    out = image_metrics(sampler.sample, data, n=n, device=device, conditional=conditional, seed=seed, evaluator=ev)
    refs = reference_metrics(data, ev, n, device, seed)
    return {**out, "n": n, "n_real": refs["n_real"],
            "ref_train_fid": refs["train_fid"], "ref_blur_fid": refs["blur_fid"],
            "ref_train_kid": refs["train_kid"], "ref_blur_kid": refs["blur_kid"],
            "evaluator_test_acc": ev.test_acc, "feature_dim": ev.feature_dim, "evaluator": str(ev.folder)}


def report_lines(data_name: str, m: dict, what: str = "samples") -> list[str]:
    """The human-readable form of `evaluate_images`' result (`what` the scored images are)."""
    lines = [f"{data_name}, {m['n']} {what} vs {m['n_real']} test images (lower is better)",
             f"FID {m['fid']:.3f}   references: train vs test {m['ref_train_fid']:.3f}, "
             f"3x3-blur vs test {m['ref_blur_fid']:.3f}",
             f"KID {m['kid']:.5f} ± {m['kid_std']:.5f}   references: train vs test {m['ref_train_kid']:.5f}, "
             f"3x3-blur vs test {m['ref_blur_kid']:.5f}"]
    if "class_acc" in m:
        lines.append(f"class accuracy {m['class_acc']:.4f} (the evaluator's reading of the asked class)")
    lines.append(f"evaluator: tetragen's CNN, {m['feature_dim']}-d penultimate features, "
                 f"test accuracy {m['evaluator_test_acc']:.4f} ({m['evaluator']})")
    return lines
