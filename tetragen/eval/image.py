"""Sample metrics for every family that learns grids (tetragen/data/grids.py): FID, KID and class accuracy of
samples, with reference rows that give them a scale. Images are grids as they are; a sound is scored as the audio
its spectrogram becomes: what is compared is always what the data's evaluator reads (`GridData.scored`).

FID (Heusel et al. 2017, https://arxiv.org/abs/1706.08500) and KID (Binkowski et al. 2018,
https://arxiv.org/abs/1801.01401) are torchmetrics' `FrechetInceptionDistance` and `KernelInceptionDistance`, given
the data's own evaluator (eval/classifier.py) as the `feature=` module: features are its penultimate layer (128-d by
default), not Inception-v3's. Inputs go to `update` as the evaluator reads them (uint8 (N, H, W, C) images, float
waveforms) and the extractor converts them itself, so both metrics are built with `normalize=False`.

The real set is the data's test split (a fixed-seed subset of n items when it is larger). A FID means little
alone, so reference sets at the same n are scored once per evaluator and cached beside it (references.json): the
train split vs the test split (what a perfect generator would score) and the data's degraded copies of the test
items (for images, a 3x3 box blur: a visibly degraded "generator").

Everything here depends only on the sampling interface, never on a family:

    sample(n, *, seed=None, labels=None) -> np.ndarray uint8 (n, H, W, C)

`labels` is an int64 array (n,) of class ids for conditional models (the classes cycle evenly: 0, 1, ..., K-1, 0, ...)
and None otherwise. `tetragen.load(run_dir)` returns, for a family that learns grids, an object with that `.sample`
plus `.classes`, `.conditional`, `.config` and `.model` (see `ImageSampler`).
"""
from __future__ import annotations

import json
import sys
import warnings
from typing import Callable, Protocol

import numpy as np
import torch

from ..errors import UserError
from ..files import write_json
from .classifier import Evaluator, EvaluatorConfig

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


def subset(count: int, n: int, seed: int) -> np.ndarray:
    """Indices of n of `count` items (all of them when n >= count), drawn with a fixed seed, in order."""
    if n >= count:
        return np.arange(count)
    return np.sort(np.random.default_rng(seed).permutation(count)[:n])


def real_index(data, n: int, seed: int) -> np.ndarray:
    """The real set: n test items (all of them when there are fewer), a fixed-seed subset. FID needs two, so a test
    split of one item is refused in one line."""
    count = len(data.test.labels)
    if count < 2:
        raise UserError(f"{data.name}: its test split has {count} {data.item}, and FID/KID need at least 2; add more "
                        f"(the last data.val_fraction of each class is the test split) or raise data.val_fraction")
    return subset(count, n, seed)


def real_images(data, n: int, seed: int) -> np.ndarray:
    """The real set as the evaluator reads it (`real_index`)."""
    return data.eval_inputs("test", real_index(data, n, seed))


class Distances:
    """torchmetrics FID and KID over one real and one generated set, both fed as the evaluator reads them."""

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
    """Score n samples against the test split of `data` (a `GridData`).

    `sample(k, seed=s, labels=y)` is called in chunks of `batch_size` (seeds seed, seed+1, ...). Returns {"fid",
    "kid", "kid_std"} (+ "class_acc" when `conditional`: the fraction of samples the evaluator assigns to the class
    they were asked for; and "<part>_acc" for each of the data's `class_parts`, the fraction whose class has the
    asked class's part, e.g. the right garment whatever its motion, and "<view>_<part>_acc" for a view that reads a
    class part, its own reading of it); "<view>_fid" for each of the data's `views`
    and the mean of each of its `stats`. "fid" is the primary metric; lower is better. The caller's RNG state is
    left untouched, and the evaluator is trained (and cached) on first use.
    """
    check_n(n, "n")
    real = real_images(data, n, seed)
    labels = class_cycle(n, len(data.classes)) if conditional else None
    correct = 0
    parts = {name: np.asarray(of) for name, of in data.class_parts.items()}
    parts_correct = dict.fromkeys(parts, 0)
    stat_sums = dict.fromkeys(data.stats, 0.0)
    with _rng_scope(device):  # training the evaluator on first use must not move the caller's RNG either
        ev = evaluator or data.evaluator(device)
        dist = Distances(ev, len(real), n, device)
        dist.update(real, real=True)
        views, readers = {}, {}
        for name, view in data.views.items():
            seen = view.transform(real)
            readers[name] = view.evaluator(device)
            views[name] = Distances(readers[name], len(seen), len(seen), device)
            views[name].update(seen, real=True)
        read = {name: 0 for name, view in data.views.items() if conditional and view.part in parts}
        for i, start in enumerate(range(0, n, batch_size)):
            k = min(batch_size, n - start)
            asked = labels[start:start + k] if conditional else None
            heard = data.scored(_check_samples(sample(k, seed=seed + i, labels=asked), k, tuple(data.image_shape)))
            dist.update(heard, real=False)
            for name, view_dist in views.items():
                view = data.views[name]
                seen = view.transform(heard)
                view_dist.update(seen, real=False)
                if name in read:
                    read[name] += int((view.read_part(seen, k, readers[name], device)
                                       == parts[view.part][asked]).sum())
            for name, (_, figure) in data.stats.items():
                stat_sums[name] += float(np.sum(figure(heard)))
            if conditional:
                said = ev.predict(heard, device)
                correct += int((said == asked).sum())
                for name, of in parts.items():
                    parts_correct[name] += int((of[said] == of[asked]).sum())
        out = dist.compute(seed)
        out.update({f"{name}_fid": view_dist.compute(seed)["fid"] for name, view_dist in views.items()})
    out.update({name: total / n for name, total in stat_sums.items()})
    if conditional:
        out["class_acc"] = correct / n
        out.update({f"{name}_acc": c / n for name, c in parts_correct.items()})
        out.update({f"{name}_{data.views[name].part}_acc": c / n for name, c in read.items()})
    return out


@torch.no_grad()
def reference_metrics(data, evaluator: Evaluator, n: int, device: torch.device | str = "cpu", seed: int = 0) -> dict:
    """FID/KID of each of the data's reference sets (`GridData.references`: the train split, degraded copies of the
    test items) vs the test items, at n: {"n_real", "n_train", "<name>_fid", "<name>_kid", "<name>_kid_std"}.

    With the data's `stats`: "test_<stat>" of the test items and "<name>_<stat>" of each reference set, the mean of
    the per-item figure; with its `views`: "<name>_<view>_fid", each reference set's FID in that view, and for a view
    that reads a class part "test_<view>_<part>_acc", how often it reads the test items' own. Computed once per
    (evaluator, n, seed, stats, views) and cached in the evaluator's cache folder as references.json.
    """
    check_n(n, "n")
    path = evaluator.cache_folder / "references.json"
    key = f"n={n},seed={seed}" + "".join(f",{name}" for name in [*data.stats, *data.views]) \
        + "".join(f",{name}:{v.part}" for name, v in data.views.items() if v.part in data.class_parts)
    try:
        cache = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        cache = {}
    if isinstance(cache.get(key), dict):
        return cache[key]
    idx = real_index(data, n, seed)
    real = data.eval_inputs("test", idx)
    train_idx = subset(len(data.train.labels), n, seed + 1)
    refs = {"n_real": int(len(real)), "n_train": int(len(train_idx))}
    refs.update({f"test_{stat}": float(np.mean(figure(real))) for stat, (_, figure) in data.stats.items()})
    with _rng_scope(device):
        seen = {view: (v.transform(real), v.evaluator(device)) for view, v in data.views.items()}
        for view, (real_seen, view_evaluator) in seen.items():
            part = data.views[view].part
            if part in data.class_parts:  # how often that evaluator reads the test items' own part
                own = np.asarray(data.class_parts[part])[np.asarray(data.test.labels)[idx]]
                read = data.views[view].read_part(real_seen, len(real), view_evaluator, device)
                refs[f"test_{view}_{part}_acc"] = float(np.mean(read == own))
        for name, fake in data.references(idx, train_idx).items():
            dist = Distances(evaluator, len(real), len(fake), device)
            dist.update(real, real=True)
            dist.update(fake, real=False)
            refs.update({f"{name}_{k}": v for k, v in dist.compute(seed).items()})
            for view, (real_seen, view_evaluator) in seen.items():
                fake_seen = data.views[view].transform(fake)
                dist = Distances(view_evaluator, len(real_seen), len(fake_seen), device)
                dist.update(real_seen, real=True)
                dist.update(fake_seen, real=False)
                refs[f"{name}_{view}_fid"] = dist.compute(seed)["fid"]
            refs.update({f"{name}_{stat}": float(np.mean(figure(fake))) for stat, (_, figure) in data.stats.items()})
    cache[key] = refs
    path.parent.mkdir(parents=True, exist_ok=True)
    write_json(path, cache)
    return refs


@torch.no_grad()
def reconstruction_distances(reconstruct, data, *, n: int, device, seed: int = 0, evaluator=None,
                             batch_size: int = 500) -> dict:
    """FID/KID of the reconstructions of n test items (a fixed-seed subset; all when the split is smaller) against
    those same items, in the features of the data's evaluator (trained and cached on first use):
    {"recon_fid", "recon_kid", "recon_kid_std", "recon_n"}. `reconstruct(uint8 (k, H, W, C)) -> uint8 (k, H, W, C)`.
    Torch's RNG is left as it was (the evaluator's training and KID's subsets draw from it)."""
    check_n(n, "n")
    idx = real_index(data, n, seed)
    grids, real = data.test.images[idx], data.eval_inputs("test", idx)
    device = torch.device(device)
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        ev = evaluator or data.evaluator(device)
        dist = Distances(ev, len(real), len(real), device)
        dist.update(real, real=True)
        for i in range(0, len(grids), batch_size):
            dist.update(data.scored(reconstruct(grids[i:i + batch_size])), real=False)
        out = dist.compute(seed)
    return {"recon_fid": out["fid"], "recon_kid": out["kid"], "recon_kid_std": out["kid_std"],
            "recon_n": float(len(real))}


def evaluate_images(sampler: ImageSampler, data, *, n: int = 10000, device: torch.device | str = "cpu",
                    seed: int = 0, evaluator_settings: EvaluatorConfig | None = None) -> dict:
    """Everything `tetragen eval` reports for an image run: the sample metrics, both references and the
    evaluator's own test accuracy, as one flat dict of numbers (plus the evaluator's cache folder)."""
    check_n(n)
    real_index(data, n, seed)  # a test split too small to score is refused before the evaluator is trained
    ev = data.evaluator(device, evaluator_settings)
    conditional = bool(sampler.conditional)
    if conditional and list(sampler.classes) != list(data.classes):
        print(f"tetragen: the run's classes differ from those of {data.name}; class accuracy is skipped",
              file=sys.stderr)
        conditional = False
    out = image_metrics(sampler.sample, data, n=n, device=device, conditional=conditional, seed=seed, evaluator=ev)
    return {**out, "n": n, **reference_rows(data, ev, n, device, seed), **evaluator_rows(ev)}


def reference_rows(data, evaluator: Evaluator, n: int, device, seed: int = 0) -> dict:
    """The reference figures as a result's keys: ref_<name>_fid and ref_<name>_kid per reference set, and n_real."""
    refs = reference_metrics(data, evaluator, n, device, seed)
    out = {"n_real": refs["n_real"]}
    for name in data.references_named:
        out.update({f"ref_{name}_fid": refs[f"{name}_fid"], f"ref_{name}_kid": refs[f"{name}_kid"]})
    for stat in data.stats:
        out.update({f"ref_{name}_{stat}": refs[f"{name}_{stat}"] for name in ["test", *data.references_named]})
    for view, v in data.views.items():
        out.update({f"ref_{name}_{view}_fid": refs[f"{name}_{view}_fid"] for name in data.references_named})
        if f"test_{view}_{v.part}_acc" in refs:
            out[f"ref_test_{view}_{v.part}_acc"] = refs[f"test_{view}_{v.part}_acc"]
    return out


def evaluator_rows(evaluator: Evaluator) -> dict:
    return {"evaluator_test_acc": evaluator.test_acc, "feature_dim": evaluator.feature_dim,
            "evaluator": str(evaluator.folder)}


def reference_lines(data, m: dict, prefix: str = "") -> list[str]:
    """FID and KID of `m` (keys prefix + "fid", ...) beside the data's reference rows."""
    named = data.references_named
    fid = ", ".join(f"{title} {m[f'ref_{name}_fid']:.3f}" for name, title in named.items())
    kid = ", ".join(f"{title} {m[f'ref_{name}_kid']:.5f}" for name, title in named.items())
    return [f"{data.distance} {m[prefix + 'fid']:.3f}   references: {fid}",
            f"KID {m[prefix + 'kid']:.5f} ± {m[prefix + 'kid_std']:.5f}   references: {kid}"]


def report_lines(data, m: dict, what: str = "samples") -> list[str]:
    """The human-readable form of `evaluate_images`' result (`what` the scored items are)."""
    lines = [f"{data.name}, {m['n']} {what} vs {m['n_real']} test {data.item}s (lower is better)",
             *reference_lines(data, m)]
    if "class_acc" in m:
        lines.append(f"class accuracy {m['class_acc']:.4f} (the evaluator's reading of the asked class)"
                     + "".join(f", {name} {m[f'{name}_acc']:.4f}" for name in data.class_parts
                               if f"{name}_acc" in m))
    for view, v in data.views.items():
        if f"{view}_fid" in m:
            refs = ", ".join(f"{t} {m[f'ref_{name}_{view}_fid']:.3f}" for name, t in data.references_named.items())
            lines.append(f"{v.title} {m[f'{view}_fid']:.3f}   references: {refs}")
        if f"{view}_{v.part}_acc" in m:
            lines.append(f"{v.part_title} {m[f'{view}_{v.part}_acc']:.4f}   reference: the test {data.item}s "
                         f"{m[f'ref_test_{view}_{v.part}_acc']:.4f}")
    for stat, (title, _) in data.stats.items():
        if stat in m:
            refs = ", ".join(f"{t} {m[f'ref_{name}_{stat}']:.3f}" for name, t in
                             [("test", "test"), *((n, data.references_named[n].removesuffix(" vs test"))
                                                  for n in data.references_named)])
            lines.append(f"{title} {m[stat]:.3f}   references: {refs}")
    lines.append(evaluator_line(m))
    return lines


def evaluator_line(m: dict) -> str:
    return (f"evaluator: tetragen's CNN, {m['feature_dim']}-d penultimate features, "
            f"test accuracy {m['evaluator_test_acc']:.4f} ({m['evaluator']})")
