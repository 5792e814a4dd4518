"""The sound issue's bad input, through the real entry points: `tetragen train` on folders of bad files, `tetragen
sample` with an output or a prompt it cannot serve, and /v1/audio/speech asked for what it cannot make. Each is
one line (or a 4xx JSON error), a non-zero exit, and nothing written or overwritten.

What `read_audio` itself says about each kind of file is pinned in test_sound_audio.py; here the same files reach
the CLI, where a folder's unusable files are skipped and counted, and a folder with nothing usable is refused."""
from __future__ import annotations

import struct

import httpx
import numpy as np
import pytest
import soundfile

import tetragen
from tetragen.modalities.sound.show import make_sound_folder
from tetragen.serve.app import Limits, create_app

from .conftest import run_cli
from .test_bad_input import snapshot
from .test_serve import LiveServer

KEY = "sk-sound-bad"
TRAIN = ["--preset", "tiny", "train.max_steps=1", "train.eval_every=0", "train.eval_samples=0"]


def _wav_header(rate: int, data_bytes: int, channels: int = 1, bits: int = 16) -> bytes:
    block = channels * bits // 8
    return (b"RIFF" + struct.pack("<I", 36 + data_bytes) + b"WAVEfmt " +
            struct.pack("<IHHIIHH", 16, 1, channels, rate, rate * block, block, bits) + b"data" +
            struct.pack("<I", data_bytes))


def _ten_hours(path):
    """A 10-hour 16-bit WAV by its header, as a sparse file: the header and a hole, nothing written on disk."""
    n = 16000 * 2 * 3600 * 10
    with open(path, "wb") as f:
        f.write(_wav_header(16000, n))
        f.truncate(44 + n)


BAD_FILES = {
    "notes.wav": (lambda p: p.write_text("a shopping list, not a sound\n" * 20), "undecodable"),
    "empty.wav": (lambda p: p.write_bytes(b""), "empty"),
    "night.wav": (_ten_hours, "too long"),
    "onehz.wav": (lambda p: p.write_bytes(_wav_header(1, 400) + bytes(400)), "sample rate"),
}


def error_line(r) -> str:
    """Non-zero exit, no traceback, and exactly one error line (notices before it are allowed)."""
    assert r.returncode != 0, f"expected a failure\nstdout: {r.stdout}\nstderr: {r.stderr}"
    assert "Traceback" not in r.stderr, r.stderr
    errors = [ln for ln in r.stderr.splitlines() if ln.startswith("tetragen: error:")]
    assert len(errors) == 1 and r.stderr.strip().splitlines()[-1] == errors[0], r.stderr
    return errors[0]


@pytest.mark.parametrize("name", list(BAD_FILES))
def test_a_folder_holding_only_a_bad_file_is_refused_in_one_line_naming_why(tmp_path, name):
    make, reason = BAD_FILES[name]
    (tmp_path / "clips" / "word").mkdir(parents=True)
    make(tmp_path / "clips" / "word" / name)
    out = tmp_path / "run"
    line = error_line(run_cli("train", "cgan", "--data", str(tmp_path / "clips"), "--out", str(out), *TRAIN))
    assert "none of the 1 sound files could be used" in line and f"({reason} 1)" in line, line
    assert not out.exists()


def test_bad_files_beside_good_ones_are_skipped_counted_and_listed_and_odd_formats_are_read(tmp_path):
    root = tmp_path / "clips"
    t = np.arange(16000) / 16000
    for word, hz in (("low", 220.0), ("high", 2200.0)):
        (root / word).mkdir(parents=True)
        tone = 0.4 * np.sin(2 * np.pi * hz * t)
        soundfile.write(str(root / word / "u8.wav"), tone, 16000, subtype="PCM_U8")                 # 8-bit
        soundfile.write(str(root / word / "f32.wav"), tone.astype(np.float32), 16000, subtype="FLOAT")  # float
        soundfile.write(str(root / word / "six.wav"), np.repeat(tone[:, None], 6, axis=1), 16000,
                        subtype="PCM_16")                                                           # 6 channels
    for name, (make, _) in BAD_FILES.items():
        make(root / "low" / name)
    r = run_cli("train", "cgan", "--data", str(root), "--out", str(tmp_path / "run"), *TRAIN)
    assert r.returncode == 0, r.stderr
    err = r.stderr.splitlines()
    for note in ("read 8-bit unsigned samples as 32-bit float (2 files)", "mixed 6 channels to mono (2 files)",
                 "skipped 4 of 10 files (empty 1, sample rate 1, too long 1, undecodable 1): low/empty.wav, "
                 "low/night.wav, low/notes.wav ..."):  # the first three named
        assert sum(note in ln for ln in err) == 1, (note, r.stderr)
    assert "Traceback" not in r.stderr


def test_a_folder_with_no_audio_is_refused_in_one_line(tmp_path):
    (tmp_path / "clips" / "word").mkdir(parents=True)
    (tmp_path / "clips" / "word" / "readme.txt").write_text("no sound here")
    line = error_line(run_cli("train", "cgan", "--data", str(tmp_path / "clips"), "--out", str(tmp_path / "run"),
                              *TRAIN))
    assert "no files of a kind these families learn" in line and "sound" in line, line
    assert not (tmp_path / "run").exists()


@pytest.fixture(scope="module")
def sound_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("sound-bad")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("TETRAGEN_CACHE", str(root / "cache"))
        mp.setenv("TETRAGEN_NO_PROGRESS", "1")
        folder = make_sound_folder(root / "clips", n_per_class=4)
        r = run_cli("train", "cgan", "--data", str(folder), "--out", str(root / "cgan"), *TRAIN)
        assert r.returncode == 0, r.stderr
        yield root / "cgan"


@pytest.mark.parametrize("args, needle", [
    (["--out", "{tmp}/x.mp3"], "unknown file type '.mp3'"),
    (["--out", "{tmp}/x.ogg"], "unknown file type '.ogg'"),
    (["--out", "{tmp}/old.txt"], "unknown file type '.txt'"),
    (["--prompt", "play a banjo", "--out", "{tmp}/y.wav"], "names none of them; name one of: clicks, hum, whistle"),
    (["--out", "{tmp}/keep.wav"], "already exists"),
])
def test_sample_refuses_an_unknown_suffix_an_unknown_word_and_an_existing_file(sound_run, tmp_path, args, needle):
    (tmp_path / "old.txt").write_text("notes to keep")
    (tmp_path / "keep.wav").write_bytes(b"RIFF not to be touched")
    before = snapshot(tmp_path)
    r = run_cli("sample", str(sound_run), "--n", "1", *[a.format(tmp=tmp_path) for a in args])
    assert needle in error_line(r)
    assert snapshot(tmp_path) == before  # nothing written, nothing overwritten


@pytest.fixture(scope="module")
def live(sound_run):
    server = LiveServer(create_app({"words": tetragen.load(sound_run)}, api_key=KEY,
                                   limits=Limits(max_wait_ms=20))).wait_ready()
    yield server
    server.close()


@pytest.mark.parametrize("body, status, needle", [
    ({"response_format": "mp3"}, 400, "use one of: wav, pcm"),
    ({"response_format": "flac"}, 400, "use one of: wav, pcm"),
    ({"speed": 0.1}, 422, ""),
    ({"speed": 4.5}, 422, ""),
    ({"speed": -1}, 422, ""),
    ({"speed": 2.0}, 400, "only 1.0"),
    ({"input": "play a banjo"}, 400, "name one of: clicks, hum, whistle"),
    ({"input": ""}, 400, ""),
])
def test_speech_requests_it_cannot_serve_are_4xx_json_errors(live, body, status, needle):
    r = httpx.post(f"{live.url}/v1/audio/speech", json={"model": "words", "input": "hum", "voice": "alloy", **body},
                   headers={"Authorization": f"Bearer {KEY}"}, timeout=60)
    assert 400 <= r.status_code < 500 and "Traceback" not in r.text, r.text
    if status != 422:  # out of OpenAI's 0.25..4 range: refused by validation, whatever its exact status
        assert r.status_code == status, r.text
    err = r.json()["error"]
    assert needle in err["message"] and "\n" not in err["message"]
