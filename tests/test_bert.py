"""BERT: masking statistics and determinism, bidirectional attention with padding, fill-mask from the CLI and Python,
char and BPE tokenizers."""
from __future__ import annotations

import json

import pytest
import torch

import tetragen
from tetragen.config import build_run_config
from tetragen.data.tokenizer import CLS, MASK, PAD
from tetragen.families.bert.model import BERT, IGNORE
from tetragen.families.bert.objective import generator_for, mask_tokens
from tetragen.nn.attention import SelfAttention, alibi_bias

from .conftest import TINY, make_corpus, run_cli


def tiny_config(vocab_size=40):
    cfg = build_run_config("bert", preset="tiny").model
    cfg.vocab_size = vocab_size
    cfg.special_ids = {PAD: vocab_size - 3, MASK: vocab_size - 2, CLS: vocab_size - 1}
    return cfg


def test_masking_follows_the_80_10_10_recipe_and_is_seeded():
    c = tiny_config(vocab_size=1000)
    ids = torch.randint(0, 997, (64, 256))
    ids[:, 0] = c.special_ids[CLS]
    ids[:, -10:] = c.special_ids[PAD]
    inputs, targets = mask_tokens(ids, c, generator_for(1, 2, 0, 0))
    chosen = targets != IGNORE
    text = ids < 997
    assert not (chosen & ~text).any()                               # special tokens are never chosen
    assert torch.equal(targets[chosen], ids[chosen])                # the loss asks for the original token
    assert torch.equal(inputs[~chosen], ids[~chosen])               # nothing else changes
    share = chosen.sum() / text.sum()
    assert 0.14 < share < 0.16
    masked = (inputs[chosen] == c.special_ids[MASK]).float().mean()
    kept = (inputs[chosen] == ids[chosen]).float().mean()
    assert 0.77 < masked < 0.83 and 0.08 < kept < 0.12             # the rest (~10%) are random tokens
    assert not (inputs[chosen & (inputs != c.special_ids[MASK])] >= 997).any()  # random tokens are text tokens
    again = mask_tokens(ids, c, generator_for(1, 2, 0, 0))
    other = mask_tokens(ids, c, generator_for(1, 3, 0, 0))
    assert torch.equal(again[0], inputs) and torch.equal(again[1], targets)
    assert not torch.equal(other[1], targets)


@pytest.mark.parametrize("alibi", [False, True])
def test_encoder_is_bidirectional_and_ignores_padding(alibi):
    torch.manual_seed(0)
    cfg = tiny_config()
    cfg.alibi = alibi
    model = BERT(cfg).eval()
    assert all(isinstance(b.attn, SelfAttention) and not b.attn.causal for b in model.encoder.h)
    x = torch.randint(0, 37, (2, 12))
    with torch.no_grad():
        out = model(x)[0]
        later = x.clone()
        later[:, -1] = (later[:, -1] + 1) % 37
        assert not torch.allclose(model(later)[0][:, 0], out[:, 0])  # the first position sees the last one
        real = torch.ones(2, 12, dtype=torch.bool)
        real[:, 8:] = False
        padded = model(x, padding_mask=real)[0]
        other_pad = x.clone()
        other_pad[:, 8:] = 5
        assert torch.allclose(model(other_pad, padding_mask=real)[0][:, :8], padded[:, :8], atol=1e-6)
        assert torch.allclose(model(x[:, :8])[0], padded[:, :8], atol=1e-5)  # padding == a shorter input


def test_alibi_penalises_distance_per_head_and_changes_only_the_scores():
    bias = alibi_bias(4, 6)
    assert bias.shape == (4, 6, 6) and torch.equal(bias, bias.transpose(1, 2))  # symmetric: both directions
    assert torch.all(bias.diagonal(dim1=1, dim2=2) == 0)
    assert torch.allclose(bias[:, 0, 3], -3 * torch.tensor([2 ** -2, 2 ** -4, 2 ** -6, 2 ** -8]))
    torch.manual_seed(0)
    plain, with_alibi = tiny_config(), tiny_config()
    with_alibi.alibi = True
    a, b = BERT(plain).eval(), BERT(with_alibi).eval()
    b.load_state_dict(a.state_dict())  # no new weights
    x = torch.randint(0, 37, (2, 12))
    with torch.no_grad():
        assert not torch.allclose(a(x)[0], b(x)[0])


@pytest.fixture(scope="module")
def bert_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("bert")
    corpus = root / "corpus.txt"
    corpus.write_text(make_corpus(), encoding="utf-8")
    run = root / "run"
    r = run_cli("train", "bert", "--data", str(corpus), "--out", str(run), *TINY, "train.max_steps=40")
    assert r.returncode == 0, r.stderr
    return run


def test_bert_run_learns_and_evaluates(bert_run):
    recs = [json.loads(ln) for ln in (bert_run / "metrics.jsonl").read_text().splitlines()]
    train = [r for r in recs if r["split"] == "train"]
    assert train[-1]["loss"] < train[0]["loss"] and "mlm_accuracy" in train[-1]
    r = run_cli("eval", str(bert_run))
    assert r.returncode == 0, r.stderr
    assert "val_accuracy" in r.stdout and "masked tokens" in r.stdout
    m = json.loads(run_cli("eval", str(bert_run), "--json").stdout)
    pipe = tetragen.load(bert_run)  # the CLI's figures are the pipeline's, computed again in this process
    pipe.config.train.eval_tokens = 0  # as `tetragen eval` without --eval-tokens: the whole split
    again, _ = pipe.evaluate(tetragen.api.load_data(pipe.config, pipe.assets))
    assert m["val_accuracy"] == pytest.approx(again["val_accuracy"]) and m["val_masked_tokens"] > 0
    assert m["val_accuracy"] > 1 / pipe.config.model.vocab_size  # better than a uniform guess
    cfg = json.loads((bert_run / "config.json").read_text())
    tok = json.loads((bert_run / "tokenizer.json").read_text())
    assert tok["special"] == [PAD, MASK, CLS] and cfg["model"]["special_ids"][MASK] == len(tok["vocab"]) + 1


def test_fill_mask_puts_the_predictable_token_first(tmp_path):
    """On a corpus where every character follows from its neighbours (abcde repeated), a briefly trained encoder
    fills each [MASK] with the right character, wherever it falls in the period."""
    corpus = tmp_path / "abcde.txt"
    corpus.write_text("abcde" * 1000, encoding="utf-8")
    run = tmp_path / "run"
    tetragen.train("bert", str(corpus), run, preset="tiny", progress=False,
                   overrides=["train.max_steps=200", "train.batch_size=32", "model.block_size=16",
                              "model.mask_prob=0.5", "train.eval_every=0", "train.save_every=0",
                              "train.eval_tokens=256"])
    mlm = tetragen.load(run)
    for text, want in [("abc[MASK]eab", "d"), ("cdea[MASK]cd", "b"), ("[MASK]bcdea", "a"), ("bcde[MASK]", "a")]:
        [[(token, prob), *_]] = mlm.fill_mask(text, top_k=3)
        assert token == want and prob > 0.5, (text, mlm.fill_mask(text, top_k=3))


def test_fill_mask_cli_and_python_agree(bert_run):
    r = run_cli("fill-mask", str(bert_run), "--text", "ROMEO:\nthe [MASK]nd", "--top-k", "3")
    assert r.returncode == 0, r.stderr
    lines = r.stdout.strip().splitlines()
    assert len(lines) == 3
    probs = [float(ln.split()[0]) for ln in lines]
    assert probs == sorted(probs, reverse=True) and 0 < sum(probs) <= 1.0001
    [top] = tetragen.load(bert_run).fill_mask("ROMEO:\nthe [MASK]nd", top_k=3)  # one list per [MASK]
    assert [json.dumps(t) for t, _ in top] == [ln.split(None, 1)[1] for ln in lines]
    assert all(t not in (PAD, MASK, CLS) for t, _ in top)
    two = tetragen.load(bert_run).fill_mask("[MASK]OMEO: [MASK]", top_k=2)
    assert len(two) == 2 and all(len(c) == 2 for c in two)
    bad = run_cli("fill-mask", str(bert_run), "--text", "no mask here")
    assert bad.returncode == 2 and "[MASK]" in bad.stderr and len(bad.stderr.strip().splitlines()) == 1
    # longer than the context: the window around the [MASK] is read, and the same answer as for that window alone
    block = tetragen.load(bert_run).config.model.block_size
    window = "ROMEO:\nthe [MASK]nd"
    long = run_cli("fill-mask", str(bert_run), "--text", "e" * 3 * block + window, "--top-k", "3")
    assert long.returncode == 0, long.stderr
    assert "tetragen: warning:" in long.stderr and "around its [MASK]s were read" in long.stderr
    with pytest.warns(UserWarning, match="around its"):
        cut = tetragen.load(bert_run)._window(*tetragen.load(bert_run).encode_masked("e" * 3 * block + window), block)
    assert len(cut[0]) == block and cut[0][cut[1][0]] == tetragen.load(bert_run).config.model.special_ids[MASK]
    spread = run_cli("fill-mask", str(bert_run), "--text", "[MASK]" + "e" * 3 * block + "[MASK]")
    assert spread.returncode == 2 and "span" in spread.stderr and len(spread.stderr.strip().splitlines()) == 1
    gpt = run_cli("generate", str(bert_run), "--prompt", "a")
    assert gpt.returncode == 2 and "bert" in gpt.stderr


def test_bert_with_bpe_tokenizer(tmp_path, corpus):
    run = tmp_path / "bpe"
    r = run_cli("train", "bert", "--data", str(corpus), "--out", str(run), *TINY, "train.max_steps=6",
                "data.tokenizer=bpe", "data.vocab_size=300")
    assert r.returncode == 0, r.stderr
    assert json.loads((run / "tokenizer.json").read_text())["model"]["type"] == "BPE"
    [top] = tetragen.load(run).fill_mask("ROMEO: the [MASK] and", top_k=4)
    assert len(top) == 4 and all(0 <= p <= 1 for _, p in top)


def test_a_space_before_mask_belongs_to_the_masked_token_with_byte_level_bpe():
    """Byte-level BPE ids carry a word's leading space, so "king [MASK] to" asks for " word" in one id; a char
    tokenizer keeps the space as the id it is."""
    from types import SimpleNamespace

    from tetragen.data.tokenizer import SPECIAL_TOKENS, CharTokenizer, HFTokenizer
    from tetragen.families.bert.sample import MaskedLM

    text = make_corpus(200)
    for tok, keeps_space in ((HFTokenizer.train([text], 300), False),
                             (CharTokenizer.from_charset(set(text)).with_specials(SPECIAL_TOKENS), True)):
        ids_of = {t: tok.special_id(t) for t in SPECIAL_TOKENS}
        mlm = MaskedLM(torch.nn.Identity(), tok, SimpleNamespace(model=SimpleNamespace(special_ids=ids_of)))
        ids, positions = mlm.encode_masked("the king [MASK] to my")
        left = tok.encode("the king " if keeps_space else "the king")
        assert ids == [ids_of[CLS], *left, ids_of[MASK], *tok.encode(" to my")]
        assert positions == [1 + len(left)]
