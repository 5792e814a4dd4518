"""Sound as pictures and back: one second of 16 kHz audio <-> a 64x64 log-mel spectrogram stored as an 8-bit
single-channel image, so that every image family can learn sound unchanged.

    wave (N, 16000) --stft--> |X| (N, 513, 64) --mel--> power (N, 64, 64) --dB--> to_grid --> uint8 (N, 64, 64, 1)
    uint8 --from_grid--> dB --pseudo-inverse of the filterbank--> |X| --griffin_lim--> wave

The way back has no phase, so it is estimated with fast Griffin-Lim (Perraudin, Balazs & Sondergaard, "A fast
Griffin-Lim algorithm", WASPAA 2013, https://doi.org/10.1109/WASPAA.2013.6701851): alternate projections between
consistent spectrograms and the wanted magnitudes, with a momentum term; here the wanted magnitudes are those whose
mel bands match the picture (see `griffin_lim`).

Also here: the sound files tetragen reads (`read_audio`: anything libsndfile decodes, checked from the header before
anything is decoded) and writes (16-bit PCM WAV), a windowed-sinc resampler, and `SoundSet`, the labelled clips that
the sound datasets return, with the folder format the made ones are cached in (int16 .npy + manifest.json).
"""
from __future__ import annotations

import hashlib
import io
import json
import math
import wave as wavefile
from dataclasses import asdict, dataclass, fields
from fractions import Fraction
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from ...data.sources import MANIFEST
from ...errors import UserError
from ...files import read_json, replace_atomically, write_json


# ----------------------------------------------------------------------------------------------------------------
# the representation

@dataclass(frozen=True)
class MelSettings:
    """How a clip becomes a spectrogram picture. The defaults give exactly 64 bands x 64 frames for 1 s at 16 kHz."""
    sample_rate: int = 16000
    clip: int = 16000           # samples per clip (1 s)
    n_fft: int = 1024
    hop: int = 250              # 16000 / 250 = 64 frame centres, at 0, 250, ..., 15750 (see `stft`)
    n_mels: int = 64
    f_min: float = 0.0
    f_max: float = 8000.0       # Nyquist at 16 kHz: nothing the clip holds is left out
    # dB relative to a fixed reference (a full-scale sine's peak FFT bin is -6 dB), never to the clip's own
    # maximum: a quiet word must stay quiet in the picture, or a model could not learn loudness. A band averages
    # several bins, so a full-scale low sine reaches about -10 dB; the loudest sounds of the shipped sets, full-scale
    # kick drums, stay just under db_max and speech well under it, so nothing clips. 80 dB below it lies under the
    # quiet end of a cymbal's decay and under the noise of the noisiest clips, so the picture holds what is heard.
    db_max: float = -8.0
    db_range: float = 80.0

    def __post_init__(self):
        nyquist = self.sample_rate / 2
        for name, value, ok, need in (
                ("sample_rate", self.sample_rate, self.sample_rate >= 1000, ">= 1000"),
                ("hop", self.hop, 0 < self.hop <= self.n_fft, f"in 1..n_fft ({self.n_fft})"),
                ("clip", self.clip, self.clip >= self.hop, f">= hop ({self.hop})"),
                ("n_mels", self.n_mels, 0 < self.n_mels <= self.n_fft // 2, f"in 1..{self.n_fft // 2}"),
                ("f_max", self.f_max, 0 <= self.f_min < self.f_max <= nyquist, f"above f_min, at most {nyquist:g} Hz"),
                ("db_range", self.db_range, self.db_range > 0, "> 0")):
            if not ok:
                raise UserError(f"mel settings: {name}={value!r} must be {need}")

    @property
    def db_min(self) -> float:
        return self.db_max - self.db_range

    @property
    def frames(self) -> int:
        return self.clip // self.hop

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, doc: dict) -> "MelSettings":
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(doc) - known)
        if unknown:
            raise UserError(f"mel settings: unknown field {unknown[0]!r}; the fields are {', '.join(sorted(known))}")
        return cls(**doc)


def _hz_to_mel(f):
    return 2595.0 * np.log10(1.0 + np.asarray(f, dtype=np.float64) / 700.0)


def _mel_to_hz(m):
    return 700.0 * (10.0 ** (np.asarray(m, dtype=np.float64) / 2595.0) - 1.0)


@lru_cache(maxsize=8)
def mel_filterbank(settings: MelSettings = MelSettings()) -> torch.Tensor:
    """(n_mels, n_fft // 2 + 1) triangles on the HTK mel scale (2595 log10(1 + f / 700)), evenly spaced between
    f_min and f_max. Each row sums to 1, so a band's value is the weighted mean power of its FFT bins: white noise is
    flat across the bands, whatever their width."""
    bins = np.linspace(0.0, settings.sample_rate / 2, settings.n_fft // 2 + 1)
    edges = _mel_to_hz(np.linspace(_hz_to_mel(settings.f_min), _hz_to_mel(settings.f_max), settings.n_mels + 2))
    lower, centre, upper = edges[:-2, None], edges[1:-1, None], edges[2:, None]
    rising = (bins[None] - lower) / (centre - lower)
    falling = (upper - bins[None]) / (upper - centre)
    weights = np.clip(np.minimum(rising, falling), 0.0, None)
    # with many bands or a short FFT the lowest triangles are narrower than a bin's spacing and may fall between two
    # bins: give such a band its nearest bin, so that no row is empty (it would be -inf dB and useless to invert)
    for m in np.flatnonzero(weights.sum(1) == 0):
        weights[m, np.argmin(np.abs(bins - centre[m, 0]))] = 1.0
    return torch.from_numpy(weights / weights.sum(1, keepdims=True)).float()


@lru_cache(maxsize=8)
def _mel_inverse(settings: MelSettings) -> torch.Tensor:
    """(n_fft // 2 + 1, n_mels): the least-squares (minimum-norm) way from band power back to bin power."""
    return torch.linalg.pinv(mel_filterbank(settings).double()).float()


def _window(settings: MelSettings) -> torch.Tensor:
    return torch.hann_window(settings.n_fft)


def stft(waves: torch.Tensor, settings: MelSettings = MelSettings()) -> torch.Tensor:
    """Complex STFT (N, n_fft // 2 + 1, frames) scaled so that a full-scale sine on a bin has magnitude 1/2.

    Frames are centred at 0, hop, 2 hop, ... with zeros outside the clip (not a reflection: a drum's attack at the
    start must not be mirrored into a pre-echo); the frame centred on the clip's end, mostly zeros, is dropped so
    that a clip gives exactly clip / hop frames."""
    window = _window(settings).to(waves.device)
    x = torch.stft(waves.float(), settings.n_fft, settings.hop, window=window, center=True,
                   pad_mode="constant", return_complex=True)
    return x[..., :settings.frames] / window.sum()


def log_mel(waves: torch.Tensor, settings: MelSettings = MelSettings()) -> torch.Tensor:
    """(N, T) float waves in [-1, 1] -> (N, n_mels, frames) mel power in dB re a full-scale sine's bin power (-6 dB
    is the peak bin of a full-scale sine), floored far below db_min so that silence stays finite."""
    power = stft(waves, settings).abs().square()                          # (N, F, frames)
    mel = torch.einsum("mf,nft->nmt", mel_filterbank(settings).to(power.device), power)  # (N, n_mels, frames)
    return 10.0 * torch.log10(mel.clamp_min(1e-12))


def to_grid(db: torch.Tensor, settings: MelSettings = MelSettings()) -> np.ndarray:
    """dB (N, n_mels, frames) -> uint8 (N, n_mels, frames, 1): the picture the image families see. Row 0 is the
    HIGHEST band, as a spectrogram is drawn; 255 is db_max, 0 is db_min and below (256 levels)."""
    scaled = (db.float().clamp(settings.db_min, settings.db_max) - settings.db_min) / settings.db_range * 255.0
    return scaled.round().to(torch.uint8).flip(1).unsqueeze(-1).cpu().numpy()


def from_grid(grid: np.ndarray, settings: MelSettings = MelSettings()) -> torch.Tensor:
    """uint8 (N, n_mels, frames, 1) -> dB (N, n_mels, frames), the inverse of `to_grid` within half a level."""
    if grid.ndim != 4 or grid.shape[1:] != (settings.n_mels, settings.frames, 1):
        raise ValueError(f"from_grid: expected pictures (N, {settings.n_mels}, {settings.frames}, 1), got "
                         f"{tuple(grid.shape)}")
    levels = torch.from_numpy(np.ascontiguousarray(grid[..., 0])).float().flip(1)
    return settings.db_min + levels / 255.0 * settings.db_range


def griffin_lim(db: torch.Tensor, settings: MelSettings = MelSettings(), n_iter: int = 16, momentum: float = 0.99,
                seed: int = 0) -> torch.Tensor:
    """Log-mel dB (N, n_mels, frames) -> waves (N, clip), batched and deterministic for a given seed.

    The first magnitudes come from the pseudo-inverse of the filterbank (clamped at zero); the phase starts random
    (one draw from a torch.Generator seeded with `seed`, the same for every row) and is refined by fast
    Griffin-Lim. A mel picture says less than the linear magnitudes the pseudo-inverse guesses, so each iteration
    rescales the bins of the current estimate
    towards the wanted band powers (a multiplicative update, as in non-negative least squares) rather than forcing
    the first guess back on it: the iterations then converge to a sound whose mel spectrogram matches, which
    forcing the guess never does. Bands at db_min or below (level 0 of a picture) are taken as silent. The frame
    centred on the clip's end that `stft` drops is left free (it keeps the estimate's magnitude)."""
    device = db.device
    window = _window(settings).to(device)
    scale = window.sum()
    bank = mel_filterbank(settings).to(device)                                # (M, F)
    cover = bank.sum(0).clamp_min(1e-12)[None, :, None]                       # how much of each bin the bands see
    # (N, M, frames) band power in STFT units; the bottom of the range is silence, not a floor of faint noise (the
    # picture cannot tell them apart, and most of what lies there, such as the padding around a word, is silence)
    wanted = torch.where(db > settings.db_min + 1e-3, 10.0 ** (db.float() / 10.0) * scale ** 2, 0.0)
    power = torch.einsum("fm,nmt->nft", _mel_inverse(settings).to(device), wanted).clamp_min(0.0)
    magnitude = torch.cat([power, power[..., -1:]], dim=-1).sqrt()            # (N, F, frames + 1): + the free frame
    generator = torch.Generator().manual_seed(seed)
    # one phase draw for every row: a row's sound depends on its own picture alone, whatever else is in the batch
    phase = 2 * math.pi * torch.rand(magnitude.shape[1:], generator=generator).to(device)
    # laid out frame by frame (as torch.stft returns it): istft's inverse FFTs then read contiguous frames, which
    # makes a row's result the same whatever the batch (on strided frames they differ with the batch's size)
    spec = torch.polar(magnitude, phase.expand_as(magnitude)).transpose(1, 2).contiguous().transpose(1, 2)
    ratio = torch.ones(magnitude.shape[0], bank.shape[0], magnitude.shape[2], device=device)  # wanted / current
    previous = torch.zeros_like(spec)

    # The loop works in place: fresh tensors of this size each iteration cost more in page faults than the FFTs do,
    # and so does complex abs (|z|^2 is taken from the real and imaginary parts instead).
    for _ in range(n_iter):
        rebuilt = torch.stft(
            torch.istft(spec, settings.n_fft, settings.hop, window=window, center=True, length=settings.clip),
            settings.n_fft, settings.hop, window=window, center=True, pad_mode="constant",
            return_complex=True)                                              # (N, F, frames + 1), consistent
        parts = torch.view_as_real(rebuilt)
        current = parts[..., 0].square().add_(parts[..., 1].square())         # its power
        bands = torch.einsum("mf,nft->nmt", bank, current[..., :-1]).clamp_min_(1e-20)
        torch.div(wanted, bands, out=ratio[..., :-1])
        gain = torch.einsum("mf,nmt->nft", bank, ratio).div_(cover)          # each bin: its bands' mean ratio
        step = previous.mul_(-momentum / (1 + momentum)).add_(rebuilt)        # fast Griffin-Lim's phase
        parts = torch.view_as_real(step)
        gain.mul_(current).div_(parts[..., 0].square().add_(parts[..., 1].square()).clamp_min_(1e-30)).sqrt_()
        spec = step.mul_(gain)                                                # |spec|^2 = gain * current
        previous = rebuilt
    return torch.istft(spec, settings.n_fft, settings.hop, window=window, center=True, length=settings.clip)


def spectral_convergence(reference: torch.Tensor, estimate: torch.Tensor,
                         settings: MelSettings = MelSettings()) -> torch.Tensor:
    """(N,) || |M_ref| - |M_est| ||_F / || |M_ref| ||_F over the mel magnitudes (square roots of band power) of two
    batches of waves: 0 is a perfect match. Measured on the mel bands because they are all a picture holds (the
    linear magnitudes it cannot say are no fault of the inversion), and blind to phase, which no inversion recovers
    exactly."""
    ref = 10.0 ** (log_mel(reference, settings) / 20.0)
    est = 10.0 ** (log_mel(estimate, settings) / 20.0)
    return torch.linalg.vector_norm(ref - est, dim=(1, 2)) / torch.linalg.vector_norm(ref, dim=(1, 2)).clamp_min(1e-12)


# ----------------------------------------------------------------------------------------------------------------
# resampling and length

MAX_PHASES = 1 << 20        # up x down of a resampling ratio, beyond which it is approximated


@lru_cache(maxsize=16)
def _sinc_kernel(up: int, down: int, width: int = 16, rolloff: float = 0.945,
                 beta: float = 14.77) -> tuple[torch.Tensor, int]:
    """Polyphase windowed-sinc kernels (up, 1, taps) for up/down (coprime), low-passed at `rolloff` of the lower
    Nyquist frequency so that nothing above it aliases, with a Kaiser window over `width` zero crossings."""
    cutoff = min(up, down) * rolloff
    half = math.ceil(width * down / cutoff)                                   # input samples each side
    taps = torch.arange(-half, half + down, dtype=torch.float64)[None] / down  # (1, taps)
    phase = -torch.arange(up, dtype=torch.float64)[:, None] / up             # (up, 1)
    t = ((taps + phase) * cutoff).clamp(-width, width)
    window = torch.special.i0(beta * torch.sqrt(1 - (t / width) ** 2)) / torch.special.i0(torch.tensor(beta))
    t = t * math.pi
    sinc = torch.where(t == 0, torch.ones_like(t), torch.sin(t) / t)
    return (sinc * window * cutoff / down).float()[:, None], half


def resample(wave: torch.Tensor, sr_from: int, sr_to: int) -> torch.Tensor:
    """Resample (..., T) float audio with an anti-aliased windowed sinc (polyphase: one strided convolution).
    The output has ceil(T * sr_to / sr_from) samples."""
    if sr_from == sr_to:
        return wave
    ratio, limit = Fraction(int(sr_to), int(sr_from)), 4096
    while ratio.numerator * ratio.denominator > MAX_PHASES:
        # an odd rate such as 44101 Hz would need up x down kernel taps (gigabytes): the nearest ratio of smaller
        # terms is off by far less than a pitch anyone can hear
        ratio, limit = Fraction(int(sr_to), int(sr_from)).limit_denominator(limit), limit // 2
    up, down = ratio.numerator, ratio.denominator
    kernel, half = _sinc_kernel(up, down)
    shape, length = wave.shape[:-1], wave.shape[-1]
    x = F.pad(wave.reshape(-1, 1, length).float(), (half, half + down))
    out = F.conv1d(x, kernel.to(x.device), stride=down)                      # (B, up, steps)
    out = out.transpose(1, 2).reshape(x.shape[0], -1)
    return fit_length(out, math.ceil(length * int(sr_to) / int(sr_from))).reshape(*shape, -1)


def fit_length(wave, n: int):
    """Cut (..., T) audio to `n` samples or zero-pad it, both at the END: a clip keeps its start."""
    length = wave.shape[-1]
    if length >= n:
        return wave[..., :n]
    if isinstance(wave, torch.Tensor):
        return F.pad(wave, (0, n - length))
    return np.pad(wave, [(0, 0)] * (wave.ndim - 1) + [(0, n - length)])


# ----------------------------------------------------------------------------------------------------------------
# sound files

MAX_SECONDS = 600          # read_audio refuses longer files from their header, before decoding a sample
MIN_SAMPLE_RATE = 1000


class AudioFileError(UserError):
    """A sound file that cannot be used; `reason` says why in a word or two (empty, undecodable, sample rate, too
    long), for the readers that skip such files and count the reasons."""

    def __init__(self, message: str, reason: str):
        super().__init__(message)
        self.reason = reason


def pcm_bytes(wave) -> bytes:
    """Float audio (T,) in [-1, 1] -> 16-bit signed little-endian PCM (clipped, rounded)."""
    x = np.asarray(wave.detach().cpu() if isinstance(wave, torch.Tensor) else wave, dtype=np.float64).reshape(-1)
    return np.round(np.clip(x, -1.0, 1.0) * 32767.0).astype("<i2").tobytes()


def wav_bytes(wave, sample_rate: int) -> bytes:
    """A whole mono 16-bit PCM WAV file (the plain 44-byte header) in memory."""
    buffer = io.BytesIO()
    with wavefile.open(buffer, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(int(sample_rate))
        w.writeframes(pcm_bytes(wave))
    return buffer.getvalue()


def write_wav(path: Path, wave, sample_rate: int) -> None:
    """Write mono 16-bit PCM WAV, atomically."""
    data = wav_bytes(wave, sample_rate)
    replace_atomically(Path(path), lambda tmp: tmp.write_bytes(data))


# soundfile's names for sample formats, in words; 16-bit PCM and 32-bit float are read without a note
_SUBTYPES = {"PCM_U8": "8-bit unsigned", "PCM_S8": "8-bit", "PCM_24": "24-bit", "PCM_32": "32-bit integer",
             "DOUBLE": "64-bit float", "ULAW": "u-law", "ALAW": "A-law"}


def _duration(seconds: float) -> str:
    """e.g. "7 seconds", "11 minutes", "10 hours"."""
    for unit, size in (("hour", 3600), ("minute", 60)):
        if seconds >= 2 * size or seconds == size:
            return f"{seconds / size:.0f} {unit}{'s' * (round(seconds / size) != 1)}"
    return f"{seconds:.0f} second{'s' * (round(seconds) != 1)}"


def read_audio(path: Path, max_seconds: float = MAX_SECONDS) -> tuple[np.ndarray, int, list[str]]:
    """(wave float32 mono (T,), sample rate, notes) from any file libsndfile decodes (WAV, FLAC, OGG, AIFF, ...,
    any bit depth, channel count and sample rate). `notes` says each conversion made (channels mixed, sample
    format widened). An empty, undecodable, absurdly sampled or over-long file is a one-line AudioFileError (a
    UserError); the length and rate are checked from the header, before any sample is decoded."""
    import soundfile
    path = Path(path)
    try:
        size = path.stat().st_size
    except OSError as e:
        raise AudioFileError(f"{path}: cannot read it ({e.strerror or e}); check the path", "unreadable") from None
    if size == 0:
        raise AudioFileError(f"{path}: the file is empty (0 bytes); remove it or export the sound again", "empty")
    try:
        info = soundfile.info(str(path))
    except (RuntimeError, OSError) as e:  # soundfile.LibsndfileError is a RuntimeError
        why = str(e).splitlines()[0].split(": ")[-1][:80] if str(e) else type(e).__name__
        raise AudioFileError(f"{path}: not a sound file that can be decoded ({why}); give WAV, FLAC, OGG or AIFF",
                             "undecodable") from None
    if info.samplerate < MIN_SAMPLE_RATE:
        raise AudioFileError(f"{path}: the header says {info.samplerate} Hz, below {MIN_SAMPLE_RATE} Hz, so the "
                             f"header is damaged or this is not audio; export it again at 16000 Hz or more",
                             "sample rate")
    if info.frames > max_seconds * info.samplerate:
        raise AudioFileError(f"{path}: {_duration(info.frames / info.samplerate)} long by its header, over the "
                             f"{_duration(max_seconds).replace(' ', '-').rstrip('s')} limit; cut it into clips first",
                             "too long")
    try:
        data, sample_rate = soundfile.read(str(path), dtype="float32", always_2d=True)
    except (RuntimeError, OSError) as e:
        why = str(e).splitlines()[0].split(": ")[-1][:80] if str(e) else type(e).__name__
        raise AudioFileError(f"{path}: the header reads but the samples do not decode ({why}); the file is "
                             f"truncated or damaged", "undecodable") from None
    notes = []
    if info.subtype in _SUBTYPES:
        notes.append(f"read {_SUBTYPES[info.subtype]} samples as 32-bit float")
    if data.shape[1] > 1:
        notes.append(f"mixed {data.shape[1]} channels to mono")
    return np.ascontiguousarray(data.mean(axis=1, dtype=np.float32)), int(sample_rate), notes


# ----------------------------------------------------------------------------------------------------------------
# sets of labelled clips, and the folder format of the sets tetragen makes

@dataclass
class SoundSet:
    """Labelled clips of equal length: waves float32 (N, clip) in [-1, 1], labels int64 (N,) indexing `classes`,
    and optionally one dict per clip saying where it came from (and its caption, for a folder with captions)."""
    waves: np.ndarray
    labels: np.ndarray
    classes: list[str]
    meta: list[dict] | None = None

    def __len__(self) -> int:
        return len(self.labels)

    def subset(self, index) -> "SoundSet":
        index = np.asarray(index, dtype=np.int64)
        meta = [self.meta[i] for i in index] if self.meta is not None else None
        return SoundSet(self.waves[index], self.labels[index], list(self.classes), meta)


AUDIO_FILE, MANIFEST_FILE = "audio.npy", MANIFEST


def _sha256(data) -> str:
    """Of bytes, or of a C-contiguous array's memory (read in place, not copied)."""
    return hashlib.sha256(data).hexdigest()


def clips_digest(clips: list[dict]) -> str:
    """sha256 of the clip list as canonical JSON: equal for equal lists, whatever the file's layout."""
    return _sha256(json.dumps(clips, sort_keys=True, separators=(",", ":")).encode())


def write_clips(folder: Path, pcm: np.ndarray, clips: list[dict], header: dict) -> None:
    """Write int16 clips (N, clip) as audio.npy (plain numpy, no pickle) and manifest.json: `header` (how the set
    was made), the classes and one dict per clip (its `label`, `split` and how it was made), with the sha256 of the
    audio bytes and of the clip list."""
    pcm = np.ascontiguousarray(pcm, dtype="<i2")
    doc = {**header, "shape": list(pcm.shape), "sha256_audio": _sha256(pcm),
           "sha256_clips": clips_digest(clips), "clips": clips}
    replace_atomically(Path(folder) / AUDIO_FILE, lambda tmp: np.save(tmp, pcm, allow_pickle=False))
    write_json(Path(folder) / MANIFEST_FILE, doc)


def read_clips(folder: Path, what: str) -> tuple[np.ndarray, dict]:
    """The int16 clips and manifest written by `write_clips`, checked against the manifest's sha256."""
    doc = read_json(Path(folder) / MANIFEST_FILE, f"make {what} again")
    try:
        pcm = np.load(Path(folder) / AUDIO_FILE, allow_pickle=False)
    except (OSError, ValueError) as e:
        raise UserError(f"{folder / AUDIO_FILE}: unreadable ({str(e).splitlines()[0][:80]}); delete {folder} and "
                        f"make {what} again") from None
    if _sha256(np.ascontiguousarray(pcm)) != doc.get("sha256_audio"):
        raise UserError(f"{folder / AUDIO_FILE}: its sha256 differs from the manifest's (damaged); delete {folder} "
                        f"and make {what} again")
    return pcm, doc


def split_sets(pcm: np.ndarray, doc: dict) -> tuple[SoundSet, SoundSet]:
    """(train, test) SoundSets from clips whose manifest entries carry `label` and `split`."""
    classes = list(doc["classes"])
    clips = doc["clips"]
    labels = np.array([classes.index(c["label"]) for c in clips], dtype=np.int64)
    sets = []
    for split in ("train", "test"):
        index = np.array([i for i, c in enumerate(clips) if c["split"] == split], dtype=np.int64)
        waves = pcm[index].astype(np.float32) / np.float32(32767.0)
        sets.append(SoundSet(waves, labels[index], classes, [clips[i] for i in index]))
    return sets[0], sets[1]
