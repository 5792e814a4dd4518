"""`drums`: recorded drum one-shots from the drum kits of Debian's `hydrogen-drumkits` (installed with apt-get where
allowed), one second each at 16 kHz, labelled by instrument.

Each kit's drumkit.xml names its instruments and the sample files of each (one per velocity layer). A file is
labelled from its instrument's name (else from its own file name) by the first matching rule of `RULES`: kick,
snare, hi-hat, tom, ride, crash, rim (side stick, rim click), clap (and finger snaps), bell (cowbell, agogo, the
bells of African drums), hand drum (conga, bongo, djembe, cajon and the like) and shaker (tambourine, maraca). Sounds
that match no rule (claves, woodblocks, water glasses, whistles, synth effects, unnamed slots) are dropped, and so is
a class with fewer than `MIN_PER_CLASS` clips. Each clip is mixed to mono, resampled, started just before its onset
and cut or padded to a second; the level is kept as recorded (soft and hard velocity layers stay apart).

The split is by kit (test kits drawn with the seed, so a model is tested on drums it never heard) and made so that
every class is in both splits; the set is made once into the cache (`cache_dir()/drums-v1-seed{seed}`).
"""
from __future__ import annotations

import re
import subprocess
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import torch

from ...data.sources import apt_command, apt_install, cache_dir, made_dataset, made_set
from ...errors import UserError
from .audio import (AUDIO_FILE, MelSettings, SoundSet, fit_length, read_audio, read_clips, resample,
                    split_sets, write_clips)

NAME = "drums"
VERSION = 1
APT_PACKAGE = "hydrogen-drumkits"
KITS = Path("/usr/share/hydrogen/data/drumkits")
SUFFIXES = {".wav", ".flac", ".aif", ".aiff", ".ogg"}
# (class, pattern) in order, matched against a lower-case name whose punctuation, digits and camelCase are spaces:
# the first match wins, so "ride bell" is a ride before "bell" can claim it, and "crash/ride" a ride
RULES = (
    ("hi-hat", r"\bhi ?hat|\bhat\b|\bhh\b|\b[co]hh\b|\bhh(?:closed|open|pedal)"),
    ("ride", r"\bride|\bpaiste bell\b|\brd\b"),
    ("crash", r"\bcrash|\bchina\b|\bsplash\b|\bcymbal|\bcc\b"),
    ("kick", r"\bkick|\bbass ?drum|\bbd\b"),
    ("snare", r"\bsnare|\bsd\b|\bsn\b"),
    ("tom", r"\btom|\bfloortom"),
    ("rim", r"\bstick\b|\brim\b|\bclick\b"),
    ("clap", r"\bclap|\bsnaps?\b"),
    ("bell", r"\bcowbell|\bagogo|\bbell\b"),
    ("hand drum", r"\bconga|\bbongo|\bdjembe|\bdununba|\bsangban|\bkenkeni|\bcajon"),
    ("shaker", r"\btambourine|\bmaraca|\bshaker"),
)
MIN_PER_CLASS = 12          # fewer clips than this cannot be split by kit and still teach anything
PRE_ONSET = 0.005           # seconds kept before the onset, so that the attack is whole
ONSET_DB = -30.0            # below the file's peak: where the onset is
FADE = 0.02                 # seconds of fade-out where a ringing sound is cut at the clip's end (a cut is a click)
SILENT_PEAK = 1e-4          # the kits hold placeholder files of digital silence
TEST_SHARE = (0.15, 0.35)   # of all clips, in the test kits
CLASS_TEST_SHARE = (0.1, 0.5)  # of each class's clips, in the test kits: no class is mostly test


def folder_for(seed: int) -> Path:
    return cache_dir() / f"{NAME}-v{VERSION}-seed{seed}"


def _words(name: str) -> str:
    name = re.sub(r"([a-z])([A-Z])", r"\1 \2", name)
    return re.sub(r"[\W_\d]+", " ", name).strip().lower()


def label_of(name: str) -> str | None:
    """The class of a sound from its instrument's (or file's) name, or None when no rule matches."""
    words = _words(name)
    for label, pattern in RULES:
        if re.search(pattern, words):
            return label
    return None


def _strip_ns(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def kit_files(kit: Path) -> list[tuple[Path, str, str | None]]:
    """(file, the name it is labelled from, its class or None) for each sample file of a kit, each file once: named
    by its instrument in drumkit.xml when it has one there (the first instrument naming it wins), else by its file
    name."""
    named: dict[str, str] = {}
    xml = kit / "drumkit.xml"
    if xml.is_file():
        try:
            root = ET.parse(xml).getroot()
        except ET.ParseError:
            root = None
        for instrument in (root.iter() if root is not None else ()):
            if _strip_ns(instrument.tag) != "instrument":
                continue
            name = next((c.text or "" for c in instrument if _strip_ns(c.tag) == "name"), "").strip()
            for element in instrument.iter():
                if _strip_ns(element.tag) == "filename" and element.text:
                    named.setdefault(Path(element.text.strip()).name, name)
    out = []
    for path in sorted(p for p in kit.iterdir() if p.is_file() and p.suffix.lower() in SUFFIXES):
        name = named.get(path.name, "")
        label = label_of(name) if name else None
        if label is None:
            name, label = path.stem, label_of(path.stem)
        out.append((path, name, label))
    return out


def load_one_shot(path: Path, settings: MelSettings) -> np.ndarray | None:
    """A file as float32 (clip,) mono at the settings' rate, starting PRE_ONSET before its onset, cut (with a short
    fade) or zero-padded at the end; None for a silent file."""
    wave, rate, _ = read_audio(path)
    if wave.size == 0 or np.abs(wave).max() < SILENT_PEAK:
        return None
    x = resample(torch.from_numpy(wave), rate, settings.sample_rate).numpy()
    peak = np.abs(x).max()
    onset = int(np.argmax(np.abs(x) >= peak * 10 ** (ONSET_DB / 20)))
    x = x[max(0, onset - int(PRE_ONSET * settings.sample_rate)):]
    if len(x) > settings.clip:
        fade = int(FADE * settings.sample_rate)
        x = x[:settings.clip].copy()
        x[-fade:] *= np.cos(np.linspace(0, np.pi / 2, fade, dtype=np.float32)) ** 2
    return fit_length(x, settings.clip).astype(np.float32)


def _split_by_kit(kits: list[str], labels: list[str], seed: int) -> set[str]:
    """The test kits: the first seeded draw of kits that holds a TEST_SHARE of all clips and a CLASS_TEST_SHARE of
    each class's."""
    kits_arr, labels_arr = np.array(kits), np.array(labels)
    names = sorted(set(kits))
    rng = np.random.default_rng([seed, 0])
    for _ in range(10000):
        test, share = set(), 0.0
        for i in rng.permutation(len(names)):
            if share >= TEST_SHARE[0]:
                break
            test.add(names[i])
            share = float(np.isin(kits_arr, list(test)).mean())
        in_test = np.isin(kits_arr, list(test))
        shares = [in_test[labels_arr == c].mean() for c in set(labels)]
        if share <= TEST_SHARE[1] and CLASS_TEST_SHARE[0] <= min(shares) and max(shares) <= CLASS_TEST_SHARE[1]:
            return test
    raise UserError(f"{NAME}: no split of the {len(names)} kits puts a share of every class in both train and "
                    f"test; reinstall {APT_PACKAGE}")


def make_drums(folder: Path, seed: int = 0, kits_root: Path = KITS, min_per_class: int = MIN_PER_CLASS) -> Path:
    """Read every kit under `kits_root`, label, align and split the clips and write them into `folder`."""
    settings = MelSettings()
    kits = sorted(p for p in Path(kits_root).iterdir() if p.is_dir())
    clips, waves, dropped = [], [], {"no class": 0, "silent": 0, "duplicate": 0, "rare class": 0}
    seen = set()
    for kit in kits:
        for path, name, label in kit_files(kit):
            if label is None:
                dropped["no class"] += 1
                continue
            wave = load_one_shot(path, settings)
            if wave is None:
                dropped["silent"] += 1
                continue
            key = wave.tobytes()  # the same recording under two names (kits share samples)
            if key in seen:
                dropped["duplicate"] += 1
                continue
            seen.add(key)
            clips.append({"label": label, "kit": kit.name, "file": path.name, "instrument": name})
            waves.append(wave)
    counts = {c: sum(1 for clip in clips if clip["label"] == c) for c, _ in RULES}
    classes = [c for c, _ in RULES if counts[c] >= min_per_class]
    dropped["rare class"] = sum(n for c, n in counts.items() if c not in classes)
    keep = [i for i, clip in enumerate(clips) if clip["label"] in classes]
    if not keep:
        raise UserError(f"{NAME}: no labelled drum sounds under {kits_root}; reinstall {APT_PACKAGE}")
    clips, waves = [clips[i] for i in keep], [waves[i] for i in keep]
    test_kits = _split_by_kit([c["kit"] for c in clips], [c["label"] for c in clips], seed)
    for clip in clips:
        clip["split"] = "test" if clip["kit"] in test_kits else "train"
    pcm = np.round(np.clip(np.stack(waves), -1.0, 1.0) * 32767.0).astype(np.int16)
    header = {"dataset": NAME, "version": VERSION, "source": f"Debian package {APT_PACKAGE} {_package_version()}",
              "seed": seed, "sample_rate": settings.sample_rate, "classes": classes, "test_kits": sorted(test_kits),
              "dropped": dropped}
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    write_clips(folder, pcm, clips, header)
    return folder


def _package_version() -> str:
    try:
        r = subprocess.run(["dpkg-query", "-W", "-f", "${Version}", APT_PACKAGE], capture_output=True, text=True,
                           timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return "(version unknown)"
    return r.stdout.strip() if r.returncode == 0 else "(version unknown)"


def kits_folder() -> Path:
    """The kits' folder, after installing the package with apt-get where allowed; else a one-line UserError."""
    if KITS.is_dir() and any(KITS.iterdir()):
        return KITS
    try:
        apt_install(APT_PACKAGE)
    except RuntimeError as e:
        raise UserError(f"{NAME}: needs the drum kits of the Debian package {APT_PACKAGE}, which could not be "
                        f"installed ({e}); install it with `{apt_command(APT_PACKAGE)}`") from None
    if not KITS.is_dir():
        raise UserError(f"{NAME}: {APT_PACKAGE} is installed but {KITS} is missing; reinstall it with "
                        f"`{apt_command(APT_PACKAGE)} --reinstall`")
    return KITS


def ensure_drums(seed: int = 0) -> Path:
    """The cached set's folder, made first from the kits (installed first where allowed) when it is not there."""
    return made_set(folder_for(seed), lambda tmp: make_drums(tmp, seed, kits_folder()),
                    f"making {NAME} from the kits of the Debian package {APT_PACKAGE}")


def drums(seed: int = 0) -> tuple[SoundSet, SoundSet]:
    """(train, test) SoundSets of 1-s one-shots; `meta` holds each clip's kit, file and instrument name."""
    return split_sets(*read_clips(ensure_drums(seed), f"it with `tetragen data fetch {NAME}`"))


DATASETS = [made_dataset(NAME, "recorded drum one-shots (kick, snare, hi-hat, tom, cymbals, ...), 1-s clips at "
                               "16 kHz; the test kits are never heard in training",
                         f"the Debian package {APT_PACKAGE}", lambda: folder_for(0), ensure_drums,
                         lambda manifest: f"made from the {manifest['source']}", (AUDIO_FILE,))]
