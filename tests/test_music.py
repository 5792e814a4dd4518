"""Music through the families that learn token sequences: the frame tokenization (its round trips through tokens and
MIDI on the JSB Chorales training pieces), per-piece scoring that is the piano roll's NLL per frame, a gpt trained
on a JSB-shaped file, sampled from Python and the CLI into MIDI / WAV / PNG / JSON, and evaluated."""
from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import tetragen
from tetragen import api
from tetragen.api import load_data
from tetragen.config import build_run_config
from tetragen.errors import UserError
from tetragen.modalities.music.data import (claims, read_split_json, score_pieces, scored_positions,
                                            windows)
from tetragen.modalities.music.midi import midi_bytes, read_midi
from tetragen.modalities.music.show import example, example_pieces
from tetragen.modalities.music.tokens import MusicTokenizer, estimate_key, read_tokenizer, words_of
from tetragen.registry import get_family, get_modality
from tetragen.train.trainer import Trainer

from .conftest import SHARED_DATA, run_cli

JSB = SHARED_DATA / "jsb-chorales-quarter.json"


def tiny_run(family: str, source: str, out, *overrides: str):
    """A tiny `family` run on `source` in `out` (a few steps, no evaluation): what the tests load and prompt."""
    cfg = build_run_config(family, preset="tiny", overrides=["train.eval_every=0", *overrides])
    cfg.data.source = source
    Trainer(cfg, load_data(cfg), out, progress=False).fit()
    return out


@pytest.fixture(scope="module")
def jsb():
    return read_split_json(JSB, "bach chorale")


@pytest.fixture(scope="module")
def music_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("music")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("TETRAGEN_CACHE", str(root / "cache"))
        mp.setenv("TETRAGEN_NO_PROGRESS", "1")
        source = example(root / "data")
        tiny_run("gpt", source, root / "gpt", "train.max_steps=30")
        yield root, source


def test_every_family_that_learns_tokens_opts_in_and_music_has_a_token_form():
    assert get_family("gpt").tokens and get_family("bert").tokens
    assert get_modality("music").tokens is not None and get_modality("text").tokens is None


def test_frame_tokens_round_trip_every_jsb_training_piece(jsb):
    tok = MusicTokenizer(["bach", "chorale"])
    for piece in jsb.splits["train"]:
        ids = tok.encode_piece(piece.frames, piece.prompt)
        prompt, frames = tok.decode_piece(ids)
        assert frames == piece.frames and prompt == piece.prompt
        assert tok.encode(tok.decode(ids)) == ids  # the token text is a faithful spelling


def test_tokens_to_midi_to_tokens_is_the_identity_on_the_jsb_training_pieces(jsb):
    tok = MusicTokenizer()
    for piece in jsb.splits["train"]:
        frames, notices = read_midi(midi_bytes([piece.frames]), "piece")
        assert tok.frame_ids(frames) == tok.frame_ids(piece.frames), piece.name
        assert notices == []


def test_the_standard_split_has_its_published_sizes_and_prompts_name_a_key(jsb):
    assert [len(jsb.splits[s]) for s in ("train", "valid", "test")] == [229, 76, 77]
    assert all(p.prompt.startswith("bach chorale in ") for p in jsb.splits["test"])
    # a C major scale's notes and an A harmonic minor line are found in their keys
    assert estimate_key([[60], [62], [64], [65], [67], [69], [71], [72], [67], [60]]) == (0, "major")
    assert estimate_key([[57], [59], [60], [62], [64], [65], [68], [69], [64], [57]]) == (9, "minor")


def test_unknown_prompt_words_still_tokenise():
    tok = MusicTokenizer(["bach", "chorale"])
    ids = tok.prompt_ids("Bach chorale in G minor, for banjo")
    assert ids[0] == tok.bos and ids[-1] == tok.music
    words = [tok.token_str(i) for i in ids[1:-1]]
    assert words == ["bach", "chorale", "in", "g", "minor", "for", "<unk>"] or words[:5] == ["bach", "chorale", "in",
                                                                                            "g", "minor"]
    assert tok.unk in ids and tok.encode("Bb major") == [tok.index["bb"], tok.index["major"]]


def test_sliding_windows_score_every_target_once_with_half_a_window_before_it():
    for n, block in [(5, 8), (8, 8), (9, 8), (40, 8), (33, 6), (100, 16)]:
        seen = []
        for start, end, first in windows(n, block):
            assert end - start <= block and first >= start
            seen += list(range(first, end))
            if start > 0:
                assert first - start >= block // 2 - 1
        assert seen == list(range(n))


class _Bigram(torch.nn.Module):
    """A causal model whose next-token logits depend on the current token alone: its exact likelihood of a piece is
    known whatever the window."""

    def __init__(self, vocab: int):
        super().__init__()
        self.table = torch.nn.Parameter(torch.randn(vocab, vocab, generator=torch.Generator().manual_seed(0)))

    def forward(self, x):
        return self.table[x], None


def test_scoring_is_the_likelihood_of_prompt_and_frames_whatever_the_window(jsb):
    tok = MusicTokenizer(["bach", "chorale"])
    pieces = [tok.encode_piece(p.frames, p.prompt) for p in jsb.splits["test"][:6]]
    model = _Bigram(tok.vocab_size)
    exact = 0.0
    frames = 0
    for ids in pieces:
        mask = scored_positions(ids, tok)
        logp = F.log_softmax(model.table[torch.tensor(ids[:-1])], -1)
        nll = -logp[torch.arange(len(ids) - 1), torch.tensor(ids[1:])]
        exact += float(nll.detach()[torch.from_numpy(mask[1:])].sum())
        frames += sum(1 for i, m in zip(ids, mask) if m and i == tok.frame)
    for block in (16, 64, 4096):  # windows slide over the longer pieces at the first two
        s = score_pieces(model, pieces, tok, block, "cpu")
        assert math.isclose(s["nats"], exact, rel_tol=1e-5) and s["frames"] == frames
    # everything but <bos> and the piece's <end> is scored
    assert s["tokens"] == sum(int(scored_positions(ids, tok).sum()) for ids in pieces)


def test_claims_a_jsb_shaped_json_and_a_folder_of_midi_but_not_text(tmp_path):
    (tmp_path / "a.txt").write_text("hello")
    (tmp_path / "scores" / "reels").mkdir(parents=True)
    (tmp_path / "scores" / "reels" / "one.mid").write_bytes(midi_bytes([[[60, 64], [62]]]))
    assert claims(str(JSB)) and claims("jsb-chorales") and claims(str(tmp_path / "scores"))
    assert not claims(str(tmp_path / "a.txt")) and not claims("tinyshakespeare")


def test_a_gpt_trained_on_music_keeps_its_kind_tokenizer_and_styles(music_run):
    root, _ = music_run
    cfg = json.loads((root / "gpt" / "config.json").read_text())
    assert cfg["data"]["kind"] == "music"
    tok = read_tokenizer(root / "gpt" / "tokenizer.json")
    assert "toy" in tok.words and cfg["model"]["vocab_size"] == tok.vocab_size
    assert json.loads((root / "gpt" / "music.json").read_text())["styles"] == ["toy chorale"]
    lines = [json.loads(x) for x in (root / "gpt" / "metrics.jsonl").read_text().splitlines()]
    assert any("val_nll_frame" in r for r in lines)


def test_python_sample_draws_valid_scores_one_seed_per_piece(music_run):
    root, _ = music_run
    pipe = tetragen.load(root / "gpt")
    assert {"sample", "prompt"} <= pipe.capabilities and pipe.classes == ["toy chorale"]
    a = pipe.sample(3, seed=7, prompt="toy chorale in d major", max_frames=12)
    b = pipe.sample(seeds=[8], prompt="toy chorale in d major", max_frames=12)
    assert a.pieces[1] == b.pieces[0] and a.tokens[1] == b.tokens[0]  # a piece alone is the same as in a batch
    for frames, prompt in zip(a.pieces, a.prompts):
        assert 1 <= len(frames) <= 12 and prompt.startswith("toy chorale in d major")
        assert all(f == sorted(set(f)) and all(21 <= p <= 108 for p in f) for f in frames)


def test_eval_reports_nll_per_frame_token_and_note_and_statistics(music_run):
    root, _ = music_run
    metrics, lines = api.evaluate(root / "gpt", n=4)
    assert metrics["test_nll_frame"] > metrics["test_nll_token"] > 0
    assert math.isclose(metrics["test_nll_frame"] * metrics["test_frames"],
                        metrics["test_nll_token"] * metrics["test_tokens"], rel_tol=1e-6)
    for key in ("sample_pc_distance", "train_pc_distance", "sample_in_key", "sample_notes_per_frame"):
        assert np.isfinite(metrics[key])
    assert metrics["test_pc_distance"] == 0.0 and any("test_nll_frame" in ln for ln in lines)


@pytest.mark.parametrize("suffix", [".mid", ".json", ".png", ".wav"])
def test_cli_sample_writes_each_kind_of_file(music_run, tmp_path, suffix):
    root, _ = music_run
    out = tmp_path / f"x{suffix}"
    r = run_cli("sample", str(root / "gpt"), "--prompt", "toy chorale", "--n", "2", "--seed", "1", "--out", str(out))
    assert r.returncode == 0, r.stderr
    data = out.read_bytes()
    if suffix == ".mid":
        frames, _ = read_midi(data, "x.mid")
        assert frames and data[:4] == b"MThd"
    elif suffix == ".json":
        doc = json.loads(data)
        assert len(doc["pieces"]) == 2 and doc["pieces"][0]["tokens"].startswith("<bos> toy chorale")
    elif suffix == ".png":
        assert data[:8] == b"\x89PNG\r\n\x1a\n"
    else:
        assert data[:4] == b"RIFF" and data[8:12] == b"WAVE" and len(data) > 10000
    again = run_cli("sample", str(root / "gpt"), "--n", "1", "--out", str(out))
    assert again.returncode != 0 and "already exists" in again.stderr and out.read_bytes() == data


def test_a_text_tokenizer_cannot_read_music(music_run, tmp_path, corpus):
    root, source = music_run
    cfg = build_run_config("gpt", preset="tiny")
    cfg.data.source = str(corpus)
    text = load_data(cfg)
    cfg2 = build_run_config("gpt", preset="tiny")
    cfg2.data.source = source
    with pytest.raises(UserError, match="cannot read music"):
        load_data(cfg2, text.tokenizer)


def test_bach_chorales_come_from_music21s_corpus_split_by_piece():
    from tetragen.modalities.music.corpus import BACH, chorale_names, read_set
    names = chorale_names()
    assert len(names) > 300 and len(set(names)) == len(names)
    c = read_set(BACH, limit=10)
    sizes = [len(c.splits[s]) for s in ("train", "valid", "test")]
    assert sum(sizes) + len(c.skipped) == 10 and min(sizes) >= 1
    seen = [p.name for s in c.splits.values() for p in s]
    assert len(set(seen)) == len(seen)  # a piece is in one split only
    piece = c.splits["train"][0]
    assert piece.prompt.startswith("bach chorale in ") and len(piece.frames) > 8
    assert all(21 <= p <= 108 for f in piece.frames for p in f)
    assert 3 <= max(len(f) for f in piece.frames) <= 6  # four voices, sometimes split or doubled


def test_the_report_block_plays_the_wav_and_draws_the_piano_roll(music_run, tmp_path):
    root, _ = music_run
    modality = get_modality("music")
    pipe = tetragen.load(root / "gpt")
    folder = tmp_path / "job" / "gpt" / "shown"
    items, speed = modality.show(pipe, ("toy chorale",), folder, "")
    assert speed["unit"] == "notes/s" and speed["value"] > 0
    block = modality.html(items[0], tmp_path / "job")
    assert "<audio controls" in block and "data:audio/wav;base64," in block
    assert "data:image/png;base64," in block and "data:audio/midi;base64," in block
    assert modality.commands("runs/x", "toy chorale", pipe.capabilities)[0].startswith("tetragen sample runs/x")
    assert modality.card(pipe)["styles"] == ["toy chorale"]


def test_transposition_shifts_each_window_and_the_key_it_names_and_is_a_function_of_the_step(jsb):
    from tetragen.modalities.music.data import MusicData
    tok = MusicTokenizer(["bach", "chorale"])
    plain = MusicData(jsb, tok, 64)
    moved = MusicData(jsb, tok, 64, transpose=5)
    a = plain.train_batch(seed=0, step=3, micro=0, batch_size=32)["x"].numpy()
    b = moved.train_batch(seed=0, step=3, micro=0, batch_size=32)["x"].numpy()
    assert np.array_equal(b, moved.train_batch(seed=0, step=3, micro=0, batch_size=32)["x"].numpy())
    is_pitch = (a >= tok.pitch0) & (a < tok.pitch0 + 88)
    assert np.array_equal(is_pitch, (b >= tok.pitch0) & (b < tok.pitch0 + 88))  # pitches stay pitches
    shifts = set()
    for row_a, row_b, mask in zip(a, b, is_pitch):
        d = set((row_b[mask] - row_a[mask]).tolist())
        assert len(d) == 1 and abs(next(iter(d))) <= 5  # one shift per window
        shifts |= d
        names = {tok.index[n]: i for i, n in enumerate(("c", "c#", "d", "eb", "e", "f", "f#", "g", "ab", "a",
                                                          "bb", "b"))}
        for x, y in zip(row_a, row_b):
            if x in names:  # a key name moves with the pitches
                assert names[y] == (names[x] + next(iter(d))) % 12
    assert len(shifts) > 3


def test_bert_trains_on_music_fills_a_masked_note_and_harmonises_a_melody(tmp_path):
    pipe = tetragen.load(tiny_run("bert", example(tmp_path / "data"), tmp_path / "bert", "train.max_steps=4"))
    assert pipe.config.data.kind == "music" and "fill_mask" in pipe.capabilities
    [candidates] = pipe.fill_mask("<bos> toy chorale in c major <music> 36 48 52 [MASK] | 41 53 57 60 |", top_k=3)
    assert len(candidates) == 3 and all(p > 0 for _, p in candidates)
    # harmonising: three voices under each melody note, ascending, a rest kept; longer than the context in pieces
    melody = [67, 67, 69, 71, 72, None, 69, 67] * 4
    score = pipe.harmonise(melody, prompt="toy chorale in g major", seed=0)
    [frames] = score.pieces
    assert len(frames) == len(melody) and frames[5] == []
    for frame, top in zip(frames, melody):
        if top is not None:
            assert frame[-1] == top and frame == sorted(set(frame)) and 2 <= len(frame) <= 4
    assert pipe.harmonise(melody, prompt="toy chorale in g major", seed=0).pieces == score.pieces
    path = tmp_path / "melody.mid"
    path.write_bytes(midi_bytes([[[p] if p else [] for p in melody]]))
    assert len(pipe.harmonise(path, temperature=0).pieces[0]) == len(melody)
    with pytest.raises(UserError, match=r"melody\[1\]: 200 is not a MIDI pitch"):
        pipe.harmonise([60, 200])
    # the CLI verb: the same voices as the Python call, written by --out's suffix; bad input in one line
    r = run_cli("harmonise", str(tmp_path / "bert"), "--melody", "67 67 69 71 72 - 69 67", "--prompt",
                "toy chorale in g major", "--out", str(tmp_path / "h.json"))
    assert r.returncode == 0, r.stderr
    expected = pipe.harmonise([67, 67, 69, 71, 72, None, 69, 67], prompt="toy chorale in g major", seed=0)
    assert json.loads((tmp_path / "h.json").read_text())["pieces"][0]["frames"] == expected.pieces[0]
    assert run_cli("harmonise", str(tmp_path / "bert"), "--melody", str(path), "--out",
                   str(tmp_path / "h.mid")).returncode == 0
    assert (tmp_path / "h.mid").read_bytes()[:4] == b"MThd"
    for argv, says in (([str(tmp_path / "bert"), "--melody", "60 200"], "melody[1]: 200"),
                       ([str(tmp_path / "bert"), "--melody", "tune.mid"], "no such file"),
                       ([str(tmp_path / "bert"), "--melody", "60 62", "--voices", "9"], "voices: 9"),
                       ([str(tmp_path / "bert"), "--melody", "60", "--out", str(tmp_path / "h.json")], "exists")):
        r = run_cli("harmonise", *argv, *([] if "--out" in argv else ["--out", str(tmp_path / "x.mid")]))
        assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1 and says in r.stderr, r.stderr
    assert not (tmp_path / "x.mid").exists()
    # evaluated, it harmonises the test pieces' own melodies and says how close it came to their voices
    metrics, lines = api.evaluate(tmp_path / "bert", n=4)
    assert "val_loss" in metrics and metrics["harmony_pieces"] == 3 and metrics["harmony_frames"] == 3 * 16
    assert all(0.0 <= metrics[k] <= 1.0 for k in ("harmony_note_acc", "harmony_pc_acc", "harmony_in_key"))
    assert any(line.startswith("harmonised 48 frames of 3 test pieces") for line in lines)


def test_bert_on_events_harmonises_a_melody_note_against_note_with_its_durations(tmp_path):
    from tetragen.modalities.music.midi import midi_bytes_notes
    pipe = tetragen.load(tiny_run("bert", example(tmp_path / "data"), tmp_path / "bert", "train.max_steps=4",
                                  "data.tokenizer=events"))
    # a melody of quarters (one a rest) in 3/4: two voices under each note, each as long as its melody note
    melody = [67, 69, None, 71, 72, 71, 69, 67, 67] * 3
    score = pipe.harmonise(melody, prompt="toy chorale in g major 3/4", voices=2, seed=0)
    [notes] = score.notes
    onsets = sorted({n[1] for n in notes})
    assert onsets == [4 * k for k, p in enumerate(melody) if p is not None]
    for on in onsets:
        chord = sorted(n for n in notes if n[1] == on)
        assert chord[-1][0] == melody[on // 4] and 2 <= len(chord) <= 3 and all(n[2] == 4 for n in chord)
    text = score.text[0].split()
    assert text.count("<bar>") == 9 and all(int(w[1:]) < 12 for w in text if w.startswith("@"))
    assert pipe.harmonise(melody, prompt="toy chorale in g major 3/4", voices=2, seed=0).notes == score.notes
    # a MIDI melody keeps its durations: a half note gets voices as long as it is
    path = tmp_path / "tune.mid"
    path.write_bytes(midi_bytes_notes([[(72, 0, 8, 80), (71, 8, 4, 80), (72, 12, 4, 80)]], metres=["4/4"]))
    [made] = pipe.harmonise(path, voices=3, temperature=0).notes
    assert {(on, dur) for _, on, dur, _ in made} == {(0, 8), (8, 4), (12, 4)} and len(made) > 3
    # evaluated, it harmonises the test pieces' own top voices and scores its voices against theirs
    metrics, lines = api.evaluate(tmp_path / "bert", n=4)
    assert metrics["harmony_pieces"] == 3 and 0.0 <= metrics["harmony_note_acc"] <= 1.0
    assert any(line.startswith("harmonised") for line in lines)


def test_harmony_is_matched_note_for_note_under_the_melody_and_by_pitch_class():
    from tetragen.modalities.music.harmonise import harmony_match
    real = [[48, 55, 64, 72], [50, 53, 62, 71], [60], []]
    made = [[48, 55, 63, 72], [41, 53, 62, 71], [48, 60], []]
    assert harmony_match(real, made) == (4 / 6, 5 / 6, 6)        # the melody alone, or a rest, counts nothing
    assert harmony_match(real, real) == (1.0, 1.0, 6) and harmony_match([[60]], [[60]]) == (0.0, 0.0, 0)


def test_a_primer_starts_every_piece_and_is_continued(music_run, tmp_path):
    root, _ = music_run
    pipe = tetragen.load(root / "gpt")
    primer = [[48, 60], [48, 60], [53, 65]]  # what fits in half the tiny model's context after the prompt
    said = []
    score = pipe.sample(2, seed=3, prompt="toy chorale", primer=primer, max_frames=4, warn=said.append)
    assert not said
    for frames in score.pieces:
        assert frames[:3] == primer and 3 < len(frames) <= 7
    path = tmp_path / "primer.mid"
    path.write_bytes(midi_bytes([primer]))
    again = pipe.sample(2, seed=3, prompt="toy chorale", primer=path, max_frames=4)
    assert again.pieces == score.pieces  # a MIDI file of the same frames primes the same way


def test_a_music_run_resumes_with_its_own_tokenizer_and_transposition(tmp_path):
    source = example(tmp_path / "data")
    args = ["train", "gpt", "--preset", "tiny", "--data", source, "--out", str(tmp_path / "run"),
            "data.transpose=3", "train.eval_every=0", "train.save_every=2"]
    assert run_cli(*args, "train.max_steps=4").returncode == 0
    r = run_cli(*args, "train.max_steps=6", "--resume")
    assert r.returncode == 0, r.stderr
    cfg = json.loads((tmp_path / "run" / "config.json").read_text())
    assert cfg["train"]["max_steps"] == 6 and cfg["data"]["kind"] == "music" and cfg["data"]["transpose"] == 3
    assert tetragen.load(tmp_path / "run").sample(1, seed=0, max_frames=2).pieces[0]


def test_a_folder_of_midi_and_musicxml_trains_with_its_sub_folders_as_styles(tmp_path):
    from music21 import chord, stream
    from tetragen.modalities.music.midi import read_file
    root = tmp_path / "scores"
    (root / "reels").mkdir(parents=True)
    (root / "hymns").mkdir()
    pieces = example_pieces(8, 5, frames=8)
    for i, frames in enumerate(pieces[:4]):
        (root / "reels" / f"{i}.mid").write_bytes(midi_bytes([frames]))
    for i, frames in enumerate(pieces[4:]):
        s = stream.Stream([chord.Chord(f, quarterLength=1.0) for f in frames])
        s.write("musicxml", fp=str(root / "hymns" / f"{i}.musicxml"))
    assert read_file(root / "hymns" / "0.musicxml")[0] == pieces[4]
    assert claims(str(root))
    tiny_run("gpt", str(root), tmp_path / "run", "train.max_steps=2")
    assert json.loads((tmp_path / "run" / "music.json").read_text())["styles"] == ["hymns", "reels"]
    pipe = tetragen.load(tmp_path / "run")
    score = pipe.sample(2, seed=0, labels="reels", max_frames=3)
    assert list(score.labels) == [1, 1] and all(p.startswith("reels") for p in score.prompts)


def test_event_tokens_and_midi_round_trip_notes_with_real_durations_in_bars_of_their_metre():
    from tetragen.modalities.music.corpus import BACH, IRISH, read_set
    from tetragen.modalities.music.midi import canonical, midi_bytes_notes, midi_metre, midi_notes, to_sixteenths
    from tetragen.modalities.music.tokens import bar_steps, metre_word
    pieces = [p for cs in (BACH, IRISH) for s in read_set(cs, limit=6).splits.values() for p in s]
    tok = MusicTokenizer({w for p in pieces for w in words_of(p.prompt)}, tokenization="events")
    assert any(n[2] % 4 for p in pieces for n in p.events())  # eighths and sixteenths, not only quarters
    metres = {metre_word(p.prompt.split()) for p in pieces}
    assert {"3/4", "4/4"} <= metres and len({bar_steps(m) for m in metres}) >= 3   # chorales in 3/4, reels in 2/2 ...
    for piece in pieces:
        notes = canonical(piece.events())
        ids = tok.encode_events(notes, piece.prompt)
        prompt, back = tok.decode_events(ids)
        assert back == notes and prompt == piece.prompt and tok.encode(tok.decode(ids)) == ids
        bar = bar_steps(metre_word(prompt.split()))
        assert max(int(t[1:]) for t in tok.decode(ids).split() if t.startswith("@")) < bar
        assert tok.decode(ids).split().count("<bar>") == max(n[1] for n in notes) // bar + 1
        data = midi_bytes_notes([notes], metres=[metre_word(prompt.split())])
        again, _ = to_sixteenths(midi_notes(data, "x.mid")[0], "x.mid")
        assert again == notes and midi_metre(data) == metre_word(prompt.split()), piece.name
    # a chorale's one-beat pickup is the last beat of a whole first bar: its first note is on the bar's last beat
    bwv = next(p for p in pieces if p.name == "bwv269")            # 3/4, a pickup of one quarter
    assert bwv.prompt.endswith("3/4") and min(n[1] for n in bwv.events()) == 8


def test_velocities_are_kept_as_tokens_where_they_change_and_cost_nothing_where_they_do_not(tmp_path):
    from tetragen.modalities.music.midi import canonical, midi_bytes_notes, midi_notes, to_sixteenths
    tok = MusicTokenizer(["4/4"], tokenization="events")
    quiet = [(60, 0, 4, 80), (64, 4, 4, 80), (67, 8, 8, 80)]
    assert "v" not in "".join(t[0] for t in tok.decode(tok.encode_events(quiet, "in c major 4/4")).split())
    played = [(48, 0, 16, 40), (60, 0, 4, 101), (64, 4, 4, 101), (67, 8, 4, 120), (72, 12, 4, 30)]
    notes = canonical(played)
    assert [n[3] for n in notes] == [48, 96, 96, 127, 32]               # quantised to the nearest of 16 levels
    ids = tok.encode_events(notes, "in c major 4/4")
    assert tok.decode(ids).split()[6:] == ["<bar>", "@0", "v48", "48", "d16", "v96", "60", "d4", "@4", "64", "d4",
                                           "@8", "v127", "67", "d4", "@12", "v32", "72", "d4", "<end>"]
    assert tok.decode_events(ids)[1] == notes
    (tmp_path / "played.mid").write_bytes(midi_bytes_notes([played]))
    assert to_sixteenths(midi_notes(tmp_path / "played.mid")[0], "x")[0] == notes
    # a run made before velocities and metres (tokenizer layout 1) still reads its own tokens
    old = tmp_path / "tokenizer.json"
    old.write_text(json.dumps({"tetragen_tokenizer": "music-events", "words": ["3/4"], "range": [21, 108]}))
    back = read_tokenizer(old)
    assert back.layout == 1 and back.velocities == 0 and back.bar_of(["3/4"]) == 16
    assert back.decode_events(back.encode_events(played, "in c major 3/4"))[1] == [n[:3] + (80,) for n in notes]
    tok.save(old)
    assert read_tokenizer(old).layout == 2 and read_tokenizer(old).tokens == tok.tokens


def test_a_gpt_on_events_writes_notes_with_durations_and_is_scored_per_note(tmp_path):
    source = example(tmp_path / "data")
    tiny_run("gpt", source, tmp_path / "run", "train.max_steps=6", "data.tokenizer=events")
    assert read_tokenizer(tmp_path / "run" / "tokenizer.json").tokenization == "events"
    pipe = tetragen.load(tmp_path / "run")
    score = pipe.sample(3, seed=1, prompt="toy chorale", max_frames=8)
    for notes, frames in zip(score.notes, score.pieces):
        assert notes and all(21 <= p <= 108 and on >= 0 and 1 <= d <= 32 and 16 <= v <= 127 for p, on, d, v in notes)
        assert max(n[1] for n in notes) < 2 * 16 and frames  # at most ceil(8 / 4) bars
    # a prompt in 3/4 gets bars of three beats: no position past the bar's 12 sixteenths, 8 beats in 3 bars
    waltz = pipe.sample(3, seed=2, prompt="toy chorale in c major 3/4", max_frames=8)
    for text, notes in zip(waltz.text, waltz.notes):
        words = text.split()
        assert all(int(w[1:]) < 12 for w in words if w.startswith("@")) and words.count("<bar>") <= 3
        assert max(n[1] for n in notes) < 3 * 12
    # a primer MIDI keeps its durations and velocities: the pieces begin with its notes
    from tetragen.modalities.music.midi import midi_bytes_notes
    primer = midi_bytes_notes([[(60, 0, 4, 100), (62, 4, 2, 100), (64, 6, 2, 60)]], metres=["4/4"])
    primed = pipe.sample(2, seed=0, prompt="toy chorale", primer=primer, max_frames=4)
    assert all(n[:3] == [(60, 0, 4, 96), (62, 4, 2, 96), (64, 6, 2, 64)] for n in primed.notes)
    out = tmp_path / "x.mid"
    assert run_cli("sample", str(tmp_path / "run"), "--n", "1", "--seed", "1", "--out", str(out)).returncode == 0
    metrics, lines = api.evaluate(tmp_path / "run", n=4)
    assert "test_nll_frame" not in metrics and metrics["test_nll_note"] > metrics["test_nll_token"] > 0
    bad = build_run_config("gpt", preset="tiny", overrides=["data.tokenizer=bpe"])
    bad.data.source = source
    with pytest.raises(UserError, match="data.tokenizer=bpe: music is tokenized as frames"):
        load_data(bad)
