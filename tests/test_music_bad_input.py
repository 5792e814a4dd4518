"""Music's bad input: files that are not MIDI, MIDI with no notes, with 16 tracks, with tempo changes, ten hours
long, with pitches off the piano, JSON of the wrong shape, a prompt longer than the context, fluidsynth or the
SoundFont missing. Each is one line (or a notice and a score), a non-zero exit where it is refused, and nothing
written."""
from __future__ import annotations

import importlib
import json

import mido
import pytest

import tetragen
from tetragen.api import load_data
from tetragen.config import build_run_config
from tetragen.errors import UserError
from tetragen.modalities.music.data import read_split_json
from tetragen.modalities.music.midi import MAX_FRAMES, midi_bytes, read_midi
from tetragen.modalities.music.show import example, render_wav
from tetragen.train.trainer import Trainer

from .conftest import run_cli

music_show = importlib.import_module("tetragen.modalities.music.show")


def _midi(tracks: list[list], ticks: int = 480) -> bytes:
    import io
    f = mido.MidiFile(ticks_per_beat=ticks)
    for messages in tracks:
        f.tracks.append(mido.MidiTrack(messages))
    buf = io.BytesIO()
    f.save(file=buf)
    return buf.getvalue()


def _note(pitch, start, length, channel=0):
    return [mido.Message("note_on", note=pitch, velocity=80, channel=channel, time=start),
            mido.Message("note_off", note=pitch, velocity=0, channel=channel, time=length)]


@pytest.fixture(scope="module")
def music_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("music-bad")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("TETRAGEN_CACHE", str(root / "cache"))
        mp.setenv("TETRAGEN_NO_PROGRESS", "1")
        cfg = build_run_config("gpt", preset="tiny", overrides=["train.max_steps=2", "train.eval_every=0"])
        cfg.data.source = example(root / "data")
        Trainer(cfg, load_data(cfg), root / "gpt", progress=False).fit()
        yield root


def test_a_file_that_is_not_midi_is_one_line(tmp_path):
    bad = tmp_path / "song.mid"
    bad.write_bytes(b"this is not a MIDI file at all")
    with pytest.raises(UserError, match="song.mid: not a readable MIDI file"):
        read_midi(bad)


def test_a_midi_with_no_notes_is_refused():
    data = _midi([[mido.MetaMessage("set_tempo", tempo=500000, time=0)]])
    with pytest.raises(UserError, match="no notes"):
        read_midi(data, "empty.mid")


def test_sixteen_tracks_are_merged_into_one_score_and_drums_left_out():
    tracks = [_note(48 + k, 0, 480, channel=k) for k in range(16)]
    frames, notices = read_midi(_midi(tracks), "band.mid")
    assert frames == [sorted(48 + k for k in range(16) if k != 9)]
    assert any("16 tracks merged" in n for n in notices) and any("drum" in n for n in notices)


def test_tempo_changes_are_fine_and_noted():
    track = [mido.MetaMessage("set_tempo", tempo=500000, time=0), *_note(60, 0, 480),
             mido.MetaMessage("set_tempo", tempo=250000, time=0), *_note(62, 0, 960)]
    frames, notices = read_midi(_midi([track]), "rubato.mid")
    assert frames == [[60], [62], [62]] and any("2 tempo changes" in n for n in notices)


def test_a_ten_hour_midi_is_cut_to_the_frame_limit_with_a_notice():
    ten_hours = 10 * 3600 * 2 * 480  # quarter notes at 120 bpm, in ticks
    track = [*_note(60, 0, 480), *_note(64, ten_hours, 480)]
    frames, notices = read_midi(_midi([track]), "long.mid")
    assert len(frames) == MAX_FRAMES and frames[0] == [60]
    assert any(f"only the first {MAX_FRAMES}" in n for n in notices)


def test_pitches_off_the_piano_are_dropped_and_counted(tmp_path):
    chord = [mido.Message("note_on", note=p, velocity=80, time=0) for p in (10, 60, 120)]
    chord += [mido.Message("note_off", note=p, velocity=0, time=480 if p == 10 else 0) for p in (10, 60, 120)]
    frames, notices = read_midi(_midi([chord]), "x.mid")
    assert frames == [[60]] and any("2 notes outside" in n for n in notices)
    path = tmp_path / "set.json"
    path.write_text(json.dumps({"train": [[[60, 127], [62]], [[60]]], "test": [[[5, 64]]]}))
    c = read_split_json(path, "")
    assert c.splits["test"][0].frames == [[64]]


@pytest.mark.parametrize("doc, message", [
    ({"train": [[[60]]]}, "'train' and 'test' lists"),
    ({"train": [[[60]]], "test": [[["C4"]]]}, r"test\[0\]\[0\]: a frame must be a list of MIDI pitches"),
    ({"train": [[]], "test": [[[60]]]}, r"train\[0\]: a piece must be a non-empty list"),
])
def test_json_of_the_wrong_shape_names_where(tmp_path, doc, message):
    path = tmp_path / "set.json"
    path.write_text(json.dumps(doc))
    with pytest.raises(UserError, match=message):
        read_split_json(path, "")


def test_training_on_a_folder_with_a_broken_midi_is_one_line_and_writes_nothing(tmp_path):
    folder = tmp_path / "scores" / "reels"
    folder.mkdir(parents=True)
    (folder / "good.mid").write_bytes(midi_bytes([[[60, 64], [62, 65]]]))
    (folder / "broken.mid").write_bytes(b"MThd garbage")
    r = run_cli("train", "gpt", "--preset", "tiny", "--data", str(tmp_path / "scores"), "--out", str(tmp_path / "run"))
    assert r.returncode != 0 and "broken.mid: not a readable MIDI file" in r.stderr
    assert "Traceback" not in r.stderr and not (tmp_path / "run").exists()


def test_a_prompt_longer_than_the_context_is_cut_with_a_warning(music_run):
    pipe = tetragen.load(music_run / "gpt")
    said = []
    score = pipe.sample(1, seed=0, prompt="toy chorale " * 40, max_frames=4, warn=said.append)
    assert len(score.pieces[0]) <= 4 and any("cut to its first" in s for s in said)


def test_fluidsynth_missing_is_one_line_saying_how_to_install(monkeypatch, music_run, tmp_path):
    monkeypatch.setattr("shutil.which", lambda name: None)
    with pytest.raises(UserError, match="fluidsynth .*not installed: `apt-get install fluidsynth fluid-soundfont-gm`"):
        render_wav(midi_bytes([[[60]]]))
    monkeypatch.setenv("PATH", str(tmp_path))  # the CLI too: no traceback, nothing written
    r = run_cli("sample", str(music_run / "gpt"), "--n", "1", "--out", str(tmp_path / "x.wav"))
    assert r.returncode != 0 and "fluidsynth" in r.stderr and not (tmp_path / "x.wav").exists()


def test_soundfont_missing_is_one_line(monkeypatch, tmp_path):
    monkeypatch.setattr(music_show, "SOUNDFONTS", (str(tmp_path / "none.sf2"),))
    monkeypatch.delenv("TETRAGEN_SOUNDFONT", raising=False)
    with pytest.raises(UserError, match="a General MIDI SoundFont is not installed"):
        render_wav(midi_bytes([[[60]]]))
    monkeypatch.setenv("TETRAGEN_SOUNDFONT", str(tmp_path / "gone.sf2"))
    with pytest.raises(UserError, match="TETRAGEN_SOUNDFONT=.*gone.sf2: no such file"):
        render_wav(midi_bytes([[[60]]]))


def test_rendering_works_where_fluidsynth_and_the_soundfont_are_installed():
    # `make test` installs them (the Makefile's music target): this fails, saying how, where they are missing
    data = render_wav(midi_bytes([[[60, 64, 67], [60, 64, 67]]]))
    assert data[:4] == b"RIFF" and len(data) > 16000  # more than half a second of 16-bit mono


def test_an_unknown_output_suffix_or_style_is_refused_before_any_work(music_run, tmp_path):
    r = run_cli("sample", str(music_run / "gpt"), "--n", "1", "--out", str(tmp_path / "x.mp3"))
    assert r.returncode != 0 and "unknown file type" in r.stderr
    r = run_cli("sample", str(music_run / "gpt"), "--n", "1", "--class", "jazz", "--out", str(tmp_path / "y.mid"))
    assert r.returncode != 0 and "not a style" in r.stderr and not (tmp_path / "y.mid").exists()


def test_a_primer_longer_than_the_context_keeps_its_last_frames_with_a_warning(music_run):
    pipe = tetragen.load(music_run / "gpt")
    long = [[48 + (k % 12), 60 + (k % 5)] for k in range(200)]  # 600 tokens; the tiny model reads 32
    said = []
    score = pipe.sample(1, seed=0, prompt="toy chorale", primer=long, max_frames=3, warn=said.append)
    [line] = [s for s in said if "only its last" in s]
    kept = int(line.split("only its last ")[1].split()[0])
    assert 0 < kept < 200 and score.pieces[0][:kept] == long[-kept:]  # its last frames, then the new ones
    with pytest.raises(UserError, match="primer: not a readable MIDI file"):
        pipe.sample(1, seed=0, primer=b"not midi", max_frames=2)
