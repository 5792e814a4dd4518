"""`spoken-words`: twenty English words (the digits zero..nine and yes no up down left right on off stop go), one
second each at 16 kHz, synthesised on this machine with Debian's espeak-ng (installed with apt-get where allowed).

Every clip is drawn from a seeded numpy generator: a voice (one of espeak-ng's English accents with one of its voice
variants), pitch, speed, amplitude, a gain and, for half the clips, white noise at a random signal-to-noise ratio.
The split is by voice: the test clips are spoken by variants the training clips never use, in any accent, so a
model is tested on voices it has not heard. espeak-ng's output for the same text and settings is deterministic, so
the same espeak-ng version and seed make the same set, byte for byte (the manifest records both, with the sha256 of
the audio and of the clip list).

The set is made once into the cache (`cache_dir()/spoken-words-v1-seed{seed}`: int16 audio.npy + manifest.json)
by `spoken_words()` or `tetragen data fetch spoken-words`.
"""
from __future__ import annotations

import shutil
import subprocess
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import torch

from ...data.sources import apt_command, apt_install, cache_dir, made_dataset, made_set
from ...errors import UserError
from .audio import AUDIO_FILE, MelSettings, SoundSet, read_clips, resample, split_sets, write_clips

NAME = "spoken-words"
VERSION = 1                 # of the recipe below: a change to it makes a new cache folder
WORDS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine",
         "yes", "no", "up", "down", "left", "right", "on", "off", "stop", "go")
# Accents by espeak-ng voice file: asked by language name, "en-gb" picks the mbrola voice that claims it (not
# installed) and then ignores every variant, so all en-gb voices sound alike.
ACCENTS = {"en-gb": "gmw/en", "en-us": "gmw/en-US", "en-us-nyc": "gmw/en-US-nyc",
           "en-gb-scotland": "gmw/en-GB-scotland", "en-gb-x-rp": "gmw/en-GB-x-rp",
           "en-gb-x-gbclan": "gmw/en-GB-x-gbclan", "en-gb-x-gbcwmd": "gmw/en-GB-x-gbcwmd", "en-029": "gmw/en-029"}
# Voice variants (`espeak-ng --voices=variant`) that stay speech-like and below full scale at the default amplitude;
# the robots, the demons and the variants that clip are left out.
VARIANTS = ("m1", "m2", "m3", "m4", "m5", "m6", "m7", "m8", "f1", "f2", "f3", "f4", "f5", "croak", "whisper",
            "whisperf", "klatt", "klatt2", "klatt3", "klatt4", "Alex", "Alicia", "Andy", "Annie", "aunty", "belinda",
            "benjamin", "david", "edward", "grandma", "grandpa", "linda", "max", "quincy", "rob", "steph", "travis",
            "victor")
TEST_VARIANTS = 8           # variants held out for the test split (with every accent)
PER_WORD, TEST_PER_WORD = 200, 40
# what each clip draws, uniformly: espeak-ng's pitch (-p, 0..99, default 50), speed (-s, words per minute, default
# 175: the slowest still fits the longest word in a second), amplitude (-a, default 100, the loudest that never
# clips), then a gain in dB and, for half the clips, white noise at a signal-to-noise ratio in dB
PITCH, SPEED, AMPLITUDE, GAIN_DB, SNR_DB, NOISY = (25, 75), (130, 200), (40, 100), (-12.0, 0.0), (10.0, 40.0), 0.5
ESPEAK_RATE = 22050         # what espeak-ng --stdout writes
SILENCE_DB = -40.0          # below the clip's peak: the leading and trailing silence trimmed before centring


def folder_for(seed: int) -> Path:
    return cache_dir() / f"{NAME}-v{VERSION}-seed{seed}"


def espeak() -> str:
    """The espeak-ng program, installed with apt-get where this process may; else a one-line UserError."""
    found = shutil.which("espeak-ng")
    if found:
        return found
    try:
        apt_install("espeak-ng")
    except RuntimeError as e:
        raise UserError(f"{NAME}: needs espeak-ng to synthesise the words, and it could not be installed ({e}); "
                        f"install it with `{apt_command('espeak-ng')}`") from None
    found = shutil.which("espeak-ng")
    if not found:
        raise UserError(f"{NAME}: apt-get installed espeak-ng but it is not on PATH; install it with "
                        f"`{apt_command('espeak-ng')}`")
    return found


def espeak_version(program: str) -> str:
    """e.g. "eSpeak NG text-to-speech: 1.51" (the data folder it also prints is left out)."""
    out = subprocess.run([program, "--version"], capture_output=True, text=True, timeout=30).stdout
    return out.split("Data at")[0].strip()


def voices(seed: int, accents=tuple(ACCENTS), variants=VARIANTS,
           test_variants: int = TEST_VARIANTS) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    """(train, test) voices as (accent, variant) pairs: `test_variants` variants, drawn with the seed, speak only
    the test clips, so no test voice is ever heard in training."""
    if not 0 < test_variants < len(variants):
        raise UserError(f"{NAME}: test_variants={test_variants} must leave variants for both splits "
                        f"(there are {len(variants)})")
    order = np.random.default_rng([seed, 0]).permutation(len(variants))
    held = {variants[i] for i in order[:test_variants]}
    train = [(a, v) for a in accents for v in variants if v not in held]
    test = [(a, v) for a in accents for v in variants if v in held]
    return train, test


def _plan(seed: int, words, per_word: int, test_per_word: int, train_voices, test_voices) -> list[dict]:
    """One dict per clip: what to say, how, and where it goes. Numbers are rounded as the manifest stores them,
    so that the clip made from the manifest is the clip made here."""
    rng = np.random.default_rng([seed, 1])
    clips = []
    for split, pool, n in (("train", train_voices, per_word), ("test", test_voices, test_per_word)):
        for word in words:
            for _ in range(n):
                accent, variant = pool[rng.integers(len(pool))]
                noisy = rng.random() < NOISY
                snr = round(float(rng.uniform(*SNR_DB)), 1)
                clips.append({"label": word, "accent": accent, "variant": variant, "voice": f"{accent}+{variant}",
                              "pitch": int(rng.integers(PITCH[0], PITCH[1] + 1)),
                              "speed": int(rng.integers(SPEED[0], SPEED[1] + 1)),
                              "amplitude": int(rng.integers(AMPLITUDE[0], AMPLITUDE[1] + 1)),
                              "gain_db": round(float(rng.uniform(*GAIN_DB)), 2),
                              "noise_snr_db": snr if noisy else None, "split": split})
    return clips


def _pcm_of_wav(data: bytes) -> np.ndarray:
    """The int16 samples of espeak-ng's --stdout WAV (its header gives no true length: it is written before the
    speech is, so the samples are simply all that follows the data chunk's header)."""
    at = data.find(b"data", 12)
    if data[:4] != b"RIFF" or at < 0:
        raise RuntimeError("espeak-ng wrote no WAV data")
    body = data[at + 8:]
    return np.frombuffer(body[:len(body) // 2 * 2], dtype="<i2")


def _say(program: str, clip: dict, settings: MelSettings) -> tuple[np.ndarray, bool]:
    """One word as float32 (clip,) at the settings' rate, silence trimmed and centred (cut at the end when
    longer than the clip, which the speed range avoids), and whether it was cut."""
    cmd = [program, "--stdout", "-v", f"{ACCENTS[clip['accent']]}+{clip['variant']}", "-p", str(clip["pitch"]),
           "-s", str(clip["speed"]), "-a", str(clip["amplitude"]), clip["label"]]
    r = subprocess.run(cmd, capture_output=True, timeout=60)
    if r.returncode != 0:
        raise UserError(f"{NAME}: espeak-ng failed on {' '.join(cmd[1:])} "
                        f"({r.stderr.decode(errors='replace').strip()[:100]}); check `espeak-ng --voices=en`")
    x = _pcm_of_wav(r.stdout).astype(np.float32) / 32768.0
    x = resample(torch.from_numpy(x), ESPEAK_RATE, settings.sample_rate).numpy()
    loud = np.flatnonzero(np.abs(x) > np.abs(x).max() * 10 ** (SILENCE_DB / 20)) if x.size else []
    if len(loud) == 0:
        raise UserError(f"{NAME}: espeak-ng said nothing for {' '.join(cmd[1:])}; check `espeak-ng --voices=en`")
    word = x[loud[0]:loud[-1] + 1]
    out = np.zeros(settings.clip, dtype=np.float32)
    start = max(0, (settings.clip - len(word)) // 2)
    kept = word[:settings.clip]
    out[start:start + len(kept)] = kept
    return out, len(word) > settings.clip


def make_spoken_words(folder: Path, seed: int = 0, words=WORDS, per_word: int = PER_WORD,
                      test_per_word: int = TEST_PER_WORD, accents=tuple(ACCENTS), variants=VARIANTS,
                      test_variants: int = TEST_VARIANTS, workers: int = 4) -> Path:
    """Synthesise the set into `folder` (audio.npy + manifest.json); a tiny one for tests with a few words,
    accents and variants. `workers` espeak-ng processes run at a time (they do the work; the threads only wait)."""
    program = espeak()
    settings = MelSettings()
    train_voices, test_voices = voices(seed, accents, variants, test_variants)
    clips = _plan(seed, words, per_word, test_per_word, train_voices, test_voices)
    pcm = np.zeros((len(clips), settings.clip), dtype=np.int16)
    with ThreadPoolExecutor(max_workers=workers) as pool:
        for i, (clip, (x, cut)) in enumerate(zip(clips, pool.map(lambda c: _say(program, c, settings), clips))):
            # gain, then noise from a generator of its own per clip: the result does not depend on the pool's order
            x = x * np.float32(10 ** (clip["gain_db"] / 20))
            if clip["noise_snr_db"] is not None:
                speech = x[np.abs(x) > 0]
                rms = float(np.sqrt(np.mean(np.square(speech, dtype=np.float64)))) if speech.size else 0.0
                noise = np.random.default_rng([seed, 2, i]).standard_normal(settings.clip).astype(np.float32)
                x = x + noise * np.float32(rms * 10 ** (-clip["noise_snr_db"] / 20))
            clip["cut"] = bool(cut)
            pcm[i] = np.round(np.clip(x, -1.0, 1.0) * 32767.0).astype(np.int16)
    header = {"dataset": NAME, "version": VERSION, "espeak_ng": espeak_version(program), "seed": seed,
              "sample_rate": settings.sample_rate, "classes": list(words),
              "settings": {"per_word": per_word, "test_per_word": test_per_word, "accents": list(accents),
                           "variants": list(variants), "test_variants": test_variants,
                           "test_voices": [f"{a}+{v}" for a, v in test_voices], "pitch": PITCH, "speed": SPEED,
                           "amplitude": AMPLITUDE, "gain_db": GAIN_DB, "snr_db": SNR_DB, "noisy": NOISY}}
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    write_clips(folder, pcm, clips, header)
    return folder


def ensure_spoken_words(seed: int = 0) -> Path:
    """The cached set's folder, synthesised first when it is not there."""
    n = len(WORDS) * (PER_WORD + TEST_PER_WORD)
    return made_set(folder_for(seed), lambda tmp: make_spoken_words(tmp, seed, WORDS, PER_WORD, TEST_PER_WORD,
                                                                    tuple(ACCENTS), VARIANTS, TEST_VARIANTS),
                    f"synthesising {NAME} ({n} clips with espeak-ng, about a minute on 2 cores)")


def spoken_words(seed: int = 0) -> tuple[SoundSet, SoundSet]:
    """(train, test) SoundSets of 1-s clips; `meta` holds each clip's manifest entry (word, voice, pitch, ...)."""
    return split_sets(*read_clips(ensure_spoken_words(seed), f"it with `tetragen data fetch {NAME}`"))


DATASETS = [made_dataset(NAME, f"{len(WORDS)} spoken words (digits and commands), 1-s clips at 16 kHz; the test "
                               f"voices are never heard in training",
                         "synthesised on this machine by the Debian package espeak-ng", lambda: folder_for(0),
                         ensure_spoken_words, lambda manifest: f"synthesised with {manifest['espeak_ng']}",
                         (AUDIO_FILE,))]
