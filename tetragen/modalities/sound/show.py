"""The sound modality's files, its tiny example set, and what a job asks a trained run on sound and how the report
plays it."""
from __future__ import annotations

import base64
import html as _html
import shlex
from pathlib import Path

import numpy as np

from ...errors import UserError
from ...files import replace_atomically
from ...sample.adapted import show_prompts
from ...sample.images import write_png
from .audio import MelSettings, write_wav

SEED = 1            # the seed of every shown sample
GAP = 0.25          # seconds of silence between the clips of one .wav file
SHOWN_PER_PROMPT = 4


def one_file(waves: np.ndarray, sample_rate: int) -> np.ndarray:
    """Clips (N, T) end to end with GAP seconds of silence between them: one sound to listen to."""
    gap = np.zeros(int(GAP * sample_rate), np.float32)
    parts = []
    for i, w in enumerate(waves):
        parts += [w, gap] if i < len(waves) - 1 else [w]
    return np.concatenate(parts) if parts else np.zeros(0, np.float32)


def write_wav_output(path: Path, sound, **_) -> None:
    """Every clip in one WAV, one after another with a short silence between them."""
    write_wav(path, one_file(sound.waves, sound.sample_rate), sound.sample_rate)


def write_folder_output(path: Path, sound, **_) -> None:
    """One WAV per clip, 000.wav, 001.wav, ... in the folder `path` (made; files already there are refused)."""
    path = Path(path)
    names = [path / f"{i:03d}.wav" for i in range(len(sound.waves))]
    taken = [p for p in names if p.exists()]
    if taken:
        raise UserError(f"--out {path}: {taken[0].name} is already there; choose an empty folder")
    path.mkdir(exist_ok=True)
    for p, w in zip(names, sound.waves):
        write_wav(p, w, sound.sample_rate)


def write_png_output(path: Path, sound, *, columns: int | None = None, **_) -> None:
    """The clips' log-mel pictures as one grid (high bands at the top, time to the right)."""
    write_png(path, sound.spectrograms, columns=columns)


def write_npz_output(path: Path, sound, **_) -> None:
    """waves float32 (N, T), sample_rate, spectrograms uint8 (N, n_mels, frames) and, when asked, labels."""
    arrays = {"waves": sound.waves, "sample_rate": np.int64(sound.sample_rate),
              "spectrograms": sound.spectrograms[..., 0]}
    if sound.labels is not None:
        arrays["labels"] = np.asarray(sound.labels, dtype=np.int64)
    replace_atomically(Path(path), lambda tmp: np.savez_compressed(tmp, **arrays))


# ----------------------------------------------------------------------------------------------------------------
# a tiny labelled set for tests and docs

def make_sound_folder(root: Path, n_per_class: int = 12, seed: int = 0) -> Path:
    """Three classes of one-second sounds as 16 kHz WAV files in class folders: a low hum, a high whistle and a
    click train, each at a random pitch, loudness and start."""
    rng = np.random.default_rng(seed)
    sr = MelSettings().sample_rate
    t = np.arange(sr) / sr
    for name in ("hum", "whistle", "clicks"):
        (root / name).mkdir(parents=True, exist_ok=True)
        for i in range(n_per_class):
            start, gain = rng.uniform(0.0, 0.3), rng.uniform(0.2, 0.8)
            on = (t >= start) & (t < start + 0.5)
            if name == "hum":
                w = np.sin(2 * np.pi * rng.uniform(100, 200) * t)
            elif name == "whistle":
                w = np.sin(2 * np.pi * rng.uniform(2000, 3000) * t)
            else:
                w = (np.mod(t * rng.uniform(8, 16), 1.0) < 0.01).astype(float)
            write_wav(root / name / f"{i:03d}.wav", (gain * w * on).astype(np.float32), sr)
    return root


def example(folder: Path) -> str:
    return str(make_sound_folder(folder))


# ----------------------------------------------------------------------------------------------------------------
# what a job asks, and the report's block

def show(pipe, prompts: tuple[str, ...], folder: Path, data: str) -> tuple[list[dict], dict]:
    """For each prompt (by default every class) a few clips, each kept as a WAV and a picture of the spectrograms;
    speed in seconds of audio made per second, vocoder included."""
    def write(sound, stem: Path) -> dict:
        wav, png = stem.with_suffix(".wav"), stem.with_suffix(".png")
        write_wav_output(wav, sound)
        write_png_output(png, sound, columns=SHOWN_PER_PROMPT)
        job = folder.parent.parent
        return {"file": str(wav.relative_to(job)), "picture": str(png.relative_to(job))}
    items, made, spent = show_prompts(pipe, prompts, folder, n=SHOWN_PER_PROMPT, seed=SEED, write=write,
                                      amount=lambda sound: sound.waves.size / sound.sample_rate)
    return items, ({"unit": "s of audio/s", "value": made / spent} if spent else {})


def html(item: dict, out: Path) -> str:
    """A player for the clips of one prompt (the WAV inlined) above their spectrograms."""
    audio = base64.b64encode((Path(out) / item["file"]).read_bytes()).decode()
    picture = base64.b64encode((Path(out) / item["picture"]).read_bytes()).decode()
    title = _html.escape(item["title"], quote=True)
    return (f"<figure><audio controls preload='none' src='data:audio/wav;base64,{audio}'></audio><br>"
            f"<img class='grid' alt='spectrograms of {title}' src='data:image/png;base64,{picture}'>"
            f"<figcaption>{title}: {SHOWN_PER_PROMPT} clips, seed {SEED}</figcaption></figure>")


def card(pipe) -> dict:
    """A run on sound says its sample rate, and a class-conditional one the words (classes) it can say."""
    out = {"sample_rate": int(pipe.sample_rate)} if "prompt" in pipe.capabilities or "sample" in \
        pipe.capabilities else {}
    if pipe.conditional:
        out["classes"] = list(pipe.classes)
    return out


def commands(run: str, prompt: str, capabilities) -> list[str]:
    q = shlex.quote
    if "prompt" in capabilities and prompt:
        return [f"tetragen sample {q(run)} --prompt {q(prompt)} --n 4 --out {q(prompt.replace(' ', '_'))}.wav"]
    if "sample" in capabilities:
        return [f"tetragen sample {q(run)} --n 8 --seed {SEED} --out samples.wav"]
    return []

