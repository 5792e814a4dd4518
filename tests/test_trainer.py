"""The trainer's guarantees: exact resume after SIGKILL, atomic checkpoints, non-finite steps, EMA, logs."""
import json
import sys

import pytest
import torch

import tetragen
from tetragen.api import load_data
from tetragen.config import build_run_config
from tetragen.errors import TrainingError, UserError
from tetragen.train import checkpoint as ck
from tetragen.train.optim import make_optimizer
from tetragen.train.trainer import Trainer

from .conftest import in_process, kill_after_checkpoint

# big enough that a run takes a few seconds, so it can be killed in the middle
KILLABLE = ["--preset", "tiny", "model.n_embd=64", "model.block_size=64", "model.dropout=0.1", "train.batch_size=16",
            "train.max_steps=60", "train.save_every=10", "train.eval_every=25", "train.eval_tokens=256",
            "train.warmup_steps=10", "train.seed=7"]


def tiny(corpus, *overrides):
    cfg = build_run_config("gpt", preset="tiny", overrides=["train.eval_tokens=256", *overrides])
    cfg.data.source = str(corpus)
    return cfg, load_data(cfg)


def train_cmd(corpus, out, *extra):
    return [sys.executable, "-m", "tetragen", "train", "gpt", "--data", str(corpus), "--out", str(out),
            *KILLABLE, *extra]


def test_sigkill_then_resume_is_bitwise_identical_to_uninterrupted(corpus, tmp_path):
    straight = in_process(train_cmd(corpus, tmp_path / "a"))
    assert straight.returncode == 0, straight.stderr

    kill_after_checkpoint(train_cmd(corpus, tmp_path / "b"), tmp_path / "b", 20, 60)

    resumed = in_process(train_cmd(corpus, tmp_path / "b", "--resume"))
    assert resumed.returncode == 0, resumed.stderr
    assert "resuming" in resumed.stderr
    assert (tmp_path / "a" / "model.safetensors").read_bytes() == (tmp_path / "b" / "model.safetensors").read_bytes()
    steps = [json.loads(ln)["step"] for ln in (tmp_path / "b" / "metrics.jsonl").read_text().splitlines()
             if json.loads(ln)["split"] == "train"]
    assert steps == sorted(steps) and len(steps) == len(set(steps)), "metrics after the checkpoint are not doubled"


def test_kill_during_save_leaves_previous_checkpoint(corpus, tmp_path, monkeypatch):
    cfg, data = tiny(corpus, "train.max_steps=10", "train.save_every=5")
    trainer = Trainer(cfg, data, tmp_path / "run", progress=False)
    real = ck.save_tensors
    calls = {"n": 0}

    def dies_in_second_save(tensors, path, metadata=None):
        if "step_00000010" in str(path):
            calls["n"] += 1
            if calls["n"] == 2:  # after the weights, while writing the optimizer state
                raise SystemExit("killed")
        return real(tensors, path, metadata)
    monkeypatch.setattr(ck, "save_tensors", dies_in_second_save)
    with pytest.raises(SystemExit):
        trainer.fit()
    monkeypatch.setattr(ck, "save_tensors", real)
    assert [p.name for p in ck.step_dirs(tmp_path / "run")] == ["step_00000005"]
    assert any(p.name.startswith(".tmp-") for p in (tmp_path / "run" / "checkpoints").iterdir())
    resumed = Trainer(*tiny(corpus, "train.max_steps=10", "train.save_every=5"), tmp_path / "run", resume=True,
                      progress=False)
    assert resumed.step == 5
    resumed.fit()
    assert not any(p.name.startswith(".tmp-") for p in (tmp_path / "run" / "checkpoints").iterdir())


def test_nonfinite_steps_are_skipped_and_counted(corpus, tmp_path):
    cfg, data = tiny(corpus, "train.max_steps=8", "train.log_every=1")
    trainer = Trainer(cfg, data, tmp_path / "run", progress=False)
    real = trainer.phases[0].loss

    def nan_on_steps_3_and_4(m, batch):
        loss, logs = real(m, batch)
        return (loss * float("nan") if trainer.step in (2, 3) else loss), logs
    trainer.phases[0].loss = nan_on_steps_3_and_4
    before = {k: v.clone() for k, v in trainer.model.state_dict().items()}
    trainer.fit()
    recs = [json.loads(ln) for ln in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    train = {r["step"]: r for r in recs if r["split"] == "train"}
    assert train[2]["skipped_steps"] == 0 and train[3]["skipped_steps"] == 1 and train[8]["skipped_steps"] == 2
    assert "loss" not in train[3]
    assert any(not torch.equal(before[k], v) for k, v in trainer.model.state_dict().items())


def test_persistent_nonfinite_loss_aborts_and_keeps_last_good_checkpoint(corpus, tmp_path):
    cfg, data = tiny(corpus, "train.max_steps=20", "train.save_every=4", "train.max_bad_steps=3")
    trainer = Trainer(cfg, data, tmp_path / "run", progress=False)
    real = trainer.phases[0].loss
    trainer.phases[0].loss = lambda m, b: ((real(m, b)[0] * float("inf")) if trainer.step >= 5 else real(m, b)[0], {})
    with pytest.raises(TrainingError, match="3 steps in a row.*step_00000004"):
        trainer.fit()
    assert [p.name for p in ck.step_dirs(tmp_path / "run")] == ["step_00000004"]
    tetragen.load(tmp_path / "run")  # still loadable


def test_keep_last_best_ema_and_tensorboard(corpus, tmp_path):
    cfg, data = tiny(corpus, "train.max_steps=20", "train.save_every=5", "train.eval_every=5", "train.keep_last=2",
                     "train.ema_decay=0.8")
    Trainer(cfg, data, tmp_path / "run", progress=False).fit()
    run = tmp_path / "run"
    assert [p.name for p in ck.step_dirs(run)] == ["step_00000015", "step_00000020"]
    best = json.loads((run / "checkpoints" / "best" / "metrics.json").read_text())
    evals = [json.loads(ln) for ln in (run / "metrics.jsonl").read_text().splitlines()]
    evals = [r for r in evals if r["split"] == "val"]
    assert [r["step"] for r in evals] == [5, 10, 15, 20]
    assert best["val_loss"] == min(r["val_loss"] for r in evals)
    tetragen.load(run / "checkpoints" / "best")  # the best folder is itself loadable
    raw = tetragen.load(run, ema=False).model.state_dict()
    ema = tetragen.load(run).model.state_dict()
    assert not torch.equal(raw["transformer.wte.weight"], ema["transformer.wte.weight"])
    assert list((run / "tensorboard").glob("events.out.tfevents.*"))


def test_time_limit_stops_with_a_checkpoint_and_resume_finishes_the_same_run(corpus, tmp_path, capsys):
    straight = Trainer(*tiny(corpus, "train.max_steps=6"), tmp_path / "a", progress=False)
    straight.fit()
    cfg, data = tiny(corpus, "train.max_steps=6", "train.max_minutes=1e-9")  # past the limit after one step
    stopped = Trainer(cfg, data, tmp_path / "b", progress=False)
    metrics = stopped.fit()
    assert stopped.step == 1 and "val_loss" in metrics
    assert [p.name for p in ck.step_dirs(tmp_path / "b")] == ["step_00000001"]
    assert "train.max_minutes=1e-09 reached at step 1 of 6" in capsys.readouterr().err
    resumed = Trainer(*tiny(corpus, "train.max_steps=6"), tmp_path / "b", resume=True, progress=False)
    assert resumed.step == 1
    resumed.fit()
    assert torch.equal(straight.model.state_dict()["transformer.wte.weight"],
                       resumed.model.state_dict()["transformer.wte.weight"])
    assert (tmp_path / "a" / "model.safetensors").read_bytes() == (tmp_path / "b" / "model.safetensors").read_bytes()


def test_muon_orthogonalises_block_matrices_and_resumes_exactly(corpus, tmp_path):
    from tetragen.train.optim import Combined, Muon, orthogonalize
    g = torch.randn(48, 16, generator=torch.Generator().manual_seed(0))
    s = torch.linalg.svdvals(orthogonalize(g))
    assert s.min() > 0.6 and s.max() < 1.3  # every direction moves at about the same rate
    muon = ["train.optimizer=muon", "train.max_steps=6", "train.save_every=3"]
    straight = Trainer(*tiny(corpus, *muon), tmp_path / "a", progress=False)
    opt = straight.optimizers["main"]
    assert isinstance(opt, Combined) and isinstance(opt.optimizers[0], Muon)
    assert {id(p) for g in opt.optimizers[0].param_groups for p in g["params"]} == {
        id(m.weight) for m in straight.model.modules() if isinstance(m, torch.nn.Linear) and m.weight.dim() == 2
        and m.weight is not straight.model.transformer.wte.weight}  # the blocks' linears; not the tied embedding
    first = straight.model.transformer.h[0].attn.c_attn.weight.clone()
    straight.fit()
    assert not torch.equal(first, straight.model.transformer.h[0].attn.c_attn.weight)
    # stopped by the time limit after step 1, then resumed: the same weights as the straight run
    Trainer(*tiny(corpus, *muon, "train.max_minutes=1e-9"), tmp_path / "b", progress=False).fit()
    resumed = Trainer(*tiny(corpus, *muon), tmp_path / "b", resume=True, progress=False)
    assert resumed.optimizers["main"].optimizers[0].state  # momentum buffers came back
    resumed.fit()
    assert (tmp_path / "a" / "model.safetensors").read_bytes() == (tmp_path / "b" / "model.safetensors").read_bytes()
    gan = build_run_config("dcgan", preset="tiny", overrides=["train.optimizer=muon"])
    model = tetragen.registry.get_family("dcgan").build(gan.model)
    with pytest.raises(UserError, match="train.optimizer=muon: this model has no transformer-block"):
        make_optimizer(list(model.parameters()), gan.train, "cpu", model)


def test_bf16_training_runs_and_stays_finite(corpus, tmp_path):
    cfg, data = tiny(corpus, "train.max_steps=4", "train.precision=bf16")
    metrics = Trainer(cfg, data, tmp_path / "run", progress=False).fit()
    assert torch.isfinite(torch.tensor(metrics["val_loss"]))


def timed_steps(monkeypatch, trainer, seconds: dict, *, die_at: int | None = None) -> list[str]:
    """Make the precision probe's clock read `seconds[precision]` for each training step of `trainer`, whatever this
    machine does; returns the precision of every step taken, the probe's included."""
    from tetragen.train import precision
    now = [0.0]
    monkeypatch.setattr(precision, "clock", lambda: now[0])
    real, taken = trainer._train_step, []

    def step():
        if trainer.step == die_at:
            raise KeyboardInterrupt
        now[0] += seconds[trainer.precision]
        taken.append(trainer.precision)
        return real()
    trainer._train_step = step
    return taken


AUTO = ("train.max_steps=6", "train.log_every=1", "train.save_every=3", "model.dropout=0.1", "train.ema_decay=0.9")


@pytest.mark.parametrize("fp32_s, bf16_s, chosen", [(0.010, 0.005, "bf16"), (0.010, 0.0095, "fp32"),
                                                    (0.005, 0.010, "fp32")])
def test_precision_auto_times_the_models_own_steps_and_keeps_the_faster(corpus, tmp_path, monkeypatch, fp32_s,
                                                                       bf16_s, chosen):
    from tetragen.train import precision
    monkeypatch.setattr(precision, "bf16_support", lambda device: (None, "bf16 instructions"))
    trainer = Trainer(*tiny(corpus, *AUTO, "train.precision=auto"), tmp_path / "auto", progress=False)
    assert trainer.precision_pending
    taken = timed_steps(monkeypatch, trainer, {"fp32": fp32_s, "bf16": bf16_s})
    trainer.fit()
    # warmed up, then timed in turn: cheap steps, so as many as the probe takes
    warm, timed = precision.PROBE_WARMUP, precision.PROBE_MAX_STEPS
    probe = ["fp32"] * warm + ["bf16"] * warm + ["fp32", "bf16"] * timed
    assert taken == probe + [chosen] * 6
    logged = [json.loads(ln) for ln in (tmp_path / "auto" / "metrics.jsonl").read_text().splitlines()]
    decided = [r for r in logged if r["split"] == "precision"]
    assert len(decided) == 1 and decided[0]["precision"] == chosen and decided[0]["step"] == 0
    assert decided[0]["bf16_speedup"] == pytest.approx(fp32_s / bf16_s)
    train = [r for r in logged if r["split"] == "train"]
    assert {r["precision"] for r in train} == {chosen}
    assert {r["precision_reason"] for r in train} == {decided[0]["reason"]}
    assert "a training step of this model took" in decided[0]["reason"]
    assert json.loads((tmp_path / "auto" / "config.json").read_text())["train"]["precision"] == "auto"
    # the probe's steps left nothing behind (weights, optimizer, EMA, dropout's random state): the run is bitwise
    # the one asked for in that precision from the start
    Trainer(*tiny(corpus, *AUTO, f"train.precision={chosen}"), tmp_path / "asked", progress=False).fit()
    for name in ("model.safetensors", "ema.safetensors"):
        assert (tmp_path / "auto" / name).read_bytes() == (tmp_path / "asked" / name).read_bytes(), name


def test_a_resumed_auto_run_keeps_its_recorded_precision(corpus, tmp_path, monkeypatch):
    from tetragen.api import load_data, read_run_config
    from tetragen.train import precision
    monkeypatch.setattr(precision, "bf16_support", lambda device: (None, "bf16 instructions"))
    straight = Trainer(*tiny(corpus, *AUTO, "train.precision=auto"), tmp_path / "a", progress=False)
    timed_steps(monkeypatch, straight, {"fp32": 0.010, "bf16": 0.005})
    straight.fit()
    killed = Trainer(*tiny(corpus, *AUTO, "train.precision=auto"), tmp_path / "b", progress=False)
    timed_steps(monkeypatch, killed, {"fp32": 0.010, "bf16": 0.005}, die_at=4)
    with pytest.raises(KeyboardInterrupt):
        killed.fit()
    cfg = read_run_config(tmp_path / "b")
    resumed = Trainer(cfg, load_data(cfg), tmp_path / "b", resume=True, progress=False)
    assert resumed.precision == "bf16" and not resumed.precision_pending
    # timed again now, fp32 would win: the run keeps the choice it made, and takes no probe steps
    assert timed_steps(monkeypatch, resumed, {"fp32": 0.005, "bf16": 0.010}) == [] and resumed.fit() is not None
    assert resumed.step == 6
    logged = [json.loads(ln) for ln in (tmp_path / "b" / "metrics.jsonl").read_text().splitlines()]
    assert [r["precision"] for r in logged if r["split"] == "precision"] == ["bf16"]
    assert (tmp_path / "a" / "model.safetensors").read_bytes() == (tmp_path / "b" / "model.safetensors").read_bytes()


@pytest.mark.parametrize("certain", [False, True])
def test_precision_auto_needs_no_timing_where_the_answer_is_certain(corpus, tmp_path, monkeypatch, capsys, certain):
    """No bf16 instructions (bf16 emulated): fp32; bf16 tensor cores: bf16; neither takes a probe step."""
    from tetragen.train import precision
    monkeypatch.setattr(precision, "bf16_support", lambda device: (certain, "certain"))
    trainer = Trainer(*tiny(corpus, "train.max_steps=2", "train.precision=auto"), tmp_path / "auto", progress=False)
    assert not trainer.precision_pending and trainer.precision == ("bf16" if certain else "fp32")
    taken = timed_steps(monkeypatch, trainer, {"fp32": 0.01, "bf16": 0.01})
    trainer.fit()
    assert len(taken) == 2
    assert "warning" not in capsys.readouterr().err
    # an explicit bf16 is honoured, with a warning where it is certainly not the faster choice
    asked = Trainer(*tiny(corpus, "train.max_steps=1", "train.precision=bf16"), tmp_path / "bf16", progress=False)
    assert asked.precision == "bf16"
    assert ("not faster than fp32" in capsys.readouterr().err) is not certain
    asked.close()


def test_cuda_precision_follows_compute_capability(monkeypatch):
    from tetragen.train import precision
    for capability, fast in [((7, 5), False), ((8, 0), True), ((9, 0), True)]:
        monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device, c=capability: c)
        assert precision.bf16_support(torch.device("cuda"))[0] is fast


def test_gradient_accumulation_matches_one_big_batch(corpus, tmp_path):
    """2 micro-batches of 4 == the same 8 examples... drawn per (step, micro), so compare against the math directly."""
    cfg, data = tiny(corpus, "train.max_steps=1", "train.grad_accum=2", "train.batch_size=4", "train.grad_clip=0")
    trainer = Trainer(cfg, data, tmp_path / "run", progress=False)
    model = trainer.model
    b0 = data.train_batch(seed=cfg.train.seed, step=0, micro=0, batch_size=4)
    b1 = data.train_batch(seed=cfg.train.seed, step=0, micro=1, batch_size=4)
    x, y = torch.cat([b0["x"], b1["x"]]), torch.cat([b0["y"], b1["y"]])
    model.zero_grad()
    model(x, y)[1].backward()
    expected = {n: p.grad.clone() for n, p in model.named_parameters()}
    trainer.optimizers["main"].step = lambda *a, **k: None  # keep the gradients for inspection
    trainer._train_step()
    for n, p in model.named_parameters():
        torch.testing.assert_close(p.grad, expected[n], atol=1e-6, rtol=1e-4)


@pytest.mark.slow
def test_compiled_training_matches_eager_loss(corpus, tmp_path):
    cfg, data = tiny(corpus, "train.max_steps=3")
    eager = Trainer(cfg, data, tmp_path / "e", progress=False).fit()
    cfg, data = tiny(corpus, "train.max_steps=3", "train.compile=true")
    compiled = Trainer(cfg, data, tmp_path / "c", progress=False).fit()
    assert abs(eager["val_loss"] - compiled["val_loss"]) < 1e-3


def test_the_ema_of_a_short_run_forgets_its_random_start():
    """The moving average's decay rises with the steps ((1 + step) / (4 + step), up to train.ema_decay): a run of a
    few hundred steps at 0.998 averages its recent weights, not its initialisation; a long run reaches the decay."""
    from tetragen.train.ema import EMA
    model = torch.nn.Linear(4, 4)
    ema = EMA(model, 0.998)
    with torch.no_grad():
        model.weight.fill_(1.0)  # where training went, far from the random start
    for step in range(300):
        ema.update(model, step)
    assert torch.allclose(ema.state_dict()["weight"], torch.ones(4, 4), atol=1e-3)
    assert ema.decay_at(0) == 0.25 and ema.decay_at(5000) == 0.998
