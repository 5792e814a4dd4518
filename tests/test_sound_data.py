"""The sound datasets: spoken-words (made by espeak-ng, the same twice, no test voice in training), drums (labels from
kit XML and file names, onset alignment, split by kit) and a user's folder of sounds (conversions said once, bad
files skipped and counted, captions read)."""
import json

import numpy as np
import pytest
import soundfile

from tetragen.errors import UserError
from tetragen.modalities.sound import audio, drums, spoken_words
from tetragen.modalities.sound.folder import sound_folder

TINY = dict(words=("yes", "no"), per_word=3, test_per_word=2, accents=("en-us", "en-gb-scotland"),
            variants=("m1", "f2", "croak"), test_variants=1)


# ----------------------------------------------------------------------------------------------------------------
# spoken-words (espeak-ng is installed through tetragen's apt path where it is missing; where it cannot be, these
# tests fail and say how to install it)

def test_spoken_words_are_made_the_same_twice_from_the_same_seed(tmp_path):
    a = spoken_words.make_spoken_words(tmp_path / "a", seed=5, **TINY)
    b = spoken_words.make_spoken_words(tmp_path / "b", seed=5, **TINY)
    pcm_a, doc_a = audio.read_clips(a, "it")
    pcm_b, doc_b = audio.read_clips(b, "it")
    assert doc_a["sha256_audio"] == doc_b["sha256_audio"] and doc_a["sha256_clips"] == doc_b["sha256_clips"]
    assert np.array_equal(pcm_a, pcm_b) and pcm_a.shape == (2 * (3 + 2), 16000) and pcm_a.dtype == np.int16
    assert doc_a["espeak_ng"].startswith("eSpeak NG") and doc_a["seed"] == 5
    other = spoken_words.make_spoken_words(tmp_path / "c", seed=6, **TINY)
    assert audio.read_clips(other, "it")[1]["sha256_audio"] != doc_a["sha256_audio"]
    for x, clip in zip(pcm_a, doc_a["clips"]):
        loud = np.flatnonzero(np.abs(x) > np.abs(x).max() / 10)
        assert 3000 < (loud[0] + loud[-1]) / 2 < 13000, clip   # trimmed and centred in the second
        assert {"label", "voice", "variant", "pitch", "speed", "gain_db", "noise_snr_db", "split"} <= set(clip)


def test_no_test_voice_is_heard_in_training(tmp_path):
    train, test = spoken_words.voices(0)
    assert len(test) == len(spoken_words.ACCENTS) * spoken_words.TEST_VARIANTS and not set(train) & set(test)
    assert {v for _, v in train}.isdisjoint({v for _, v in test})
    folder = spoken_words.make_spoken_words(tmp_path / "s", seed=1, **TINY)
    doc = audio.read_clips(folder, "it")[1]
    heard = {c["voice"] for c in doc["clips"] if c["split"] == "train"}
    tested = {c["voice"] for c in doc["clips"] if c["split"] == "test"}
    assert tested and heard and not heard & tested
    assert tested <= set(doc["settings"]["test_voices"])


def test_spoken_words_is_made_once_into_the_cache_and_is_a_named_dataset(monkeypatch, capsys):
    for name, value in (("WORDS", TINY["words"]), ("PER_WORD", 2), ("TEST_PER_WORD", 1)):
        monkeypatch.setattr(spoken_words, name, value)
    monkeypatch.setattr(spoken_words, "VARIANTS", ("m1", "f2", "croak"))
    monkeypatch.setattr(spoken_words, "TEST_VARIANTS", 1)
    dataset, = spoken_words.DATASETS
    with pytest.raises(UserError, match="tetragen data fetch spoken-words"):
        dataset.locate()
    train, test = spoken_words.spoken_words(seed=0)
    assert "synthesising spoken-words" in capsys.readouterr().err
    assert train.waves.shape == (4, 16000) and train.waves.dtype == np.float32 and train.labels.dtype == np.int64
    assert len(test) == 2 and train.classes == ["yes", "no"] and test.meta[0]["split"] == "test"
    assert 0 < np.abs(train.waves).max() <= 1

    def no_synthesis(*args):
        raise AssertionError("made again")
    monkeypatch.setattr(spoken_words, "_say", no_synthesis)
    again, _ = spoken_words.spoken_words(seed=0)
    assert np.array_equal(again.waves, train.waves) and capsys.readouterr().err == ""
    files, done = dataset.fetch()
    assert [f.name for f in files] == ["audio.npy", "manifest.json"] and done.startswith("synthesised with eSpeak NG")
    assert dataset.locate() == files


def test_without_espeak_and_without_apt_the_error_says_how_to_install_it(monkeypatch):
    monkeypatch.setattr(spoken_words.shutil, "which", lambda name: None)

    def refused(package):
        raise RuntimeError("not root, and sudo asks for a password")
    monkeypatch.setattr(spoken_words, "apt_install", refused)
    with pytest.raises(UserError, match=r"could not be installed \(not root, and sudo asks for a password\); "
                                        r"install it with `(sudo )?apt-get install espeak-ng`"):
        spoken_words.espeak()


# ----------------------------------------------------------------------------------------------------------------
# drums

@pytest.mark.parametrize("name, label", [
    ("Kick (Tama Superstar 22\")", "kick"), ("c3 - bass drum 1", "kick"), ("BD_01", "kick"),
    ("PearlKick-Soft", "kick"), ("Hi-Hat Closed (Paiste Alpha Metal edge 14\")", "hi-hat"), ("Closed HH", "hi-hat"),
    ("VariBreaks Hat 1 Op", "hi-hat"), ("Snare Rimshot (Pearl Free Floating Maple 14x3.5)", "snare"),
    ("Ride (Custom, Zagrebin 22\")", "ride"), ("Crash/Ride Bell (Paiste Rude Crash/Ride 18\")", "ride"),
    ("Paiste Bell", "ride"), ("China (Paiste Alpha 18\")", "crash"),
    ("Pearl Tom Floor", "tom"), ("Pearl Side Stick", "rim"), ("Finger Snaps", "clap"), ("Agogo Low", "bell"),
    ("Djembe1 Bass", "hand drum"), ("Tambourine Pedal", "shaker"), ("Clave-Hard", None), ("yFX_3", None),
])
def test_drum_sounds_are_labelled_from_their_names(name, label):
    assert drums.label_of(name) == label


def _hit(rate, seconds, delay, channels=1, freq=180.0):
    """A decaying tone starting after `delay` seconds of silence."""
    t = np.arange(int(rate * seconds)) / rate
    x = np.where(t >= delay, np.sin(2 * np.pi * freq * t) * np.exp(-(t - delay) * 8), 0.0) * 0.8
    return np.repeat(x[:, None], channels, axis=1)


def _kit(root, name, sounds, xml_style="layers", pitch=0.0):
    """A kit folder: sounds = {file name: (instrument name or None, seconds)}, with a drumkit.xml naming the files
    of the instruments that have a name, in Hydrogen's newer (namespaced, layers) or older (flat) style."""
    kit = root / name
    kit.mkdir(parents=True)
    instruments = []
    for i, (file, (instrument, seconds)) in enumerate(sounds.items()):
        soundfile.write(str(kit / file), _hit(44100, seconds, 0.2 + 0.01 * i, channels=2, freq=150 + 40 * i + pitch),
                        44100, subtype="PCM_24")
        if instrument is None:
            continue
        if xml_style == "layers":
            instruments.append(f"<instrument><id>{i}</id><name>{instrument}</name><instrumentComponent><layer>"
                               f"<filename>{file}</filename></layer></instrumentComponent></instrument>")
        else:
            instruments.append(f"<instrument><id>{i}</id><name>{instrument}</name><filename>{file}</filename>"
                               f"</instrument>")
    ns = ' xmlns="http://www.hydrogen-music.org/drumkit"' if xml_style == "layers" else ""
    (kit / "drumkit.xml").write_text(f"<drumkit_info{ns}><name>{name}</name><instrumentList>{''.join(instruments)}"
                                     f"</instrumentList></drumkit_info>", encoding="utf-8")
    return kit


def test_kit_files_take_the_xml_instrument_name_and_else_the_file_name(tmp_path):
    kit = _kit(tmp_path, "k", {"a.flac": ("Kick", 0.5), "b.flac": ("Mystery Thing", 0.5), "snare_2.flac": (None, 0.5),
                               "sample_7.flac": (None, 0.5)}, xml_style="flat")
    got = {p.name: (name, label) for p, name, label in drums.kit_files(kit)}
    assert got == {"a.flac": ("Kick", "kick"), "b.flac": ("b", None), "snare_2.flac": ("snare_2", "snare"),
                   "sample_7.flac": ("sample_7", None)}


def test_a_one_shot_starts_at_its_onset_and_lasts_a_second(tmp_path):
    path = tmp_path / "late.wav"
    soundfile.write(str(path), _hit(44100, 2.5, 0.6, channels=2), 44100, subtype="PCM_24")
    x = drums.load_one_shot(path, audio.MelSettings())
    assert x.shape == (16000,) and x.dtype == np.float32
    onset = int(np.argmax(np.abs(x) > 0.01))
    assert abs(onset - drums.PRE_ONSET * 16000) <= 8
    assert abs(x[-1]) < 1e-3                             # cut with a fade, not a click
    soundfile.write(str(tmp_path / "silent.wav"), np.zeros(4000), 16000)
    assert drums.load_one_shot(tmp_path / "silent.wav", audio.MelSettings()) is None


def test_drums_are_split_by_kit_with_every_class_on_both_sides(tmp_path):
    root = tmp_path / "kits"
    for k in range(5):
        _kit(root, f"kit{k}", {"k.wav": ("Kick", 0.4), "s.wav": ("Snare", 1.4), "h.wav": ("Closed HH", 0.3),
                               "fx.wav": ("Zap", 0.3)}, pitch=7.0 * k)
    folder = drums.make_drums(tmp_path / "out", seed=0, kits_root=root, min_per_class=2)
    pcm, doc = audio.read_clips(folder, "it")
    assert doc["classes"] == ["hi-hat", "kick", "snare"] and pcm.shape == (15, 16000)
    assert doc["dropped"] == {"no class": 5, "silent": 0, "duplicate": 0, "rare class": 0} and doc["test_kits"]
    train, test = audio.split_sets(pcm, doc)
    assert {m["kit"] for m in train.meta}.isdisjoint({m["kit"] for m in test.meta})
    assert set(train.labels.tolist()) == set(test.labels.tolist()) == {0, 1, 2}
    again = drums.make_drums(tmp_path / "again", seed=0, kits_root=root, min_per_class=2)
    assert audio.read_clips(again, "it")[1]["sha256_clips"] == doc["sha256_clips"]
    with pytest.raises(UserError, match="no labelled drum sounds"):
        drums.make_drums(tmp_path / "rare", seed=0, kits_root=root, min_per_class=6)
    _kit(root, "copy", {"k.wav": ("Kick", 0.4)}, pitch=0.0)   # kit0's kick under another kit's name
    doc = audio.read_clips(drums.make_drums(tmp_path / "copy", seed=0, kits_root=root, min_per_class=2), "it")[1]
    assert doc["dropped"]["duplicate"] == 1


# ----------------------------------------------------------------------------------------------------------------
# a user's folder

def _write(path, x, rate, subtype="PCM_16"):
    path.parent.mkdir(parents=True, exist_ok=True)
    soundfile.write(str(path), x, rate, subtype=subtype)


def test_a_folder_is_read_with_each_conversion_said_once_and_bad_files_skipped(tmp_path, capsys):
    root = tmp_path / "sounds"
    tone = _hit(16000, 1.0, 0.1)[:, 0]
    for i in range(4):
        _write(root / "bird" / f"b{i}.wav", _hit(44100, 2.0, 0.1, channels=2), 44100)       # resampled, mixed, cut
    _write(root / "bird" / "b4.wav", _hit(8000, 0.5, 0.1), 8000, subtype="PCM_U8")        # 8-bit, resampled, padded
    for i in range(3):
        _write(root / "dog" / f"d{i}.flac", tone, 16000, subtype="PCM_24")
    _write(root / "dog" / "quiet.wav", np.zeros(16000), 16000)
    (root / "dog" / "empty.wav").write_bytes(b"")
    (root / "dog" / "notes.wav").write_text("not a sound")
    (root / "dog" / "readme.txt").write_text("ignored: not a sound suffix")
    (root / "captions.jsonl").write_text(json.dumps({"file": "dog/d0.flac", "text": "a dog barks"}) + "\n" +
                                         json.dumps({"file": "dog/gone.wav", "text": "no such file"}) + "\n")
    train, test = sound_folder(root, val_fraction=0.4)
    err = capsys.readouterr().err.strip().splitlines()
    assert train.classes == ["bird", "dog"] and len(train) + len(test) == 8
    assert test.labels.tolist() == [0, 0, 1] and [m["file"] for m in test.meta] == ["bird/b3.wav", "bird/b4.wav",
                                                                                    "dog/d2.flac"]
    assert train.waves.shape[1:] == (16000,) and train.waves.dtype == np.float32
    assert train.meta[train.labels.tolist().index(1)] == {"file": "dog/d0.flac", "text": "a dog barks"}
    expected = ["mixed 2 channels to mono (4 files)", "read 24-bit samples as 32-bit float (3 files)",
                "read 8-bit unsigned samples as 32-bit float (1 file)",
                "resampled 5 files to 16000 Hz (from 8000 Hz, 44100 Hz)", "cut 4 files to 1 s (at their end)",
                "padded 1 file to 1 s (at the end with silence)",
                "skipped 3 of 11 files (empty 1, silent 1, undecodable 1): dog/empty.wav, dog/notes.wav, dog/quiet.wav",
                "1 caption(s) name no file that was read"]
    for line in expected:
        assert sum(line in e for e in err) == 1, (line, err)
    assert len(err) == len(expected)


def test_files_directly_in_the_folder_are_one_class_and_a_folder_without_sound_is_refused(tmp_path):
    root = tmp_path / "claps"
    for i in range(3):
        _write(root / f"c{i}.wav", _hit(16000, 1.0, 0.0)[:, 0], 16000)
    train, test = sound_folder(root)
    assert train.classes == ["claps"] and len(train) + len(test) == 3
    empty = tmp_path / "nothing"
    empty.mkdir()
    (empty / "a.txt").write_text("x")
    with pytest.raises(UserError, match="no sound files"):
        sound_folder(empty)
    bad = tmp_path / "bad"
    (bad / "x").mkdir(parents=True)
    (bad / "x" / "a.wav").write_bytes(b"")
    with pytest.raises(UserError, match=r"none of the 1 sound files could be used \(empty 1\)"):
        sound_folder(bad)
    (root / "captions.jsonl").write_text("{not json\n")
    with pytest.raises(UserError, match="captions.jsonl: line 1 is not JSON"):
        sound_folder(root)
