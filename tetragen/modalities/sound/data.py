"""What a run on sound reads, and how its samples are scored: as audio, by an evaluator that listens.

A run on sound learns the 64x64 log-mel pictures of its clips (audio.py), so every family that learns grids trains
on it unchanged. Its evaluator does not look at those pictures: it reads waveforms, through its own log-mel front
end, so a generated picture is scored only after the vocoder (Griffin-Lim) has turned it into sound. What a
listener would hear is what is judged, vocoder included.

Reference rows, each scored against the same real test clips: the training clips (what a perfect generator would
score), the test clips after a Griffin-Lim round trip (what the vocoder alone costs), and the test clips with white
noise at 10 dB SNR (an audibly degraded "generator").
"""
from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn

from ...data.grids import is_trained
from ...data.images import ImageData, ImageSet
from ...errors import UserError
from ...data.sources import cache_dir
from ...files import read_json, replace_atomically, write_json
from .audio import MelSettings, SoundSet, from_grid, griffin_lim, log_mel, to_grid
from .drums import DATASETS as DRUM_DATASETS
from .drums import drums
from .folder import sound_folder
from .spoken_words import DATASETS as WORD_DATASETS
from .spoken_words import spoken_words

SOUND_DATASETS = {"spoken-words": spoken_words, "drums": drums}
NAMED = [*WORD_DATASETS, *DRUM_DATASETS]
SOUND_FILE = "sound.json"           # a run's mel settings, beside classes.json
GRIFFIN_LIM_ITERS = 16              # the vocoder's iterations: what samples and the round-trip reference get
NOISE_SNR_DB = 10.0                 # the noise-added reference
CHUNK = 256                         # clips per STFT batch (bounds the memory of 513 x 65 complex bins per clip)


def vocode(grids: np.ndarray, settings: MelSettings, n_iter: int = GRIFFIN_LIM_ITERS) -> np.ndarray:
    """uint8 spectrogram pictures (N, n_mels, frames, 1) -> float32 waves (N, clip), in chunks; every row starts
    from the same seeded phase, so a picture always becomes the same sound."""
    out = [griffin_lim(from_grid(grids[i:i + CHUNK], settings), settings, n_iter=n_iter).numpy()
           for i in range(0, len(grids), CHUNK)]
    return np.concatenate(out).astype(np.float32) if out else np.zeros((0, settings.clip), np.float32)


def pictures(waves: np.ndarray, settings: MelSettings) -> np.ndarray:
    """float waves (N, clip) -> uint8 log-mel pictures (N, n_mels, frames, 1), cached by the waves' and the
    settings' digest (a set's STFTs cost seconds every time a run, its evaluation and its report read it)."""
    waves = np.ascontiguousarray(waves, dtype=np.float32)
    key = hashlib.sha256(waves.data)
    key.update(json.dumps(settings.to_dict(), sort_keys=True).encode())
    cached = cache_dir() / "sound-pictures" / f"{key.hexdigest()[:32]}.npy"
    if cached.is_file():
        try:
            return np.load(cached, allow_pickle=False)
        except (OSError, ValueError):
            pass  # a damaged cache is made again
    out = [to_grid(log_mel(torch.from_numpy(waves[i:i + CHUNK]), settings), settings)
           for i in range(0, len(waves), CHUNK)]
    grids = np.concatenate(out) if out else np.zeros((0, settings.n_mels, settings.frames, 1), np.uint8)
    cached.parent.mkdir(parents=True, exist_ok=True)
    replace_atomically(cached, lambda tmp: np.save(tmp, grids, allow_pickle=False))
    return grids


class LogMelFront(nn.Module):
    """The evaluator's ears: float waves (N, clip) -> its classifier's input (N, 1, n_mels, frames) in about
    [-1, 1], from the same log-mel transform as the models' pictures but computed from the sound itself."""

    def __init__(self, settings: MelSettings):
        super().__init__()
        self.settings = settings

    def forward(self, waves: torch.Tensor) -> torch.Tensor:
        s = self.settings
        db = log_mel(waves.float().cpu(), s).clamp(s.db_min, s.db_max)
        return ((db - s.db_min) / s.db_range * 2.0 - 1.0).unsqueeze(1).to(waves.device)


class SoundData(ImageData):
    """Clips as the pictures the models learn, and as the waves the evaluator hears."""
    kind = "sound"
    unit = "clip"
    item = "clip"
    distance = "FD (audio)"
    references_named = {"train": "train vs test", "griffinlim": "Griffin-Lim round trip vs test",
                        "noise": f"noise at {NOISE_SNR_DB:g} dB SNR vs test"}

    def __init__(self, name: str, train: SoundSet, test: SoundSet, settings: MelSettings):
        self.settings = settings
        self.waves = {"train": train.waves, "test": test.waves}
        self.meta = {"train": train.meta, "test": test.meta}
        super().__init__(name, ImageSet(pictures(train.waves, settings), train.labels, list(train.classes)),
                         ImageSet(pictures(test.waves, settings), test.labels, list(train.classes)))

    def save_assets(self, folder: Path) -> None:
        super().save_assets(folder)
        write_json(Path(folder) / SOUND_FILE, {"mel": self.settings.to_dict()})

    # what the evaluator hears
    def eval_inputs(self, split: str, idx: np.ndarray | None = None) -> np.ndarray:
        waves = self.waves[split]
        return waves if idx is None else waves[idx]

    @property
    def eval_shape(self) -> tuple:
        return (self.settings.n_mels, self.settings.frames, 1)

    def eval_front(self) -> nn.Module:
        return LogMelFront(self.settings)

    def eval_identity(self) -> dict:
        return {"front": {"log_mel": self.settings.to_dict()}}

    def scored(self, grids: np.ndarray) -> np.ndarray:
        return vocode(grids, self.settings)

    def references(self, real_idx: np.ndarray, train_idx: np.ndarray) -> dict[str, np.ndarray]:
        real = self.waves["test"][real_idx]
        rng = np.random.default_rng(0)
        power = np.mean(real.astype(np.float64) ** 2, axis=1, keepdims=True)
        noise = rng.standard_normal(real.shape) * np.sqrt(power / 10 ** (NOISE_SNR_DB / 10))
        return {"train": self.waves["train"][train_idx],
                "griffinlim": vocode(self.test.images[real_idx], self.settings),
                "noise": np.clip(real + noise, -1.0, 1.0).astype(np.float32)}


# ----------------------------------------------------------------------------------------------------------------
# the sound modality's GridForm: which sources are sound, and reading one for a run

def claims(source: str) -> bool:
    """Whether a --data source is sound: a named sound set, or a folder with sound files in it."""
    if source in SOUND_DATASETS:
        return True
    p = Path(source).expanduser()
    return p.is_dir() and any(True for _ in _first_sound(p))


def _first_sound(root: Path):
    from .folder import SUFFIXES
    for q in root.rglob("*"):
        if q.is_file() and q.suffix.lower() in SUFFIXES:
            yield q
            return


def run_settings(run_dir: Path) -> MelSettings:
    """The mel settings a sound run was trained with (sound.json beside its weights)."""
    doc = read_json(Path(run_dir) / SOUND_FILE, "the run folder is incomplete")
    if not isinstance(doc.get("mel"), dict):
        raise UserError(f"{Path(run_dir) / SOUND_FILE}: no 'mel' settings; the run folder is incomplete")
    return MelSettings.from_dict(doc["mel"])


def fit_sound_shape(cfg, assets=None) -> str | None:
    """A new run trains at the pictures' shape (model.image_size and model.channels are set to it; the line saying so
    is returned where that changed them); a trained run's shape must be it. The sound modality's `GridForm.shape`."""
    settings = MelSettings()
    side, channels = settings.n_mels, 1
    m = cfg.model
    if (m.image_size, m.channels) != (side, channels):
        if assets is not None or is_trained(m):
            raise UserError(f"data {cfg.data.source}: sound is learnt as {side}x{settings.frames}x1 log-mel pictures "
                            f"but this run's model is {m.image_size}x{m.image_size}x{m.channels}; train a new run "
                            f"on it")
        m.image_size, m.channels = side, channels
        return (f"{cfg.data.source}: sound, learnt as {side}x{settings.frames}x1 log-mel pictures (1 s at "
                f"{settings.sample_rate} Hz); model.image_size={side} model.channels=1 set")
    return None


def read_run_sound(cfg, assets=None) -> SoundData:
    """The clips a run config asks for, at the shape `fit_sound_shape` sets."""
    settings, notice = MelSettings(), fit_sound_shape(cfg, assets)
    if notice:
        print(f"tetragen: {notice}", file=sys.stderr)
    source = cfg.data.source
    if source in SOUND_DATASETS:
        train, test = SOUND_DATASETS[source]()
        return SoundData(source, train, test, settings)
    root = Path(source).expanduser()
    if not root.is_dir():
        raise UserError(f"--data {source}: not a sound dataset ({', '.join(SOUND_DATASETS)}) or a folder")
    train, test = sound_folder(root, settings, cfg.data.val_fraction)
    return SoundData(str(root), train, test, settings)
