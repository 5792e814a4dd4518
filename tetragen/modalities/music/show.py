"""The music modality's files (.mid, .wav, .png piano roll, .json frames, a folder of .mid), its tiny example set,
what a job asks a trained run on music and how the report plays it.

WAV is rendered from the MIDI by Debian's `fluidsynth` with a General MIDI SoundFont (`fluid-soundfont-gm`; any
.sf2 named by TETRAGEN_SOUNDFONT); where either is missing, asking for a .wav says in one line how to install them.
"""
from __future__ import annotations

import base64
import html as _html
import io
import json
import os
import shlex
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import numpy as np

from ...errors import UserError
from ...files import replace_atomically, write_text
from .midi import midi_bytes, midi_bytes_notes
from .tokens import metre_word, words_of

SEED = 1                     # the seed of every shown piece
SHOWN_PER_PROMPT = 2
SHOWN_FRAMES = 32            # frames of each shown piece at most (8 bars of 4/4)
SAMPLE_RATE = 16000          # of rendered WAV files
SOUNDFONTS = ("/usr/share/sounds/sf2/FluidR3_GM.sf2", "/usr/share/sounds/sf2/default-GM.sf2",
              "/usr/share/soundfonts/FluidR3_GM.sf2", "/usr/share/soundfonts/default.sf2",
              "/usr/share/sounds/sf2/TimGM6mb.sf2")
INSTALL = "apt-get install fluidsynth fluid-soundfont-gm"


# ----------------------------------------------------------------------------------------------------------------
# writers: write(path, score, **_) where score is a pipeline's `Score`

def score_midi(score, i: int | None = None) -> bytes:
    """A score's pieces (or its piece i) as MIDI: notes with their durations where it has them (events), else its
    frames' held notes."""
    if score.notes is not None:
        metres = [metre_word(words_of(p)) for p in score.prompts]
        return midi_bytes_notes(score.notes if i is None else [score.notes[i]],
                                metres=metres if i is None else metres[i:i + 1])
    return midi_bytes(score.pieces if i is None else [score.pieces[i]])


def write_mid_output(path: Path, score, **_) -> None:
    """Every piece in one MIDI file, one after another with a silence between them."""
    data = score_midi(score)
    replace_atomically(Path(path), lambda tmp: Path(tmp).write_bytes(data))


def write_folder_output(path: Path, score, **_) -> None:
    """One MIDI file per piece, 000.mid, 001.mid, ... in the folder `path` (made; files there are refused)."""
    path = Path(path)
    names = [path / f"{i:03d}.mid" for i in range(len(score.pieces))]
    taken = [p for p in names if p.exists()]
    if taken:
        raise UserError(f"--out {path}: {taken[0].name} is already there; choose an empty folder")
    path.mkdir(exist_ok=True)
    for i, p in enumerate(names):
        p.write_bytes(score_midi(score, i))


def write_json_output(path: Path, score, **_) -> None:
    """The pieces as frames (lists of MIDI pitches), with the prompt and the token text of each (and its notes with
    their durations where it has them)."""
    doc = {"pieces": [{"prompt": p, "frames": f, "tokens": t}
                      for p, f, t in zip(score.prompts, score.pieces, score.text)]}
    if score.notes is not None:  # with real durations: (pitch, onset, duration in sixteenths, velocity)
        for piece, notes in zip(doc["pieces"], score.notes):
            piece["notes"] = [list(n) for n in notes]
    write_text(Path(path), json.dumps(doc))


def piano_roll(pieces, *, px_frame: int = 6, px_pitch: int = 3, gap: int = 8) -> np.ndarray:
    """uint8 RGB (H, W, 3): each piece a piano roll (time to the right, pitch up), one under another, over the
    pitch range they use (with a margin), a faint line at every C."""
    notes = [p for frames in pieces for f in frames for p in f]
    low, high = (min(notes) - 2, max(notes) + 2) if notes else (57, 72)
    rows = high - low + 1
    width = max([len(f) for f in pieces] + [1]) * px_frame
    blocks = []
    for frames in pieces:
        img = np.full((rows * px_pitch, width, 3), 255, np.uint8)
        for pitch in range(low, high + 1):
            if pitch % 12 == 0:
                y = (high - pitch) * px_pitch + px_pitch // 2
                img[y, :] = (225, 225, 235)
        for k, frame in enumerate(frames):
            for pitch in frame:
                y = (high - pitch) * px_pitch
                held = k > 0 and pitch in frames[k - 1]
                x0 = k * px_frame + (0 if held else 1)
                img[y:y + px_pitch - 1 or 1, x0:(k + 1) * px_frame] = (40, 70, 160)
        blocks.append(img)
        blocks.append(np.full((gap, width, 3), 255, np.uint8))
    return np.concatenate(blocks[:-1]) if blocks else np.full((rows, width, 3), 255, np.uint8)


def write_png_output(path: Path, score, **_) -> None:
    """The pieces' piano rolls, one under another."""
    from PIL import Image
    im = Image.fromarray(piano_roll(score.pieces))
    replace_atomically(Path(path), lambda tmp: im.save(tmp, format="PNG"))


def renderer() -> tuple[str, str]:
    """(fluidsynth, SoundFont) paths, or a one-line UserError saying how to get them."""
    exe = shutil.which("fluidsynth")
    named = os.environ.get("TETRAGEN_SOUNDFONT", "")
    if named and not Path(named).is_file():
        raise UserError(f"TETRAGEN_SOUNDFONT={named}: no such file; name a General MIDI .sf2 SoundFont")
    font = named or next((f for f in SOUNDFONTS if Path(f).is_file()), "")
    missing = [what for what, ok in (("fluidsynth", exe), ("a General MIDI SoundFont", font)) if not ok]
    if missing:
        raise UserError(f"a .wav is rendered from MIDI by fluidsynth with a SoundFont, and {' and '.join(missing)} "
                        f"{'is' if len(missing) == 1 else 'are'} not installed: `{INSTALL}` (or set "
                        f"TETRAGEN_SOUNDFONT to an .sf2 file), or write .mid instead")
    return exe, font


def render_wav(midi: bytes, sample_rate: int = SAMPLE_RATE) -> bytes:
    """MIDI bytes -> WAV bytes (16-bit mono at `sample_rate`), rendered by fluidsynth."""
    exe, font = renderer()
    with tempfile.TemporaryDirectory() as tmp:
        src, dst = Path(tmp) / "in.mid", Path(tmp) / "out.wav"
        src.write_bytes(midi)
        # dynamic sample loading reads only the SoundFont's samples the piece plays: the same audio, without reading
        # the whole file
        r = subprocess.run([exe, "-ni", "-q", "-o", "synth.dynamic-sample-loading=1", "-F", str(dst),
                            "-r", str(sample_rate), "-g", "0.6", font, str(src)],
                           stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=600)
        if r.returncode != 0 or not dst.is_file() or dst.stat().st_size <= 44:
            why = (r.stderr.strip().splitlines() or [f"exit status {r.returncode}"])[-1][:120]
            raise UserError(f"fluidsynth could not render the MIDI ({why})")
        return _mono(dst)


def _mono(path: Path) -> bytes:
    """fluidsynth's stereo file as 16-bit mono (half the bytes to store and inline; the piano is in the middle)."""
    import soundfile
    wave, rate = soundfile.read(str(path), dtype="float32", always_2d=True)
    buf = io.BytesIO()
    soundfile.write(buf, wave.mean(axis=1), rate, format="WAV", subtype="PCM_16")
    return buf.getvalue()


def write_wav_output(path: Path, score, **_) -> None:
    """Every piece rendered to sound, one after another (fluidsynth, General MIDI piano)."""
    data = render_wav(score_midi(score))
    replace_atomically(Path(path), lambda tmp: Path(tmp).write_bytes(data))


WRITERS = {".mid": write_mid_output, ".midi": write_mid_output, ".wav": write_wav_output, ".png": write_png_output,
           ".json": write_json_output, "/": write_folder_output}


# ----------------------------------------------------------------------------------------------------------------
# a tiny example set for tests and docs

def example_pieces(n: int, seed: int, frames: int = 16) -> list[list[list[int]]]:
    """Four-voice cadences in random major keys: I IV V I ..., each chord held for one or two frames."""
    rng = np.random.default_rng(seed)
    chords = ([0, 4, 7], [5, 9, 12], [7, 11, 14], [0, 4, 7])
    out = []
    for _ in range(n):
        tonic = 48 + int(rng.integers(0, 12))
        piece = []
        while len(piece) < frames:
            for c in chords:
                voicing = [tonic - 12 + c[0]] + [tonic + x for x in c]
                piece += [sorted(voicing)] * int(rng.integers(1, 3))
        out.append(piece[:frames])
    return out


def example(folder: Path) -> str:
    """A JSON file of the JSB shape with 12/3/3 short pieces of one style ("toy chorale")."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    doc = {"style": "toy chorale", "train": example_pieces(12, 0), "valid": example_pieces(3, 1),
           "test": example_pieces(3, 2)}
    path = folder / "chorales.json"
    path.write_text(json.dumps(doc), encoding="utf-8")
    return str(path)


# ----------------------------------------------------------------------------------------------------------------
# what a job asks, and the report's block

def show(pipe, prompts: tuple[str, ...], folder: Path, data: str) -> tuple[list[dict], dict]:
    """For each prompt (by default each style) a few pieces, kept as MIDI, a piano roll and (where fluidsynth is)
    a WAV; speed in notes written per second."""
    folder.mkdir(parents=True, exist_ok=True)
    if "prompt" not in pipe.capabilities:
        return [], {}
    asked = list(prompts) or list(pipe.classes)[:4] or [""]
    items, notes, spent = [], 0, 0.0
    for k, prompt in enumerate(asked):
        t0 = time.perf_counter()
        score = pipe.sample(SHOWN_PER_PROMPT, seed=SEED, prompt=prompt, max_frames=SHOWN_FRAMES,
                            warn=lambda s: None)
        spent += time.perf_counter() - t0
        notes += sum(len(f) for frames in score.pieces for f in frames)
        mid, png = folder / f"prompt_{k}.mid", folder / f"prompt_{k}.png"
        write_mid_output(mid, score)
        write_png_output(png, score)
        rel = folder.parent.parent
        item = {"title": f"“{prompt}”" if prompt else "pieces", "prompt": prompt, "midi": str(mid.relative_to(rel)),
                "picture": str(png.relative_to(rel)), "prompts": score.prompts, "wav": ""}
        try:
            wav = folder / f"prompt_{k}.wav"
            write_wav_output(wav, score)
            item["wav"] = str(wav.relative_to(rel))
        except UserError as e:
            item["no_wav"] = str(e)
        items.append(item)
    return items, ({"unit": "notes/s", "value": notes / spent} if spent else {})


def html(item: dict, out: Path) -> str:
    """A player (the WAV inlined, where it was rendered), the piano rolls and the MIDI as a download link."""
    out = Path(out)
    picture = base64.b64encode((out / item["picture"]).read_bytes()).decode()
    midi = base64.b64encode((out / item["midi"]).read_bytes()).decode()
    title = _html.escape(item["title"], quote=True)
    player = (f"<audio controls preload='none' src='data:audio/wav;base64,"
              f"{base64.b64encode((out / item['wav']).read_bytes()).decode()}'></audio><br>" if item.get("wav")
              else f"<p class='muted'>{_html.escape(item.get('no_wav', 'no audio'))}</p>")
    written = "; ".join(_html.escape(p) for p in item.get("prompts", []))
    return (f"<figure>{player}<img class='grid' alt='piano rolls of {title}' src='data:image/png;base64,{picture}'>"
            f"<figcaption>{title}: {SHOWN_PER_PROMPT} pieces, seed {SEED} (prompts as completed: {written}); "
            f"<a download='{Path(item['midi']).name}' href='data:audio/midi;base64,{midi}'>MIDI</a>"
            f"</figcaption></figure>")


def card(pipe) -> dict:
    """A music run says the styles a prompt can name and its context; a masked LM's that it harmonises."""
    from .pipeline import MusicPipeline
    if isinstance(pipe, MusicPipeline):
        return {"styles": list(pipe.classes), "context": int(pipe.context), "formats": ["mid", "wav", "json"]}
    return {"harmonises": True, "context": int(pipe.config.model.block_size)}


def commands(run: str, prompt: str, capabilities) -> list[str]:
    q = shlex.quote
    if "prompt" not in capabilities:
        return []
    name = (prompt or "pieces").replace(" ", "_")
    asked = f" --prompt {q(prompt)}" if prompt else ""
    return [f"tetragen sample {q(run)}{asked} --n 2 --seed {SEED} --out {q(name)}.mid",
            f"tetragen sample {q(run)}{asked} --n 2 --seed {SEED} --out {q(name)}.wav"]
