"""The evaluator: a small CNN that tetragen trains on a dataset's training split and then uses to score samples.

FID and KID compare feature statistics of generated and real images; the usual feature network, Inception-v3, was
trained on 299x299 ImageNet photos and knows little about 28x28 grey clothing. A classifier trained on the dataset
itself gives features that separate exactly the classes the generator must reproduce, and its predictions tell
whether a conditional model drew the class it was asked for. The price: numbers are comparable only between runs
scored by the same evaluator (same data, same settings), never with published Inception FIDs.

Architecture (`EvaluatorConfig`): conv3x3-BN-ReLU-maxpool stages, doubling the width, until the image is at most 8
pixels across; one more conv stage; adaptive average pool to 4x4; Linear -> ReLU (the `feature_dim`-wide penultimate
layer, 128 by default: these are the FID/KID features); dropout; Linear -> class logits (or, where the data says its
classes are made of parts, as a clip's class is its garments and their motion, a score per part: `PartsHead`).

Trained once per dataset with a fixed seed (AdamW, one-cycle schedule) and cached under
`cache_dir()/evaluators/<dataset key>/` as config.json (settings + data digest), model.safetensors and metrics.json
(its own test accuracy and training time). No pickle anywhere. A cache whose config.json does not match the settings
asked for is retrained in place.

For the named datasets tetragen ships the evaluator (tetragen/eval/weights/<dataset key>/, made by
tools/train_evaluator.py; README.md there records each file's sha256 and test accuracy), so figures from any two
machines are measured with the same network. It is used whenever the data's digest and the settings match; a user's
own data gets an evaluator trained and cached on first use.
"""
from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import math
import re
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from safetensors.torch import load_file

from ..data.sources import cache_dir
from ..errors import UserError
from ..files import save_tensors, write_folder_atomically, write_json

FORMAT_VERSION = 1
SHIPPED = Path(__file__).resolve().parent / "weights"  # evaluators shipped with tetragen, one folder per dataset key


@dataclass
class EvaluatorConfig:
    """The evaluator's architecture and training settings. The defaults reach 0.908 test accuracy on Fashion-MNIST
    in 3 epochs: about a minute of one CPU core (2M multiply-adds per 28x28 image, 156k parameters)."""
    width: int = 16            # channels of the first conv stage (doubled at each later stage)
    feature_dim: int = 128     # width of the penultimate layer = the FID/KID feature dimension
    epochs: int = 3
    batch_size: int = 128
    lr: float = 3e-3
    weight_decay: float = 1e-4
    dropout: float = 0.3
    seed: int = 0


class PartsHead(nn.Module):
    """Logits of classes made of parts (a clip's garments and its motion): a score per part, and a class's logit the
    sum of its parts' scores plus a bias of its own, so that each part is learnt from every item that holds it rather
    than each combination from its own items. `parts`: per class, the ids of its parts."""

    def __init__(self, feature_dim: int, parts: list[list[int]], dropout: float):
        super().__init__()
        members = torch.zeros(len(parts), 1 + max(max(p) for p in parts))
        for c, ids in enumerate(parts):
            members[c, ids] = 1.0
        self.register_buffer("members", members, persistent=False)
        self.drop = nn.Dropout(dropout)
        self.score = nn.Linear(feature_dim, members.shape[1])
        self.bias = nn.Parameter(torch.zeros(len(parts)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.score(self.drop(x)) @ self.members.T + self.bias


class ImageClassifier(nn.Module):
    """x: float (B, C, H, W) in [-1, 1] (as `ImageData.to_model` gives) -> logits (B, num_classes). With `parts` (per
    class, the ids of the parts it is made of) the logits come from a `PartsHead`."""

    def __init__(self, image_shape: tuple[int, int, int], num_classes: int, cfg: EvaluatorConfig,
                 parts: list[list[int]] | None = None):
        super().__init__()
        h, w, c = image_shape
        layers, c_in, c_out, size = [], c, cfg.width, min(h, w)
        while size > 8:
            layers += [nn.Conv2d(c_in, c_out, 3, padding=1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU(),
                       nn.MaxPool2d(2)]
            c_in, c_out, size = c_out, c_out * 2, size // 2
        layers += [nn.Conv2d(c_in, c_out, 3, padding=1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU(),
                   nn.AdaptiveAvgPool2d(4), nn.Flatten()]
        self.body = nn.Sequential(*layers, nn.Linear(c_out * 16, cfg.feature_dim), nn.ReLU())  # (B, feature_dim)
        self.head = (PartsHead(cfg.feature_dim, parts, cfg.dropout) if parts else
                     nn.Sequential(nn.Dropout(cfg.dropout), nn.Linear(cfg.feature_dim, num_classes)))

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.body(x))


def to_float(images: torch.Tensor) -> torch.Tensor:
    """uint8 (N, H, W, C) -> float (N, C, H, W) in [-1, 1], the same mapping as `ImageData.to_model`."""
    if images.dtype != torch.uint8 or images.dim() != 4:
        raise ValueError(f"expected uint8 images shaped (N, H, W, C), got {images.dtype} {tuple(images.shape)}")
    return images.permute(0, 3, 1, 2).float() / 127.5 - 1.0


class ImageFront(nn.Module):
    """What the image evaluator reads, as the classifier's input: uint8 images (N, H, W, C) -> `to_float`."""

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return to_float(images)


class FeatureExtractor(nn.Module):
    """The `feature=` module handed to torchmetrics' FID and KID.

    It takes what `update` is given, unchanged (for images uint8 tensors shaped (N, H, W, C), values 0..255, so the
    metrics are built with `normalize=False`, torchmetrics' setting for integer input; for sounds float waveforms),
    turns it into the classifier's input with the data's `front`, and returns float32 features (N, D) from the
    classifier's penultimate layer. `num_features` spares torchmetrics a probe forward pass.
    """

    def __init__(self, classifier: ImageClassifier, front: nn.Module):
        super().__init__()
        self.classifier, self.front = classifier.eval(), front
        self.num_features = classifier.body[-2].out_features

    @torch.no_grad()
    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        return self.classifier.features(self.front(inputs)).float()

    def train(self, mode: bool = True):  # metrics call .train(); the classifier stays in eval mode (BN, dropout)
        super().train(mode)
        self.classifier.eval()
        return self


@dataclass
class Evaluator:
    """A trained, loaded evaluator: the classifier, its torchmetrics feature module and its own scores."""
    classifier: ImageClassifier
    features: FeatureExtractor
    folder: Path
    config: dict        # the whole config.json
    metrics: dict       # metrics.json: test_acc, train_seconds, ...

    @property
    def test_acc(self) -> float:
        return float(self.metrics["test_acc"])

    @property
    def feature_dim(self) -> int:
        return self.features.num_features

    @functools.cached_property
    def cache_folder(self) -> Path:
        """Where what is computed with this evaluator is cached (its scale references): its own folder in the
        cache, also for a shipped evaluator, whose folder inside the package is never written. Named by its weights'
        digest too: an evaluator of the same data with other settings (or retrained) finds none of another's."""
        digest = hashlib.sha256((self.folder / "model.safetensors").read_bytes()).hexdigest()
        return cache_dir() / "evaluators" / f"{self.folder.name}-{digest[:12]}"

    def predict(self, inputs: np.ndarray, device: torch.device | str = "cpu") -> np.ndarray:
        """Predicted class ids (N,) for what the evaluator reads (uint8 images (N, H, W, C), waveforms)."""
        return predict(self.classifier.to(device), inputs, torch.device(device), front=self.features.front)


# ----------------------------------------------------------------------------------------------------------------
# where it lives

def data_digest(data) -> str:
    """A fingerprint of what the evaluator reads of the training and test items, their labels and the class names:
    the cache is valid for this data only."""
    h = hashlib.sha256(json.dumps([data.classes, list(data.image_shape)]).encode())
    for split, part in (("train", data.train), ("test", data.test)):
        h.update(np.ascontiguousarray(data.eval_inputs(split)).data)
        h.update(np.ascontiguousarray(part.labels.astype(np.int64)).data)
    return h.hexdigest()


def dataset_key(data, digest: str) -> str:
    """A readable folder name: the dataset's name (a folder's last part), its image shape and a digest prefix."""
    name = re.sub(r"[^A-Za-z0-9._-]+", "_", Path(str(data.name)).name or "data").strip("._") or "data"
    h, w, c = data.image_shape
    return f"{name}-{h}x{w}x{c}-{digest[:12]}"


def evaluator_dir(data, digest: str | None = None) -> Path:
    return cache_dir() / "evaluators" / dataset_key(data, digest or data_digest(data))


def load_evaluator(data, device: torch.device | str = "cpu", settings: EvaluatorConfig | None = None,
                   *, verbose: bool = True) -> Evaluator:
    """The evaluator for `data` (a `GridData`): read from the cache, or trained and cached first."""
    want, settings = wanted(data, settings)
    folder = evaluator_dir(data, want["data_sha256"])
    front = data.eval_front()
    for place in (SHIPPED / folder.name, folder):
        cached = _read(place, want, front)
        if cached is not None:
            return cached
    return _train(data, folder, want, settings, torch.device(device), verbose)


def wanted(data, settings: EvaluatorConfig | None = None) -> tuple[dict, EvaluatorConfig]:
    """The config.json an evaluator of `data` with `settings` has: a cached or shipped one is used only when equal."""
    settings = settings or EvaluatorConfig(**data.eval_settings())
    if len(data.classes) < 2:
        raise UserError(f"{data.name}: evaluation trains a classifier for its features and needs at least 2 "
                        f"classes (sub-folders); this data has {len(data.classes)}")
    want = {"format": FORMAT_VERSION, "dataset": str(data.name), "data_sha256": data_digest(data),
            "image_shape": [int(s) for s in data.eval_shape], "classes": list(data.classes),
            "settings": dataclasses.asdict(settings), **data.eval_identity()}
    return want, settings


def _build(config: dict) -> ImageClassifier:
    return ImageClassifier(tuple(config["image_shape"]), len(config["classes"]), EvaluatorConfig(**config["settings"]),
                           config.get("class_parts"))


def _read(folder: Path, want: dict, front: nn.Module = ImageFront()) -> Evaluator | None:
    try:
        config = json.loads((folder / "config.json").read_text(encoding="utf-8"))
        metrics = json.loads((folder / "metrics.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if config != want:
        return None
    model = _build(config)
    try:
        model.load_state_dict(load_file(str(folder / "model.safetensors")))
    except Exception as e:  # a damaged cache is retrained, never trusted
        print(f"tetragen: evaluator cache {folder} is unreadable ({type(e).__name__}); retraining", file=sys.stderr)
        return None
    model.eval()
    return Evaluator(model, FeatureExtractor(model, front), folder, config, metrics)


@torch.no_grad()
def predict(model: nn.Module, inputs: np.ndarray, device: torch.device, batch_size: int = 1000,
            front: nn.Module = ImageFront()) -> np.ndarray:
    """Class ids (N,) that `model` (on `device`) predicts for what the evaluator reads (uint8 images (N, H, W, C)
    by default; `front` makes the classifier's input of them)."""
    model.eval()
    out = [model(front(torch.from_numpy(np.ascontiguousarray(inputs[i:i + batch_size])).to(device)))
           .argmax(-1).cpu() for i in range(0, len(inputs), batch_size)]
    return torch.cat(out).numpy() if out else np.zeros(0, dtype=np.int64)


def accuracy(model: nn.Module, inputs: np.ndarray, labels: np.ndarray, device: torch.device,
             front: nn.Module = ImageFront()) -> float:
    return float((predict(model, inputs, device, front=front) == labels).mean()) if len(labels) else 0.0


def _train(data, folder: Path, config: dict, s: EvaluatorConfig, device: torch.device, verbose: bool) -> Evaluator:
    say = (lambda msg: print(f"tetragen: {msg}", file=sys.stderr)) if verbose else (lambda msg: None)
    say(f"training the evaluator for {data.name} ({s.epochs} epochs on {len(data.train.labels)} training "
        f"{data.item}s; once, then cached in {folder})")
    t0 = time.perf_counter()
    inputs, labels, front = data.eval_inputs("train"), data.train.labels, data.eval_front()
    steps_per_epoch = max(1, math.ceil(len(labels) / s.batch_size))
    total = steps_per_epoch * s.epochs
    # fixed seed, and the caller's RNG streams left as they were (training-time evaluation must not perturb them)
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []), torch.enable_grad():
        torch.manual_seed(s.seed)
        # channels-last runs the small convolutions 1.5x faster on CPU (oneDNN's preferred layout)
        model = _build(config).to(device, memory_format=torch.channels_last)
        opt = torch.optim.AdamW(model.parameters(), lr=s.lr, weight_decay=s.weight_decay)
        sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=s.lr, total_steps=total, pct_start=0.2)
        rng = np.random.default_rng(s.seed)
        model.train()
        for epoch in range(s.epochs):
            order = rng.permutation(len(labels))
            for i in range(steps_per_epoch):
                idx = np.sort(order[i * s.batch_size:(i + 1) * s.batch_size])
                x = front(torch.from_numpy(inputs[idx]).to(device)).contiguous(memory_format=torch.channels_last)
                y = torch.from_numpy(labels[idx]).to(device)
                loss = F.cross_entropy(model(x), y)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                sched.step()
            say(f"evaluator epoch {epoch + 1}/{s.epochs}: loss {loss.item():.3f}")
    train_seconds = time.perf_counter() - t0
    model.eval()
    metrics = {"test_acc": accuracy(model, data.eval_inputs("test"), data.test.labels, device, front),
               "train_acc_sample": accuracy(model, inputs[:5000], labels[:5000], device, front),
               "train_seconds": round(train_seconds, 2), "device": str(device),
               "feature_dim": s.feature_dim, "test_images": int(len(data.test.labels))}
    say(f"evaluator trained in {train_seconds:.1f}s: test accuracy {metrics['test_acc']:.4f}")
    _write_folder(folder, config, model, metrics)
    model.cpu()
    return Evaluator(model, FeatureExtractor(model, front), folder, config, metrics)


def _write_folder(folder: Path, config: dict, model: nn.Module, metrics: dict) -> None:
    """The three files, written into a temporary folder renamed into place: readers never see half a cache."""
    def write(tmp: Path) -> None:
        write_json(tmp / "config.json", config)
        save_tensors(model.state_dict(), tmp / "model.safetensors")
        write_json(tmp / "metrics.json", metrics)
    write_folder_atomically(folder, write)
