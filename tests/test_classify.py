"""BERT sequence classification through the real CLI: `tetragen finetune --task classify` on text,label rows,
`tetragen classify`, `tetragen eval`, and bad input as one-line errors that write nothing."""
from __future__ import annotations

import csv
import json
import random

import pytest
import torch

import tetragen
from tetragen import api
from tetragen.config import build_run_config
from tetragen.train import checkpoint as ck

from .conftest import TINY, make_corpus, one_line_error, run_cli

POS, NEG, FILLER = "good great fine love happy".split(), "bad awful sad hate poor".split(), "the and to of my".split()


def write_rows(path, n=80, seed=0, labels=("pos", "neg"), long_every=0):
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        label = labels[i % len(labels)]
        words = [rng.choice(FILLER) for _ in range(4)] + [rng.choice(POS if label == "pos" else NEG)] * 2
        rng.shuffle(words)
        text = " ".join(words) * (8 if long_every and i % long_every == 0 else 1)
        rows.append({"text": text, "label": label})
    if path.suffix == ".jsonl":
        path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    else:
        with open(path, "w", newline="", encoding="utf-8") as f:
            w = csv.DictWriter(f, fieldnames=["text", "label"])
            w.writeheader()
            w.writerows(rows)
    return path


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    root = tmp_path_factory.mktemp("cls")
    (root / "c.txt").write_text(make_corpus(), encoding="utf-8")
    r = run_cli("train", "bert", "--data", str(root / "c.txt"), "--out", str(root / "mlm"), *TINY,
                "train.max_steps=4")
    assert r.returncode == 0, r.stderr
    write_rows(root / "rows.csv", long_every=10)
    r = finetune(root, root / "rows.csv", "cls", "train.max_steps=60")
    assert r.returncode == 0, r.stderr
    (root / "finetune.stderr").write_text(r.stderr, encoding="utf-8")
    return root


def finetune(root, data, out, *over):
    return run_cli("finetune", str(root / "mlm"), "--task", "classify", "--data", str(data), "--out",
                   str(root / out), "train.warmup_steps=2", "train.eval_every=0", "train.max_steps=4", *over)


def test_classifier_trains_saves_labels_and_evaluates(root):
    run = root / "cls"
    assert json.loads((run / "labels.json").read_text())["labels"] == ["neg", "pos"]
    cfg = json.loads((run / "config.json").read_text())
    assert cfg["model"]["num_labels"] == 2 and cfg["model"]["labels"] == ["neg", "pos"]
    assert cfg["model"]["pooling"] == "first"  # the default: the [CLS] position
    # texts longer than the context were cut, and the run said so
    stderr = (root / "finetune.stderr").read_text(encoding="utf-8")
    assert "truncated" in stderr and "32 tokens" in stderr
    m = json.loads(run_cli("eval", str(run), "--json").stdout)
    assert set(m) >= {"val_loss", "val_accuracy"} and m["val_accuracy"] >= 0.75
    r = run_cli("eval", str(run))
    assert r.returncode == 0 and "val_accuracy" in r.stdout, r.stderr


def test_classify_cli_and_python_agree(root):
    run = root / "cls"
    r = run_cli("classify", str(run), "--text", "my great love", "--json")
    assert r.returncode == 0, r.stderr
    probs = json.loads(r.stdout)
    assert set(probs) == {"neg", "pos"} and abs(sum(probs.values()) - 1) < 1e-5
    py = tetragen.load(run).classify("my great love")
    assert list(py) == list(probs) and all(abs(py[k] - probs[k]) < 1e-6 for k in py)
    plain = run_cli("classify", str(run), "--text", "sad hate")
    assert plain.returncode == 0 and len(plain.stdout.strip().splitlines()) == 2
    long = run_cli("classify", str(run), "--text", "the good " * 40)
    assert long.returncode == 0 and "warning" in long.stderr and "32" in long.stderr
    fill = run_cli("fill-mask", str(run), "--text", "the [MASK]nd")  # the masked-LM head is kept
    assert fill.returncode == 0, fill.stderr


def test_jsonl_rows_and_mean_pooling(root):
    data = write_rows(root / "rows.jsonl", n=40, seed=1)
    r = finetune(root, data, "cls_mean", "model.pooling=mean")
    assert r.returncode == 0, r.stderr
    assert json.loads((root / "cls_mean" / "config.json").read_text())["model"]["pooling"] == "mean"
    assert set(tetragen.load(root / "cls_mean").classify("good")) == {"neg", "pos"}


def test_bad_classification_input_is_one_line_and_writes_nothing(root, tmp_path):
    nolabel = tmp_path / "nolabel.csv"
    nolabel.write_text("text,category\nthe good,pos\nthe bad,neg\n", encoding="utf-8")
    one_line_error(finetune(root, nolabel, "x1"), "'label' column", "category")
    emptylabel = tmp_path / "emptylabel.csv"
    emptylabel.write_text("text,label\nthe good,pos\nthe bad,\n", encoding="utf-8")
    one_line_error(finetune(root, emptylabel, "x2"), "line 3", "empty label")
    empty = tmp_path / "empty.csv"
    empty.write_text("", encoding="utf-8")
    one_line_error(finetune(root, empty, "x3"), "empty")
    header_only = tmp_path / "header.csv"
    header_only.write_text("text,label\n", encoding="utf-8")
    one_line_error(finetune(root, header_only, "x4"), "no rows")
    (tmp_path / "rows.txt").write_text("the good\n", encoding="utf-8")
    one_line_error(finetune(root, tmp_path / "rows.txt", "x5"), ".csv")
    jsonl = tmp_path / "bad.jsonl"
    jsonl.write_text('{"text": "the good", "label": "pos"}\n{"text": "the bad"}\n', encoding="utf-8")
    one_line_error(finetune(root, jsonl, "x6"), "line 2", "label")
    gpt = run_cli("train", "gpt", "--data", str(root / "c.txt"), "--out", str(tmp_path / "gpt"), *TINY,
                  "train.max_steps=1", "train.warmup_steps=0")
    assert gpt.returncode == 0, gpt.stderr
    one_line_error(run_cli("finetune", str(tmp_path / "gpt"), "--task", "classify", "--data",
                           str(root / "rows.csv"), "--out", str(root / "x7")), "bert")
    for name in ("x1", "x2", "x3", "x4", "x5", "x6", "x7"):
        assert not (root / name).exists()
    one_line_error(run_cli("classify", str(root / "mlm"), "--text", "good"), "--task classify")


def test_labels_unseen_in_training_are_refused_at_eval(root, tmp_path):
    other = write_rows(tmp_path / "other.csv", n=20, labels=("pos", "neg", "meh"))
    one_line_error(run_cli("eval", str(root / "cls"), "--data", str(other)), "'meh'", "not seen in training")
    same = write_rows(tmp_path / "same.csv", n=20, seed=3)
    r = run_cli("eval", str(root / "cls"), "--data", str(same), "--json")
    assert r.returncode == 0, r.stderr
    pipe = tetragen.load(root / "cls")
    pipe.config.data.source = str(same)
    again, _ = pipe.evaluate(tetragen.api.load_data(pipe.config, pipe.assets))
    assert json.loads(r.stdout)["val_accuracy"] == pytest.approx(again["val_accuracy"])


def with_split(path, train_seed=0, test_seed=5, n_train=60, n_test=16):
    """A CSV whose split column fixes the split: training rows from one draw, test rows from another."""
    train, test = write_rows(path.with_name("tr.csv"), n=n_train, seed=train_seed), write_rows(
        path.with_name("te.csv"), n=n_test, seed=test_seed)
    rows = [{**r, "split": split} for split, src in (("train", train), ("test", test))
            for r in csv.DictReader(open(src, newline="", encoding="utf-8"))]
    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.DictWriter(f, fieldnames=["text", "label", "split"])
        w.writeheader()
        w.writerows(rows)
    return path


def test_split_column_fixes_the_evaluated_rows(root, tmp_path):
    data = with_split(tmp_path / "split.csv")
    r = finetune(root, data, "cls_split", "train.max_steps=3")
    assert r.returncode == 0, r.stderr
    m = json.loads(run_cli("eval", str(root / "cls_split"), "--json").stdout)
    assert m["val_examples"] == 16  # exactly the test rows
    only_test = tmp_path / "only_test.csv"
    only_test.write_text("text,label,split\nthe good,pos,test\nthe bad,neg,test\nsad hate,neg,test\n",
                         encoding="utf-8")
    m = json.loads(run_cli("eval", str(root / "cls_split"), "--data", str(only_test), "--json").stdout)
    assert m["val_examples"] == 3
    bad = tmp_path / "bad_split.csv"
    bad.write_text("text,label,split\nthe good,pos,train\nthe bad,neg,dev\n", encoding="utf-8")
    one_line_error(finetune(root, bad, "x1"), "line 3", "'dev'")
    one_line_error(finetune(root, only_test, "x2"), "no row has split train")
    mixed = tmp_path / "mixed.jsonl"
    mixed.write_text('{"text": "good", "label": "pos", "split": "train"}\n{"text": "bad", "label": "neg"}\n',
                     encoding="utf-8")
    one_line_error(finetune(root, mixed, "x3"), "line 2", "'split'")
    assert not any((root / n).exists() for n in ("x1", "x2", "x3"))


def test_classifier_from_scratch_has_the_fine_tuned_shape(root, tmp_path):
    run = tmp_path / "scratch"
    r = run_cli("train", "bert", "--task", "classify", "--data", str(root / "rows.csv"), "--out", str(run), *TINY,
                f"data.tokenizer={root / 'mlm' / 'tokenizer.json'}", "train.max_steps=60", "train.warmup_steps=2",
                "train.eval_every=0")
    assert r.returncode == 0, r.stderr
    scratch, tuned = (json.loads((p / "config.json").read_text())["model"] for p in (run, root / "cls"))
    assert scratch == tuned  # the same model: only the starting weights differ
    assert json.loads((run / "config.json").read_text())["finetune"]["init_from"] == ""
    assert json.loads(run_cli("eval", str(run), "--json").stdout)["val_accuracy"] >= 0.75
    # a resumed classifier goes on as one
    r = run_cli("train", "bert", "--task", "classify", "--data", str(root / "rows.csv"), "--out", str(run),
                "--resume", "train.max_steps=62")
    assert r.returncode == 0 and json.loads((run / "config.json").read_text())["model"]["num_labels"] == 2, r.stderr
    # with no tokenizer given, the characters of the rows' texts
    cfg = build_run_config("bert", preset="tiny")
    cfg.data.source = str(root / "rows.csv")
    data = api.load_data(cfg, task="classify")
    assert set(data.tokenizer.chars[1:]) == set("".join(POS + NEG + FILLER) + " ")
    assert cfg.model.labels == ["neg", "pos"] and cfg.model.vocab_size == data.tokenizer.vocab_size
    one_line_error(run_cli("train", "gpt", "--task", "classify", "--data", str(root / "rows.csv"), "--out",
                           str(tmp_path / "x"), *TINY), "--task classify", "bert")
    one_line_error(run_cli("train", "bert", "--task", "classify", "--data", str(root / "rows.csv"), "--out",
                           str(tmp_path / "x"), *TINY, "data.tokenizer=bpe"), "data.tokenizer=bpe")
    assert not (tmp_path / "x").exists()


def test_lora_classifier_trains_adapters_and_its_head(root):
    r = finetune(root, root / "rows.csv", "cls_lora", "finetune.method=lora", "finetune.lora_save=adapter",
                 "train.max_steps=40", "train.lr=1e-2")
    assert r.returncode == 0, r.stderr
    out = root / "cls_lora"
    saved = ck.read_tensors(out / "adapter.safetensors")
    assert {k for k in saved if ".lora_" not in k} == {"classifier.weight", "classifier.bias"}
    base = ck.read_tensors(root / "mlm" / "model.safetensors")
    merged = tetragen.load(out)  # the base run's weights + the adapter + the head
    with_adapters = tetragen.load(ck.step_dirs(out)[-1])
    x = torch.randint(0, merged.model.config.vocab_size, (2, 12))
    with torch.no_grad():
        assert torch.allclose(merged.model(x, classify=True)[0], with_adapters.model(x, classify=True)[0],
                              atol=1e-5)
    state = merged.model.state_dict()
    assert torch.equal(state["encoder.wte.weight"], base["encoder.wte.weight"])  # frozen, not adapted
    assert json.loads(run_cli("eval", str(out), "--json").stdout)["val_accuracy"] >= 0.75


def test_head_method_trains_the_classifier_alone_on_the_frozen_encoder(root, tmp_path):
    r = finetune(root, root / "rows.csv", "cls_head", "finetune.method=head", "model.pooling=mean",
                 "train.max_steps=40", "train.lr=1e-1")
    assert r.returncode == 0, r.stderr
    base = ck.read_tensors(root / "mlm" / "model.safetensors")
    tuned = ck.read_tensors(root / "cls_head" / "model.safetensors")
    assert set(tuned) == set(base) | {"classifier.weight", "classifier.bias"}
    assert all(torch.equal(tuned[k], base[k]) for k in base)  # every encoder weight as pre-trained
    assert json.loads(run_cli("eval", str(root / "cls_head"), "--json").stdout)["val_accuracy"] >= 0.75
    # a fine-tune with no task head has nothing to train
    mlm = run_cli("finetune", str(root / "mlm"), "--data", str(root / "c.txt"), "--out", str(tmp_path / "x"),
                  "finetune.method=head", "train.max_steps=4")
    one_line_error(mlm, "finetune.method=head", "--task classify")
    assert not (tmp_path / "x").exists()
