"""Fine-tuning through the CLI: full and LoRA (merged or as an adapter), and bad input as one-line errors."""
from __future__ import annotations

import json

import pytest
import torch

import tetragen
from tetragen.train import checkpoint as ck

from .conftest import TINY, make_corpus, run_cli


@pytest.fixture(scope="module")
def base(tmp_path_factory):
    root = tmp_path_factory.mktemp("ft")
    (root / "a.txt").write_text(make_corpus(seed=0), encoding="utf-8")
    (root / "b.txt").write_text(make_corpus(300, seed=1), encoding="utf-8")
    r = run_cli("train", "gpt", "--data", str(root / "a.txt"), "--out", str(root / "base"), *TINY,
                "train.max_steps=20")
    assert r.returncode == 0, r.stderr
    return root


def finetune(root, out, *over):
    return run_cli("finetune", str(root / "base"), "--data", str(root / "b.txt"), "--out", str(root / out),
                   "train.max_steps=6", "train.warmup_steps=1", "train.eval_tokens=256", *over)


def one_line_error(r, *needles):
    assert r.returncode == 2, r.stderr
    assert len(r.stderr.strip().splitlines()) == 1 and "Traceback" not in r.stderr, r.stderr
    for n in needles:
        assert n in r.stderr, r.stderr


def test_full_finetune_starts_from_the_run(base):
    r = finetune(base, "nolr", "train.lr=1e-12", "train.min_lr=0", "train.max_steps=1", "train.warmup_steps=0")
    assert r.returncode == 0, r.stderr
    a, b = ck.read_tensors(base / "base" / "model.safetensors"), ck.read_tensors(base / "nolr" / "model.safetensors")
    assert a.keys() == b.keys() and all(torch.allclose(a[k], b[k], atol=1e-6) for k in a)
    cfg = json.loads((base / "nolr" / "config.json").read_text())
    assert cfg["finetune"]["init_from"].endswith("model.safetensors") and cfg["train"]["max_steps"] == 1
    assert (base / "nolr" / "tokenizer.json").read_text() == (base / "base" / "tokenizer.json").read_text()


def test_lora_merged_trains_only_the_targets(base):
    r = finetune(base, "merged", "finetune.method=lora", "finetune.lora_rank=4", "finetune.lora_targets=c_attn",
                 "train.lr=1e-2")
    assert r.returncode == 0, r.stderr
    a, b = ck.read_tensors(base / "base" / "model.safetensors"), ck.read_tensors(base / "merged" / "model.safetensors")
    assert a.keys() == b.keys()  # plain weights: loadable as any run
    changed = {k for k in a if not torch.equal(a[k], b[k])}
    assert changed and all(k.endswith("c_attn.weight") for k in changed)
    gen = tetragen.load(base / "merged")
    assert len(gen.generate("ROMEO:", 20, seed=1)) == 20


def test_lora_adapter_is_loadable_and_equals_the_lora_model(base):
    r = finetune(base, "adapter", "finetune.method=lora", "finetune.lora_save=adapter", "train.lr=1e-2")
    assert r.returncode == 0, r.stderr
    out = base / "adapter"
    assert (out / "adapter.safetensors").is_file() and not (out / "model.safetensors").exists()
    doc = json.loads((out / "adapter.json").read_text())
    assert doc["targets"] == ["c_attn", "c_proj"] and doc["rank"] == 8
    assert all(".lora_" in k for k in ck.read_tensors(out / "adapter.safetensors"))
    merged = tetragen.load(out)
    with_adapters = tetragen.load(ck.step_dirs(out)[-1])  # the checkpoint keeps the LoRA-structured model
    x = torch.randint(0, merged.model.config.vocab_size, (2, 16))
    with torch.no_grad():
        assert torch.allclose(merged.model(x)[0], with_adapters.model(x)[0], atol=1e-5)
    r = run_cli("eval", str(out), "--json")
    assert r.returncode == 0 and json.loads(r.stdout)["val_bpc"] > 0


def test_bad_finetune_input_is_one_line_and_writes_nothing(base, tmp_path):
    one_line_error(finetune(base, "x1", "finetune.method=lora", "finetune.lora_targets=c_attn,q_proj"),
                   "finetune.lora_targets", "q_proj", "c_fc")
    one_line_error(finetune(base, "x2", "model.n_layer=3"), "model.safetensors")
    other = tmp_path / "other_tok"
    assert run_cli("tokenizer", "train", "--data", str(base / "b.txt"), "--vocab-size", "300",
                   "--out", str(other)).returncode == 0
    one_line_error(finetune(base, "x3", f"data.tokenizer={other / 'tokenizer.json'}"), "vocab_size")
    one_line_error(finetune(base, "x4", "finetune.method=sgd"), "finetune.method")
    for name in ("x1", "x2", "x3", "x4"):
        assert not (base / name).exists()
    r = run_cli("finetune", str(base / "base"), "--data", str(base / "b.txt"), "--out", str(base / "base"))
    one_line_error(r, "--out")
    # a failed --overwrite leaves the earlier run whole
    assert finetune(base, "keep", "train.max_steps=2").returncode == 0
    before = sorted(p.name for p in (base / "keep").iterdir())
    one_line_error(finetune(base, "keep", "--overwrite", "finetune.method=lora", "finetune.lora_targets=nope"),
                   "nope")
    assert sorted(p.name for p in (base / "keep").iterdir()) == before
