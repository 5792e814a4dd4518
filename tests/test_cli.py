"""The CLI through its real entry point: train -> generate -> eval, and the Python API beside it."""
import json
import subprocess
import sys

import pytest

import tetragen
from tests import conftest
from tests.conftest import TINY


def run_cli(*args, **kwargs):
    """These tests are about the real entry point: each command runs as `python -m tetragen` in a new process."""
    return conftest.run_cli(*args, process=True, **kwargs)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    from tests.conftest import make_corpus
    root = tmp_path_factory.mktemp("cli")
    corpus = root / "corpus.txt"
    corpus.write_text(make_corpus(), encoding="utf-8")
    run = root / "run"
    r = run_cli("train", "gpt", "--data", str(corpus), "--out", str(run), *TINY, "train.max_steps=30")
    assert r.returncode == 0, r.stderr
    done = r.stderr.strip().splitlines()[-1]
    assert " val_loss " in done and " val_bpc " in done and "val_tokens" not in done, done
    return run


def test_train_writes_a_complete_run(trained):
    for name in ["config.json", "model.safetensors", "tokenizer.json", "metrics.jsonl"]:
        assert (trained / name).is_file(), name
    cfg = json.loads((trained / "config.json").read_text())
    assert cfg["family"] == "gpt" and cfg["model"]["vocab_size"] > 1
    recs = [json.loads(ln) for ln in (trained / "metrics.jsonl").read_text().splitlines()]
    train = [r for r in recs if r["split"] == "train"]
    assert train[-1]["loss"] < train[0]["loss"]
    assert all(r["throughput"] > 0 for r in train)


def test_generate_is_seeded_and_echoes_prompt(trained):
    args = ["generate", str(trained), "--prompt", "ROMEO:", "--max-new-tokens", "40", "--seed", "3"]
    a, b = run_cli(*args), run_cli(*args)
    assert a.returncode == 0, a.stderr
    assert a.stdout == b.stdout and a.stdout.startswith("ROMEO:")
    assert len(a.stdout.rstrip("\n")) == len("ROMEO:") + 40
    c = run_cli(*args[:-1], "4")
    assert c.stdout != a.stdout


def test_generate_stop_text_ends_early(trained):
    gen = tetragen.load(trained)
    free = gen.generate("ROMEO:", 200, seed=1)
    stop = free[5:8]  # text known to appear in this sample
    cut = gen.generate("ROMEO:", 200, seed=1, stop=stop)
    assert stop not in cut and free.startswith(cut) and len(cut) < len(free)
    r = run_cli("generate", str(trained), "--prompt", "ROMEO:", "--max-new-tokens", "200", "--seed", "1",
                "--stop", stop, "--no-echo")
    assert r.stdout.rstrip("\n") == cut


def test_cache_and_no_cache_agree_within_the_context(trained):
    gen = tetragen.load(trained)
    n = gen.config.model.block_size - 8  # stays inside one window, where both paths see the same context
    assert gen.generate("JULIET:", n, seed=2, use_cache=True) == gen.generate("JULIET:", n, seed=2, use_cache=False)


def test_greedy_filters_agree(trained):
    gen = tetragen.load(trained)
    greedy = gen.generate("NURSE:", 30, temperature=0)
    assert gen.generate("NURSE:", 30, top_k=1, seed=9) == greedy
    assert gen.generate("NURSE:", 30, top_p=1e-6, seed=9) == greedy
    assert gen.generate("NURSE:", 30, min_p=0.999, seed=9) == greedy


def test_generate_streams_tokens_as_they_come(trained):
    proc = subprocess.Popen([sys.executable, "-m", "tetragen", "generate", str(trained), "--prompt", "A",
                             "--max-new-tokens", "20000", "--seed", "1"], stdout=subprocess.PIPE)
    try:
        first = proc.stdout.read(1)
        assert first == b"A"
        assert proc.poll() is None, "all output came only at the end"
    finally:
        proc.kill()
        proc.wait()


def test_eval_prints_loss_and_bits_per_char(trained):
    r = run_cli("eval", str(trained), "--json")
    assert r.returncode == 0, r.stderr
    m = json.loads(r.stdout)
    assert 0 < m["val_loss"] < 5 and m["val_bpc"] == pytest.approx(m["val_loss"] / 0.6931471805599453)
    full = run_cli("eval", str(trained))
    assert "val_loss" in full.stdout and "bits/char" in full.stdout and "full validation split" in full.stdout


def test_ls_and_print_config():
    r = run_cli("ls")
    assert r.returncode == 0 and any(line.startswith("gpt ") for line in r.stdout.splitlines())
    r = run_cli("train", "gpt", "--print-config", "--preset", "small", "train.lr=3e-4", "model.n_layer=3")
    cfg = json.loads(r.stdout)
    assert cfg["train"]["lr"] == 3e-4 and cfg["model"]["n_layer"] == 3 and cfg["model"]["n_embd"] == 384


def test_resume_extends_a_finished_run(trained, tmp_path):
    import shutil
    run = tmp_path / "run"
    shutil.copytree(trained, run)
    r = run_cli("train", "gpt", "--out", str(run), "--resume", "train.max_steps=40")
    assert r.returncode == 0, r.stderr
    steps = [json.loads(ln)["step"] for ln in (run / "metrics.jsonl").read_text().splitlines()]
    assert max(steps) == 40
