"""Styles of music: the sets read from music21's corpus beside the Bach chorales (German folk songs, Irish tunes,
Palestrina, and the four together), and the style classifier that scores whether a drawn piece is in the style it
was asked for."""
from __future__ import annotations

import io
import json
import re

import numpy as np
import pytest

from tetragen import api
from tetragen.api import load_data
from tetragen.config import build_run_config
from tetragen.modalities.music.corpus import GERMAN, IRISH, PALESTRINA, STYLES, _abc_tunes, read_set, styles_mix
from tetragen.modalities.music.data import claims, named_datasets
from tetragen.modalities.music.midi import midi_bytes
from tetragen.modalities.music.pieces import Collection, Piece
from tetragen.modalities.music.styles import KEYS, WINDOW, StyleRolls, roll, starts, style_scores
from tetragen.train.trainer import Trainer


@pytest.fixture(scope="module")
def mix():
    return styles_mix(limit=10)


def test_the_corpus_sets_are_named_datasets_that_are_music():
    names = [d.name for d in named_datasets()]
    for name in ("bach-chorales", "german-folk-songs", "irish-tunes", "palestrina", STYLES):
        assert name in names and claims(name)


def test_oneills_tunes_are_each_kept_once_though_his_files_overlap():
    tunes = _abc_tunes("oneills1850", numbered_across_files=True)
    numbers = [int(name.split("#")[1]) for name, _ in tunes]
    assert len(numbers) == len(set(numbers)) and 1800 <= len(numbers) <= 1850 and max(numbers) == 1850
    # the set keeps 350, evenly through his numbering (airs first, then the dances)
    kept = [int(name.split("#")[1]) for name, _ in IRISH.chosen()]
    assert len(kept) == 350 and kept[0] == 1 and kept[-1] == 1850 and kept == sorted(kept)


# notes sounding in a quarter-note frame, on average: melodies (a beat's eighths sound in one frame) or polyphony
@pytest.mark.parametrize("cs, notes", [(GERMAN, (1, 2)), (IRISH, (1, 3)), (PALESTRINA, (2, 6))])
def test_each_set_is_read_by_piece_prompted_by_its_style_key_and_metre(cs, notes):
    c = read_set(cs, limit=6)
    pieces = [p for s in c.splits.values() for p in s]
    assert len(pieces) + len(c.skipped) == 6 and c.styles == [cs.style]
    assert len({p.name for p in pieces}) == len(pieces)
    for p in pieces:
        assert re.fullmatch(rf"{cs.style} in [a-g][#b]? (major|minor) \d+/\d+", p.prompt), p.prompt  # key, metre
        assert len(p.frames) >= 8
        assert all(21 <= q <= 108 for f in p.frames for q in f)
        sounding = [len(f) for f in p.frames if f]
        assert notes[0] <= np.mean(sounding) <= notes[1], (p.name, np.mean(sounding))
        assert p.notes and all(n[2] >= 1 and n[3] == 80 for n in p.notes)  # no dynamics in these scores


def test_the_four_styles_together_keep_each_sets_own_split(mix):
    assert mix.name == STYLES and mix.styles == ["bach chorale", "german folk song", "irish tune", "palestrina"]
    for split in ("train", "valid", "test"):
        assert {p.style for p in mix.splits[split]} == set(mix.styles), split
    names = [p.name for s in mix.splits.values() for p in s]
    assert len(names) == len(set(names))


def test_style_rolls_are_piano_roll_windows_labelled_by_style(mix):
    data = StyleRolls(mix)
    assert data.image_shape == (KEYS, WINDOW, 1) and data.classes == mix.styles
    assert len(data.train.labels) == sum(len(starts(len(p.frames))) for p in mix.splits["train"])
    assert set(data.train.labels.tolist()) == {0, 1, 2, 3}
    first = mix.splits["train"][0]
    r = roll(first.frames)
    top = max(first.frames[0])
    assert r[KEYS - 1 - (top - 21), 0, 0] == 255 and r[:, 0, 0].sum() == 255 * len(first.frames[0])
    assert starts(10) == [0] and starts(48) == [0, 16] and len(starts(10000)) == 8


def _pieces(low: bool, n: int, seed: int, frames: int = 120) -> list[list[list[int]]]:
    """Random three-note chords in a low or a high octave: two styles a classifier tells apart by register."""
    rng = np.random.default_rng(seed)
    base = 36 if low else 72
    return [[sorted(set((base + rng.integers(0, 12, size=3)).tolist())) for _ in range(frames)] for _ in range(n)]


def test_the_style_classifier_reads_two_styles_apart_and_scores_each_piece_by_the_style_asked():
    def piece(frames, style):
        return Piece(frames, f"{style} in c major")
    splits = {s: [piece(f, "low") for f in _pieces(True, n, k)] + [piece(f, "high") for f in _pieces(False, n, k + 10)]
              for k, (s, n) in enumerate((("train", 30), ("valid", 3), ("test", 6)))}
    c = Collection("registers", splits, ["high", "low"])
    low, high = _pieces(True, 2, 99), _pieces(False, 2, 98)
    right = style_scores(c, low + high, ["low", "low", "high", "high"])
    assert right["test_style_acc"] == 1.0 and right["sample_style_acc"] == 1.0
    wrong = style_scores(c, low + high, ["high", "low", "low", "low"])
    assert wrong["sample_style_acc"] == 0.25
    assert style_scores(Collection("one", splits, ["low"]), low, ["low", "low"]) == {}


def test_eval_of_a_run_on_two_styles_reports_how_many_pieces_are_in_the_style_asked(tmp_path):
    root = tmp_path / "scores"
    for style, low in (("basses", True), ("trebles", False)):
        (root / style).mkdir(parents=True)
        for i, frames in enumerate(_pieces(low, 10, int(low))):
            (root / style / f"{i}.mid").write_bytes(midi_bytes([frames]))
    cfg = build_run_config("gpt", preset="tiny", overrides=["train.max_steps=2", "train.eval_every=0",
                                                              "data.val_fraction=0.2"])
    cfg.data.source = str(root)
    Trainer(cfg, load_data(cfg), tmp_path / "run", progress=False).fit()
    assert json.loads((tmp_path / "run" / "music.json").read_text())["styles"] == ["basses", "trebles"]
    metrics, lines = api.evaluate(tmp_path / "run", n=4)
    assert metrics["test_style_acc"] == 1.0 and 0.0 <= metrics["sample_style_acc"] <= 1.0
    assert any(line.startswith("style accuracy") for line in lines)


def test_a_captions_file_gives_a_folders_pieces_their_prompts_and_they_keep_their_styles(tmp_path, capsys):
    from tetragen.modalities.music.data import read_folder
    root = tmp_path / "scores"
    for style, low in (("basses", True), ("trebles", False)):
        (root / style).mkdir(parents=True)
        for i, frames in enumerate(_pieces(low, 3, int(low), frames=40)):
            (root / style / f"{i}.mid").write_bytes(midi_bytes([frames]))
    (root / "captions.jsonl").write_text("\n".join(json.dumps(row) for row in (
        {"file": "basses/0.mid", "text": "A slow, low drone"},
        {"file": "trebles/1.mid", "text": "bright bells in D major"},
        {"file": "trebles/9.mid", "text": "a piece that is not there"})) + "\n")

    def pieces(c):
        return {p.name: (p.prompt, p.style) for s in ("train", "test") for p in c.splits[s]}
    c = read_folder(root, 0.34)
    assert "line 3: no file 'trebles/9.mid'" in capsys.readouterr().err     # a bad line is skipped and said
    got = pieces(c)
    assert got["basses/0.mid"][0].startswith("a slow low drone in ") and got["basses/0.mid"][1] == "basses"
    assert got["trebles/1.mid"] == ("bright bells in d major", "trebles")       # a key it names is kept
    assert got["basses/1.mid"][0].startswith("basses in ") and c.styles == ["basses", "trebles"]
    assert pieces(read_folder(root, 0.34)) == got                                # read again from the cache
    data = StyleRolls(c)
    assert len(data.train.labels) + len(data.test.labels) == 6 * len(starts(40))  # captioned pieces keep styles


def test_a_midi_files_time_signature_is_its_prompts_metre(tmp_path):
    import mido
    from tetragen.modalities.music.data import read_folder
    root = tmp_path / "scores" / "waltzes"
    root.mkdir(parents=True)
    for i, frames in enumerate(_pieces(False, 2, 5, frames=24)):
        mid = mido.MidiFile(file=io.BytesIO(midi_bytes([frames])))
        mid.tracks[0].insert(0, mido.MetaMessage("time_signature", numerator=3, denominator=4, time=0))
        mid.save(str(root / f"{i}.mid"))
    c = read_folder(root.parent, 0.5)
    assert all(re.fullmatch(r"waltzes in [a-g][#b]? (major|minor) 3/4", p.prompt)
               for s in ("train", "test") for p in c.splits[s])
