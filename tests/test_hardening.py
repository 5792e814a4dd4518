"""The run folder under stress: signals, a second writer, unwritable or foreign folders, kills inside a folder
replace, damaged logs, and resume with changed optimizer settings."""
import json
import os
import signal
import subprocess
import sys
import time

import pytest
import torch

import tetragen
from tetragen import files
from tetragen.api import load_data
from tetragen.config import build_run_config
from tetragen.errors import UserError
from tetragen.train import checkpoint as ck
from tetragen.train.trainer import Trainer

from .conftest import ONE_THREAD_ENV, TINY, in_process, one_line_error, run_cli

RUNNING = ["--preset", "tiny", "model.n_embd=64", "model.block_size=64", "train.batch_size=16", "train.max_steps=60",
           "train.save_every=20", "train.eval_every=0", "train.eval_tokens=256", "train.warmup_steps=5",
           "model.dropout=0.1"]


def train_cmd(corpus, out, *extra):
    return [sys.executable, "-m", "tetragen", "train", "gpt", "--data", str(corpus), "--out", str(out), *RUNNING,
            *extra]


def wait_for(path, proc, timeout=120):
    deadline = time.time() + timeout
    while not path.exists():
        assert proc.poll() is None, proc.communicate()
        assert time.time() < deadline, f"{path} never appeared"
        time.sleep(0.01)


def tiny(corpus, *overrides):
    cfg = build_run_config("gpt", preset="tiny", overrides=["train.eval_tokens=256", *overrides])
    cfg.data.source = str(corpus)
    return cfg, load_data(cfg)


def test_sigterm_finishes_the_step_saves_and_resumes_bitwise(corpus, tmp_path):
    env = {**os.environ, **ONE_THREAD_ENV}
    straight = in_process(train_cmd(corpus, tmp_path / "a"))
    assert straight.returncode == 0, straight.stderr
    proc = subprocess.Popen(train_cmd(corpus, tmp_path / "b"), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env=env)
    wait_for(tmp_path / "b" / "checkpoints" / "step_00000020", proc)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 143, err
    assert "--resume" in err and "Traceback" not in err
    stopped = ck.step_dirs(tmp_path / "b")[-1]
    assert "step_00000020" <= stopped.name < "step_00000060", "the stop came after the end"
    resumed = in_process(train_cmd(corpus, tmp_path / "b", "--resume"))
    assert resumed.returncode == 0, resumed.stderr
    assert (tmp_path / "a" / "model.safetensors").read_bytes() == (tmp_path / "b" / "model.safetensors").read_bytes()


def test_a_second_writer_is_refused_naming_the_first(corpus, tmp_path):
    proc = subprocess.Popen(train_cmd(corpus, tmp_path / "run", "train.max_steps=100000"),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for(tmp_path / "run" / "config.json", proc)
        second = run_cli("train", "gpt", "--data", str(corpus), "--out", str(tmp_path / "run"), "--resume", *TINY)
        one_line_error(second, str(tmp_path / "run"), f"pid {proc.pid}")
        assert proc.poll() is None, "the first writer was disturbed"
    finally:
        proc.kill()
        proc.wait()
    # the kernel released the lock with the process: the run can be resumed now
    cfg, data = tiny(corpus, *RUNNING[2:], "train.max_steps=100000")
    Trainer(cfg, data, tmp_path / "run", resume=True, progress=False).close()


def test_an_unwritable_out_is_one_line(corpus, tmp_path):
    one_line_error(run_cli("train", "gpt", "--data", str(corpus), "--out", "/proc/tetragen-run", *TINY),
                   "/proc/tetragen-run", "cannot create")
    (tmp_path / "file").write_text("x")
    one_line_error(run_cli("train", "gpt", "--data", str(corpus), "--out", str(tmp_path / "file" / "run"), *TINY),
                   "cannot create")


def test_overwrite_deletes_only_what_tetragen_wrote(corpus, tmp_path):
    run = tmp_path / "run"
    args = ["train", "gpt", "--data", str(corpus), "--out", str(run), *TINY, "train.max_steps=2",
            "train.warmup_steps=0"]
    assert run_cli(*args).returncode == 0
    (run / "notes.txt").write_text("mine")
    before = sorted(p.name for p in run.iterdir())
    one_line_error(run_cli(*args, "--overwrite"), "notes.txt")
    assert sorted(p.name for p in run.iterdir()) == before and (run / "notes.txt").read_text() == "mine"
    (run / "notes.txt").unlink()
    assert run_cli(*args, "--overwrite").returncode == 0
    # an export's --overwrite replaces only an earlier export
    assert run_cli("export", str(run), "--out", str(tmp_path / "hf")).returncode == 0
    assert run_cli("export", str(run), "--out", str(tmp_path / "hf"), "--overwrite").returncode == 0
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "a.txt").write_text("keep")
    one_line_error(run_cli("export", str(run), "--out", str(tmp_path / "mine"), "--overwrite"), "export")
    assert (tmp_path / "mine" / "a.txt").read_text() == "keep"


@pytest.mark.parametrize("kill_at", ["first rename", "second rename", "clean-up"])
def test_a_kill_inside_a_folder_replace_never_loses_the_folder(tmp_path, monkeypatch, kill_at):
    """Fault injection at each step of write_folder_atomically (old aside, new in, old deleted): after recovery
    exactly one whole folder is there, the old one until the new one was in place."""
    final = tmp_path / "checkpoints" / "best"
    files.write_folder_atomically(final, lambda d: (d / "v").write_text("old"))
    real_replace, real_rmtree, calls = os.replace, files.shutil.rmtree, {"n": 0}

    def replace(src, dst):
        calls["n"] += 1
        if (kill_at, calls["n"]) in (("first rename", 1), ("second rename", 2)):
            raise SystemExit("killed")
        return real_replace(src, dst)

    def rmtree(path, *a, **k):
        if kill_at == "clean-up" and ".old-" in str(path):
            raise SystemExit("killed")
        return real_rmtree(path, *a, **k)
    monkeypatch.setattr(files.os, "replace", replace)
    monkeypatch.setattr(files.shutil, "rmtree", rmtree)
    with pytest.raises(SystemExit):
        files.write_folder_atomically(final, lambda d: (d / "v").write_text("new"))
    monkeypatch.undo()
    files.recover_folders(final.parent)
    assert [p.name for p in final.parent.iterdir()] == ["best"]
    assert (final / "v").read_text() == ("new" if kill_at == "clean-up" else "old")


def test_a_truncated_metrics_line_does_not_stop_a_resume(corpus, tmp_path):
    cfg, data = tiny(corpus, "train.max_steps=6", "train.save_every=3", "train.log_every=1")
    Trainer(cfg, data, tmp_path / "run", progress=False).fit()
    with open(tmp_path / "run" / "metrics.jsonl", "a", encoding="utf-8") as f:
        f.write('{"step": 7, "split": "tr')  # a kill in the middle of a line
    cfg, data = tiny(corpus, "train.max_steps=8", "train.save_every=3", "train.log_every=1")
    Trainer(cfg, data, tmp_path / "run", resume=True, progress=False).fit()
    steps = [json.loads(ln)["step"] for ln in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert steps[-1] == 8


def test_resume_takes_new_optimizer_settings_and_refuses_another_optimizer(corpus, tmp_path):
    cfg, data = tiny(corpus, "train.max_steps=4", "train.save_every=2")
    Trainer(cfg, data, tmp_path / "run", progress=False).fit()
    cfg, data = tiny(corpus, "train.max_steps=6", "train.save_every=2", "train.weight_decay=0.5", "train.beta2=0.9")
    resumed = Trainer(cfg, data, tmp_path / "run", resume=True, progress=False)
    groups = resumed.optimizers["main"].param_groups
    assert {g["weight_decay"] for g in groups} == {0.5, 0.0} and {g["betas"] for g in groups} == {(0.9, 0.9)}
    assert resumed.optimizers["main"].state, "the moments were restored"
    resumed.close()
    cfg, data = tiny(corpus, "train.max_steps=6", "train.optimizer=muon")
    with pytest.raises(UserError, match="trained with adamw"):
        Trainer(cfg, data, tmp_path / "run", resume=True, progress=False)
    r = run_cli("train", "gpt", "--data", str(corpus), "--out", str(tmp_path / "run"), "--resume", *TINY,
                "train.optimizer=muon", "train.max_steps=6")
    one_line_error(r, "train.optimizer")


def test_a_one_class_folder_says_at_start_what_it_will_not_report(tmp_path):
    from .conftest import make_image_folder
    root = make_image_folder(tmp_path / "all")
    flat = tmp_path / "flat"
    flat.mkdir()
    for p in root.rglob("*.png"):
        p.rename(flat / f"{p.parent.name}-{p.name}")
    r = run_cli("train", "dcgan", "--data", str(flat), "--out", str(tmp_path / "run"), "--preset", "tiny",
                "train.max_steps=2", "train.eval_samples=16", "train.eval_every=1")
    assert r.returncode == 0, r.stderr
    assert "one class" in r.stderr and "no FID" in r.stderr
    assert torch.isfinite(torch.tensor(json.loads(
        (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()[-1]).get("loss", 0.0)))
    assert tetragen.load(tmp_path / "run").sample(2, seed=0).shape[0] == 2
