"""Sound: one-second clips at 16 kHz, made from a prompt ("seven", "a snare hit") by any family that learns grids.

Its datasets are `spoken-words` (synthesised here with Debian's espeak-ng; the test voices are never heard in
training), `drums` (recorded one-shots from Debian's hydrogen-drumkits) and a user's folder of sound files (class
sub-folders, captions.jsonl). Models learn a clip as its 64x64 log-mel picture (audio.py) and Griffin-Lim turns
pictures back into sound. The evaluator listens: it reads waveforms through its own log-mel front end, so samples
are scored after the vocoder (data.py). Files: .wav (every clip, one after another), a folder (one .wav per
clip), .png (the spectrograms), .npz (waves, sample rate, labels). Route: OpenAI's `/v1/audio/speech`.
"""
from pathlib import Path

from ...registry import GridForm, Modality, register_modality
from .data import NAMED, claims, fit_sound_shape, read_run_sound
from .pipeline import adapt
from .show import (card, commands, example, html, show, write_folder_output, write_npz_output, write_png_output,
                   write_wav_output)


def add_routes(app) -> None:
    from .serve import add_routes  # the server's own imports (FastAPI) only when a server starts
    add_routes(app)


register_modality(Modality(
    name="sound",
    description="sound: a folder of sound files in (class sub-folders, captions), 1-s clips at 16 kHz out",
    headline=("fid",),
    columns={"FD (audio)": ("fid", "{:.2f}"), "KID": ("kid", "{:.4f}"), "word/class acc": ("class_acc", "{:.3f}"),
             "NLL bound (nats/clip)": ("neg_elbo", "{:.1f}")},
    note="Fréchet distance (FD) and KID in tetragen's audio evaluator, which hears the samples after Griffin-Lim "
         "(lower is better; the Griffin-Lim round trip and noise-added references are under each family)",
    datasets=lambda: list(NAMED),
    example=example,
    writers={".wav": write_wav_output, "/": write_folder_output, ".png": write_png_output, ".npz": write_npz_output},
    show=show,
    html=html,
    commands=commands,
    routes={"prompt": ("/v1/audio/speech",), "sample": ("/v1/audio/speech",)},
    add_routes=add_routes,
    card=card,
    playground=str(Path(__file__).with_name("playground.js")),
    data_help="sound=path/to/folder",
    grids=GridForm(claims=claims, read=read_run_sound, adapt=adapt, shape=fit_sound_shape),
))
