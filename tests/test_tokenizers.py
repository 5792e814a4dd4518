"""Tokenizers: byte-level BPE beside the char tokenizer, bits per character, the CLI verb and BPE training runs."""
from __future__ import annotations

import json

import numpy as np
import pytest

import tetragen
from tetragen.data import text as text_mod
from tetragen.data.text import load_text_data
from tetragen.data.tokenizer import CLS, MASK, PAD, SPECIAL_TOKENS, CharTokenizer, HFTokenizer, load_tokenizer
from tetragen.errors import UserError

from .conftest import TINY, make_corpus, run_cli

ODD_TEXT = "ROMEO:\nBut, soft! what light\u2014through yonder window breaks? caf\u00e9 \u2603 \U0001F600\n\n  end"


@pytest.fixture(scope="module")
def bpe() -> HFTokenizer:
    return HFTokenizer.train([make_corpus(300), ODD_TEXT], 320)


def test_bpe_round_trip_and_characters(bpe):
    assert bpe.vocab_size == 320 and bpe.specials == list(SPECIAL_TOKENS)
    for text in [ODD_TEXT, make_corpus(5, seed=9), "\u00e9\u00e9\u00e9", ""]:
        ids = bpe.encode(text)
        assert bpe.decode(ids) == text
        assert bpe.num_chars(ids) == len(text)
    assert len(bpe.encode(make_corpus(20, seed=3))) < len(make_corpus(20, seed=3)) / 2  # merges were learned
    # a character whose bytes are split over tokens counts once, in the token holding its first byte
    ids = bpe.encode("\U0001F600")
    assert len(ids) > 1 and bpe.num_chars(ids) == 1
    # special tokens decode to nothing and are no characters
    mask = bpe.special_id(MASK)
    assert bpe.decode([mask, *bpe.encode("ab")]) == "ab" and bpe.num_chars([mask]) == 0
    assert bpe.token_str(mask) == MASK


def test_char_tokenizer_specials_come_last_and_count_no_characters(tmp_path):
    tok = CharTokenizer(list("abc"))
    with_sp = tok.with_specials(SPECIAL_TOKENS)
    assert with_sp.with_specials([MASK]) is with_sp and tok.with_specials([]) is tok
    assert with_sp.encode("cab") == tok.encode("cab")  # text ids do not move
    assert [with_sp.special_id(t) for t in (PAD, MASK, CLS)] == [4, 5, 6] and with_sp.vocab_size == 7
    ids = [with_sp.special_id(CLS), *with_sp.encode("abc"), with_sp.special_id(PAD)]
    assert with_sp.decode(ids) == "abc" and with_sp.num_chars(ids) == 3
    assert with_sp.token_str(5) == MASK
    with_sp.save(tmp_path / "tokenizer.json")
    back = load_tokenizer(tmp_path / "tokenizer.json")
    assert back.specials == list(SPECIAL_TOKENS) and back.encode("cab") == tok.encode("cab")


def test_load_tokenizer_tells_the_formats_apart(tmp_path, bpe):
    bpe.save(tmp_path / "hf.json")
    CharTokenizer(list("xy")).save(tmp_path / "char.json")
    assert isinstance(load_tokenizer(tmp_path / "hf.json"), HFTokenizer)
    assert isinstance(load_tokenizer(tmp_path / "char.json"), CharTokenizer)
    from tokenizers import Tokenizer  # the file is Hugging Face's own format
    assert Tokenizer.from_file(str(tmp_path / "hf.json")).encode(ODD_TEXT).ids == bpe.encode(ODD_TEXT)
    (tmp_path / "bad.json").write_text(json.dumps({"model": {"type": "Nope"}, "version": "1.0"}))
    with pytest.raises(UserError, match="bad.json"):
        load_tokenizer(tmp_path / "bad.json")


def test_bpe_corpus_streams_at_line_ends_and_splits_on_the_same_text(tmp_path, monkeypatch):
    path = tmp_path / "c.txt"
    text = make_corpus(200) + "\u2603 caf\u00e9\n"
    path.write_text(text, encoding="utf-8")
    char = load_text_data(str(path), 16, 0.1)
    monkeypatch.setattr(text_mod, "CHUNK_CHARS", 1000)  # many chunks
    bpe = load_text_data(str(path), 16, 0.1, kind="bpe", vocab_size=300)
    tokens = np.concatenate([np.asarray(bpe.train), np.asarray(bpe.val)])
    assert bpe.tokenizer.decode(tokens.tolist()) == text
    assert len(tokens) < 0.7 * len(text)
    cut = int(round(len(text) * 0.9, 6))  # the char split
    assert char.tokenizer.decode(np.asarray(char.val).tolist()) == text[cut:]
    val = bpe.tokenizer.decode(np.asarray(bpe.val).tolist())
    assert text[cut:].endswith(val) and len(text[cut:]) - len(val) < 8  # the same text, to within a token
    # char and BPE tokens of the same file live side by side in the cache
    assert len(list((text_mod.cache_dir() / "tokens").glob("*/tokens.bin"))) >= 2


def test_bits_per_character_count_characters_not_tokens(tmp_path):
    from tetragen.eval.text import lm_metrics
    import torch
    path = tmp_path / "c.txt"
    path.write_text(make_corpus(200), encoding="utf-8")
    data = load_text_data(str(path), 16, 0.1, kind="bpe", vocab_size=300)

    class Uniform(torch.nn.Module):  # log(V) nats per token
        def forward(self, x):
            return torch.zeros(*x.shape, data.tokenizer.vocab_size), None
    m = lm_metrics(Uniform(), data, torch.device("cpu"))
    chars = len(data.tokenizer.decode(np.asarray(data.val[1:]).tolist()))
    assert m["val_tokens"] == len(data.val) - 1
    assert m["val_bpc"] == pytest.approx(np.log2(data.tokenizer.vocab_size) * m["val_tokens"] / chars)


def test_tokenizer_train_cli_then_gpt_runs_with_bpe(tmp_path, corpus):
    out = tmp_path / "tok"
    r = run_cli("tokenizer", "train", "--data", str(corpus), "--vocab-size", "300", "--out", str(out))
    assert r.returncode == 0, r.stderr
    r2 = run_cli("tokenizer", "train", "--data", str(corpus), "--vocab-size", "300", "--out", str(out))
    assert r2.returncode == 2 and "--overwrite" in r2.stderr and len(r2.stderr.strip().splitlines()) == 1
    tok = load_tokenizer(out / "tokenizer.json")
    assert isinstance(tok, HFTokenizer) and tok.vocab_size == 300

    for spec, run in [(str(out / "tokenizer.json"), tmp_path / "from_file"), ("bpe", tmp_path / "own_bpe")]:
        r = run_cli("train", "gpt", "--data", str(corpus), "--out", str(run), *TINY, "train.max_steps=4",
                    f"data.tokenizer={spec}", "data.vocab_size=300")
        assert r.returncode == 0, r.stderr
        saved = json.loads((run / "tokenizer.json").read_text())
        assert saved["model"]["type"] == "BPE"  # the Hugging Face format, inside the run
        assert json.loads((run / "config.json").read_text())["model"]["vocab_size"] == 300
        r = run_cli("eval", str(run), "--json")
        assert r.returncode == 0, r.stderr
        assert 0 < json.loads(r.stdout)["val_bpc"] < 20
        gen = tetragen.load(run)
        assert gen.generate("ROMEO:", 10, seed=1) == gen.generate("ROMEO:", 10, seed=1)
        assert "".join(gen.stream("ROMEO:", 10, seed=1)) == gen.generate("ROMEO:", 10, seed=1)


def test_bad_tokenizer_settings_are_one_line_errors(tmp_path, corpus):
    for over, needle in [("data.tokenizer=wordpiece", "data.tokenizer"),
                         (f"data.tokenizer={tmp_path / 'none.json'}", "none.json"),
                         ("data.tokenizer=bpe", "data.vocab_size")]:
        extra = ["data.vocab_size=258"] if over.endswith("bpe") else []
        r = run_cli("train", "gpt", "--data", str(corpus), "--out", str(tmp_path / "run"), *TINY, over, *extra)
        assert r.returncode == 2 and needle in r.stderr, r.stderr
        assert len(r.stderr.strip().splitlines()) == 1 and "Traceback" not in r.stderr
        assert not (tmp_path / "run").exists()
