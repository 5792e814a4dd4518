"""Hugging Face interop, offline: `tetragen export --format hf` loads in transformers with the same logits and
tokens; `tetragen train gpt --init-from` starts from a GPT-2 folder made by transformers; bad folders are one-line
errors that write nothing."""
from __future__ import annotations

import json

import pytest
import torch

import tetragen

from .conftest import TINY, make_corpus, one_line_error, run_cli

transformers = pytest.importorskip("transformers")
OFFLINE = {"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}


@pytest.fixture(autouse=True)
def _offline(monkeypatch):
    for k, v in OFFLINE.items():
        monkeypatch.setenv(k, v)


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("hf")
    (root / "c.txt").write_text(make_corpus(), encoding="utf-8")
    for name, extra in (("char", []), ("bpe", ["data.tokenizer=bpe", "data.vocab_size=300", "model.bias=true"]),
                        ("exact", ["model.activation=gelu"])):
        r = run_cli("train", "gpt", "--data", str(root / "c.txt"), "--out", str(root / name), *TINY,
                    "train.max_steps=3", *extra)
        assert r.returncode == 0, r.stderr
    return root


@pytest.mark.parametrize("kind", ["char", "bpe", "exact"])
def test_export_loads_in_transformers_with_the_same_logits(runs, kind):
    out = runs / f"hf_{kind}"
    r = run_cli("export", str(runs / kind), "--format", "hf", "--out", str(out))
    assert r.returncode == 0, r.stderr
    hf_model = transformers.GPT2LMHeadModel.from_pretrained(str(out)).eval()
    hf_tok = transformers.AutoTokenizer.from_pretrained(str(out))
    ours = tetragen.load(runs / kind)
    text = "ROMEO:\nthe and to my thou. Zé"  # 'Z' and 'é' are not in the corpus
    ids = ours.tokenizer.encode(text)
    assert hf_tok(text)["input_ids"] == ids
    assert hf_tok.decode(ids) == ours.tokenizer.decode(ids)
    x = torch.tensor([ids[:32]])
    with torch.no_grad():
        diff = (hf_model(x).logits - ours.model(x)[0]).abs().max().item()
    assert diff <= 1e-4
    assert hf_model.config.n_positions == ours.config.model.block_size
    # an existing export is replaced only with --overwrite; a run folder never
    one_line_error(run_cli("export", str(runs / kind), "--out", str(out)), "--overwrite")
    assert run_cli("export", str(runs / kind), "--out", str(out), "--overwrite").returncode == 0
    one_line_error(run_cli("export", str(runs / kind), "--out", str(runs / "char"), "--overwrite"), "tetragen run")
    one_line_error(run_cli("export", str(runs / kind), "--format", "onnx", "--out", str(runs / "x")), "--format")


def tiny_gpt2(folder, vocab_size, seed=0, activation="gelu_new"):
    """A randomly initialised GPT-2 (biases and LayerNorms random too), saved as transformers saves it."""
    torch.manual_seed(seed)
    config = transformers.GPT2Config(vocab_size=vocab_size, n_positions=32, n_embd=32, n_layer=2, n_head=2,
                                     bos_token_id=None, eos_token_id=None, activation_function=activation)
    model = transformers.GPT2LMHeadModel(config).eval()
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.05)
    model.save_pretrained(str(folder), safe_serialization=True)
    return model


@pytest.mark.parametrize("activation,ours_name", [("gelu_new", "gelu_tanh"), ("gelu", "gelu")])
def test_init_from_a_transformers_gpt2(runs, tmp_path, activation, ours_name):
    vocab = tetragen.load(runs / "char").tokenizer.vocab_size
    hf_model = tiny_gpt2(tmp_path / "gpt2", vocab, activation=activation)
    out = tmp_path / "run"
    r = run_cli("train", "gpt", "--data", str(runs / "c.txt"), "--out", str(out), "--init-from",
                str(tmp_path / "gpt2"), *TINY, "train.max_steps=1", "train.warmup_steps=0", "train.lr=1e-12",
                "train.min_lr=0")
    assert r.returncode == 0, r.stderr
    cfg = json.loads((out / "config.json").read_text())
    assert cfg["model"]["n_embd"] == 32 and cfg["model"]["bias"] is True and cfg["model"]["activation"] == ours_name
    assert cfg["finetune"]["init_from"] == str((tmp_path / "gpt2").resolve())
    ours = tetragen.load(out)
    x = torch.randint(0, vocab, (2, 32))
    with torch.no_grad():
        assert (hf_model(x).logits - ours.model(x)[0]).abs().max().item() <= 1e-4


def test_export_then_init_from_round_trips_with_the_tokenizer(runs, tmp_path):
    hf = tmp_path / "hf"
    assert run_cli("export", str(runs / "char"), "--out", str(hf)).returncode == 0
    out = tmp_path / "again"
    r = run_cli("train", "gpt", "--data", str(runs / "c.txt"), "--out", str(out), "--init-from", str(hf), *TINY,
                "train.max_steps=1", "train.warmup_steps=0", "train.lr=1e-12", "train.min_lr=0")
    assert r.returncode == 0, r.stderr
    a, b = tetragen.load(runs / "char"), tetragen.load(out)
    text = "JULIET:\nmy the"
    assert b.tokenizer.encode(text) == a.tokenizer.encode(text)
    x = torch.tensor([a.tokenizer.encode(text)])
    with torch.no_grad():
        assert (a.model(x)[0] - b.model(x)[0]).abs().max().item() <= 1e-4


def test_bad_init_from_folders_are_one_line_errors_and_write_nothing(runs, tmp_path):
    def train(folder, out="out", *extra):
        return run_cli("train", "gpt", "--data", str(runs / "c.txt"), "--out", str(tmp_path / out),
                       "--init-from", str(folder), *TINY, "train.max_steps=1", "train.warmup_steps=0", *extra)
    vocab = tetragen.load(runs / "char").tokenizer.vocab_size
    one_line_error(train(tmp_path / "nowhere"), "no such folder")
    (tmp_path / "empty").mkdir()
    one_line_error(train(tmp_path / "empty"), "config.json")
    tiny_gpt2(tmp_path / "noweights", vocab)
    (tmp_path / "noweights" / "model.safetensors").unlink()
    one_line_error(train(tmp_path / "noweights"), "model.safetensors")
    bert = tmp_path / "bert"
    transformers.BertConfig(vocab_size=vocab, hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                            intermediate_size=64).save_pretrained(str(bert))
    one_line_error(train(bert), "bert", "GPT-2")
    tiny_gpt2(tmp_path / "bigvocab", vocab + 7)
    one_line_error(train(tmp_path / "bigvocab"), "vocab_size", str(vocab + 7), str(vocab))
    one_line_error(run_cli("train", "bert", "--data", str(runs / "c.txt"), "--out", str(tmp_path / "out"),
                           "--init-from", str(tmp_path / "bigvocab"), *TINY), "gpt")
    assert not (tmp_path / "out").exists()
    # a failed --overwrite leaves the earlier run whole
    keep = runs / "char"
    before = {p.name: p.stat().st_mtime_ns for p in keep.iterdir()}
    one_line_error(run_cli("train", "gpt", "--data", str(runs / "c.txt"), "--out", str(keep), "--overwrite",
                           "--init-from", str(tmp_path / "bigvocab"), *TINY), "vocab_size")
    assert {p.name: p.stat().st_mtime_ns for p in keep.iterdir()} == before
