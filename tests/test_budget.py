"""train.budget_minutes: a run times itself, plans its step count, checks the plan as it goes and plans again when
the speed departs from it; its schedule ends where the last plan says, and a resume keeps the plans."""
import json
import time

import pytest

from tetragen.api import load_data, read_run_config
from tetragen.config import build_run_config, validate_cross
from tetragen.errors import UserError
from tetragen.train import budget
from tetragen.train import checkpoint as ck
from tetragen.train.optim import lr_at
from tetragen.train.trainer import Trainer

from .test_trainer import tiny


def records(run) -> list[dict]:
    return [json.loads(ln) for ln in (run / "metrics.jsonl").read_text().splitlines()]


def test_plan_fills_the_time_left_with_steps_and_evaluations():
    # 60 s budget, 10.5 s gone: the plan ends at 98% (58.8 s); less one final evaluation of 2 s, 46.3 s for steps of
    # 0.1 s and the evaluations at steps 100, 200 and 300 (2 s each): 395 more steps after the 5 timed ones, the
    # last one's evaluation being the final one (one step more would bring a fourth periodic one at step 400)
    timing = budget.Timing(step=0.1, eval=2.0)
    p = budget.plan(1.0, 10.5, 5, timing, eval_every=100, warmup_steps=50)
    assert (p.max_steps, p.warmup_steps) == (400, 50)
    assert budget.projected_end(10.5, 5, p.max_steps, timing, 100) <= budget.TARGET * 60
    assert budget.projected_end(10.5, 5, p.max_steps + 1, timing, 100) > budget.TARGET * 60
    # only the final evaluation when eval_every=0: 46.3 s / 0.1 s
    assert budget.plan(1.0, 10.5, 5, timing, eval_every=0, warmup_steps=50).max_steps == 5 + 462
    # a warm-up longer than the run is cut to a tenth of it; the count ending nearest 98% (5.88 s) is taken, a
    # little past it (5.9 s) rather than further before it (5.8 s)
    short = budget.plan(0.1, 1.0, 5, budget.Timing(0.1, 0.5), eval_every=0, warmup_steps=100)
    assert short.max_steps == 5 + 44 and short.warmup_steps == 4
    # an evaluation is a step in time: past the next periodic one when that ends nearer the target. 60 s, 49 s gone,
    # 0.0676 s steps, 9.9 s evaluations every 400 steps: ending at step 800 (85.9 s) leaves 9.7 s unused; one more
    # step brings the evaluation at step 800 and ends at 95.9 s, and 812 steps end at 96.7 s, within 1% of 95.6 s
    vae = budget.plan(97.56 / 60, 49.0, 401, budget.Timing(0.0676, 9.9), eval_every=400, warmup_steps=0)
    end = budget.projected_end(49.0, 401, vae.max_steps, budget.Timing(0.0676, 9.9), 400)
    assert vae.max_steps > 800 and abs(end - budget.TARGET * 97.56) <= budget.TOLERANCE * 97.56
    # a plan shorter than the configured schedule keeps the warm-up's share of it: 50 of 1000 steps -> 20 of 400
    shorter = budget.plan(1.0, 10.5, 5, timing, eval_every=100, warmup_steps=50, configured_steps=1000)
    assert shorter.warmup_steps == 20
    # a longer plan keeps the configured warm-up
    assert budget.plan(1.0, 10.5, 5, timing, eval_every=100, warmup_steps=50, configured_steps=100).warmup_steps == 50
    # a budget already spent still makes one more step (and the final evaluation)
    assert budget.plan(0.01, 60.0, 7, budget.Timing(0.1, 1.0), eval_every=0, warmup_steps=0).max_steps == 8
    # a re-plan keeps the warm-up the first plan set, however short the new plan
    assert budget.replan(0.01, 60.0, 7, budget.Timing(0.1, 1.0), eval_every=0, warmup_steps=3).warmup_steps == 3


def test_the_probe_skips_the_warm_up_and_takes_the_median_step(monkeypatch):
    b = budget.Budget(0.1, started=0.0)  # the probe takes 3% of it: 0.18 s
    slow_start = [0.5, 0.3, 0.2]  # allocation and kernel selection: never timed
    for seconds in slow_start + [0.04, 0.09, 0.04, 0.05]:  # a stray pause in the timed steps does not set the pace
        b.step_timed(seconds)
    assert b.probe == [0.04, 0.09, 0.04, 0.05] and b.probe_done(sum(b.probe))
    assert b.probe_seconds() == pytest.approx(0.045)
    unsure = budget.Budget(0.1, started=0.0)
    for seconds in slow_start + [0.001] * 5:  # five steps, but not yet the probe's share of the budget
        unsure.step_timed(seconds)
    assert not unsure.probe_done(sum(unsure.probe))


class SimulatedClock:
    """budget.clock for a run whose steps take `step_s(step)` seconds and whose evaluations take `eval_s`: the run's
    decisions depend on these figures alone, not on the machine running the test."""

    def __init__(self, monkeypatch, step_s, eval_s=0.2):
        self.now, self.step_s, self.eval_s = 0.0, step_s, eval_s
        monkeypatch.setattr(budget, "clock", lambda: self.now)

    def attach(self, trainer, *, die_at: int | None = None) -> Trainer:
        step, evaluate = trainer._train_step, trainer.evaluate

        def timed_step():
            if trainer.step == die_at:
                raise KeyboardInterrupt
            self.now += self.step_s(trainer.step)
            return step()

        def timed_evaluate():
            self.now += self.eval_s
            return evaluate()
        trainer._train_step, trainer.evaluate = timed_step, timed_evaluate
        return trainer


def slows_down(step):  # 0.1 s a step, then 0.18 s from step 30 on (the machine got busier)
    return 0.1 if step < 30 else 0.18


BUDGETED = ["train.budget_minutes=0.15", "train.max_minutes=10", "train.eval_every=0", "train.warmup_steps=10",
            "train.lr=1e-3", "train.min_lr=1e-5", "train.max_steps=100000"]


def test_a_run_that_slows_down_plans_again_and_ends_in_its_budget_with_a_continuous_schedule(
        corpus, tmp_path, monkeypatch):
    clock = SimulatedClock(monkeypatch, slows_down)
    trainer = clock.attach(Trainer(*tiny(corpus, *BUDGETED, "train.log_every=1"), tmp_path / "run", progress=False))
    trainer.fit()
    recs = records(tmp_path / "run")
    plans = [r for r in recs if r["split"] == "budget" and r["event"] != "end"]
    assert plans[0]["event"] == "plan" and plans[0]["seconds_per_step"] == pytest.approx(0.1)
    replans = plans[1:]
    assert replans and all(r["event"] == "replan" for r in replans)
    assert replans[0]["max_steps"] < plans[0]["max_steps"]  # slower steps: fewer of them
    assert trainer.step == plans[-1]["max_steps"] == trainer.cfg.train.max_steps
    assert json.loads((tmp_path / "run" / "config.json").read_text())["train"]["max_steps"] == trainer.step
    end = recs[-1]
    assert end["split"] == "budget" and end["event"] == "end" and end["replans"] == len(replans)
    assert abs(end["budget_used"] - 1) <= 0.05 and end["elapsed_seconds"] == pytest.approx(clock.now)

    # the learning rate at each re-plan's step is the one the previous plan gave it: the schedule bends, never jumps
    lr = {r["step"] - 1: r["lr"] for r in recs if r["split"] == "train"}  # record `step` logs the lr of step - 1
    t = trainer.cfg.train
    anchor = None
    for before, after in zip(plans, replans):
        t.max_steps = before["max_steps"]
        assert lr[after["step"]] == lr_at(after["step"], t, anchor)
        anchor = [after["step"], after["lr_progress"]]
    steps = sorted(s for s in lr if s >= plans[0]["step"])
    assert max(abs(lr[a] - lr[b]) for a, b in zip(steps, steps[1:])) < 0.05 * (1e-3 - 1e-5)
    assert lr[steps[-1]] - 1e-5 < 0.01 * (1e-3 - 1e-5)  # and it came down to min_lr: the schedule finished


def test_a_steady_run_keeps_its_first_plan(corpus, tmp_path, monkeypatch):
    SimulatedClock(monkeypatch, lambda step: 0.1).attach(
        trainer := Trainer(*tiny(corpus, *BUDGETED), tmp_path / "run", progress=False))
    trainer.fit()
    plans = [r for r in records(tmp_path / "run") if r["split"] == "budget"]
    assert [r["event"] for r in plans] == ["plan", "end"]
    assert trainer.budget.checks_done == len(budget.CHECKS)  # checked at every point, never off its target
    assert abs(plans[-1]["budget_used"] - budget.TARGET) < 0.01


def test_an_interrupted_budgeted_run_resumes_with_its_plans_and_ends_bitwise_like_a_straight_one(
        corpus, tmp_path, monkeypatch):
    over = [*BUDGETED, "train.save_every=20", "model.dropout=0.1"]
    SimulatedClock(monkeypatch, slows_down).attach(
        straight := Trainer(*tiny(corpus, *over), tmp_path / "straight", progress=False))
    straight.fit()
    assert any(p["event"] == "replan" for p in straight.budget.plans)

    clock = SimulatedClock(monkeypatch, slows_down)
    killed = clock.attach(Trainer(*tiny(corpus, *over), tmp_path / "b", progress=False), die_at=45)
    with pytest.raises(KeyboardInterrupt):
        killed.fit()
    assert ck.step_dirs(tmp_path / "b")[-1].name == "step_00000040"
    # a re-plan made after the checkpoint is lost with the process; the resumed one makes it again
    cfg = read_run_config(tmp_path / "b")
    resumed = clock.attach(Trainer(cfg, load_data(cfg), tmp_path / "b", resume=True, progress=False))
    kept = [p for p in straight.budget.plans if p["step"] <= 40]
    assert 1 < len(kept) < len(straight.budget.plans)
    assert [(p["step"], p["max_steps"]) for p in resumed.budget.plans] == [(p["step"], p["max_steps"]) for p in kept]
    assert resumed.cfg.train.max_steps == kept[-1]["max_steps"]
    resumed.fit()
    assert [(p["step"], p["max_steps"], p["warmup_steps"]) for p in resumed.budget.plans] == \
        [(p["step"], p["max_steps"], p["warmup_steps"]) for p in straight.budget.plans]
    assert resumed.lr_anchor == straight.lr_anchor and resumed.step == straight.step
    assert (tmp_path / "straight" / "model.safetensors").read_bytes() == \
        (tmp_path / "b" / "model.safetensors").read_bytes()
    plans = [(r["step"], r["event"]) for r in records(tmp_path / "b") if r["split"] == "budget"]
    assert plans == [(r["step"], r["event"]) for r in records(tmp_path / "straight") if r["split"] == "budget"]

    # a finished budgeted run extended with `--resume train.max_steps=N`: that schedule rules, and is not re-planned
    cfg = read_run_config(tmp_path / "b", extra_overrides=[f"train.max_steps={straight.step + 30}"])
    extended = clock.attach(Trainer(cfg, load_data(cfg), tmp_path / "b", resume=True, progress=False))
    extended.fit()
    assert extended.step == straight.step + 30 and extended.budget.plans == resumed.budget.plans


def test_a_budgeted_run_ends_within_five_percent_of_its_budget(corpus, tmp_path):
    """Real time: steps made slow enough (a sleep) that the machine's own speed matters little. The budget counts
    from the trainer's start (building the model and reading the data are in it), and so does this test."""
    t0 = time.perf_counter()
    trainer = Trainer(*tiny(corpus, *BUDGETED), tmp_path / "run", progress=False, started=t0)
    step = trainer._train_step

    def slow_step():
        time.sleep(0.03)
        return step()
    trainer._train_step = slow_step
    trainer.fit()
    took = time.perf_counter() - t0
    end = records(tmp_path / "run")[-1]
    assert end["event"] == "end" and abs(end["budget_used"] - 1) <= 0.05, end
    assert abs(took / (0.15 * 60) - 1) <= 0.05
    assert trainer.step == trainer.budget.current["max_steps"]  # the schedule ran to its end


def test_budgeted_run_plans_its_steps_and_its_schedule_ends_at_min_lr(corpus, tmp_path, monkeypatch):
    # train.max_minutes well above the budget: the hard stop cannot cut this run, so it must end where it planned
    cfg, data = tiny(corpus, "train.budget_minutes=0.1", "train.max_minutes=10", "train.max_steps=3",
                     "train.warmup_steps=100000", "train.log_every=1", "train.eval_every=0", "train.lr=1e-3",
                     "train.min_lr=1e-5")
    validate_cross(cfg)  # a warm-up longer than max_steps is no error with a budget: the plan sets both
    SimulatedClock(monkeypatch, lambda step: 0.1).attach(trainer := Trainer(cfg, data, tmp_path / "run",
                                                                             progress=False))
    trainer.fit()
    recs = records(tmp_path / "run")
    plans = [r for r in recs if r["split"] == "budget" and r["event"] != "end"]
    assert len(plans) == 1
    planned = plans[0]["max_steps"]
    assert planned > plans[0]["probe_steps"] >= budget.UNTIMED_STEPS + budget.MIN_TIMED_STEPS
    assert plans[0]["warmup_steps"] == planned // 10  # 100000 did not fit
    assert trainer.step == planned
    saved = json.loads((tmp_path / "run" / "config.json").read_text())["train"]
    assert (saved["max_steps"], saved["warmup_steps"]) == (planned, planned // 10)
    last_lr = [r["lr"] for r in recs if r["split"] == "train"][-1]
    assert last_lr == lr_at(planned - 1, trainer.cfg.train)
    assert last_lr - 1e-5 < 0.01 * (1e-3 - 1e-5)  # the cosine has come down to min_lr: the schedule ended in time
    # the probe's evaluation and the final one are both logged
    assert [r["step"] for r in recs if r["split"] == "val"] == [plans[0]["step"], planned]
    assert recs[-1]["event"] == "end" and abs(recs[-1]["budget_used"] - 1) <= 0.05

    cfg = read_run_config(tmp_path / "run")
    resumed = Trainer(cfg, load_data(cfg), tmp_path / "run", resume=True, progress=False)
    assert resumed.budget.plans == trainer.budget.plans and resumed.step == planned  # kept, never re-planned
    resumed.close()


def test_the_budget_counts_from_the_start_of_the_train_call(corpus, tmp_path, capsys):
    # a run whose data took its whole 3-second budget to load has time for one step after its probe, however fast
    # its steps are
    cfg, data = tiny(corpus, "train.budget_minutes=0.05", "train.max_minutes=10", "train.eval_every=0")
    trainer = Trainer(cfg, data, tmp_path / "run", progress=False, started=time.perf_counter() - 3.0)
    trainer.fit()
    first = trainer.budget.plans[0]
    assert first["max_steps"] == first["probe_steps"] + 1 and trainer.step == first["max_steps"]
    assert "leaves 1 step after the probe" in capsys.readouterr().err  # and the run says it will hardly learn


@pytest.mark.parametrize("value", ["-1", "20000", "soon"])
def test_bad_budget_is_one_line(value):
    with pytest.raises(UserError, match="train.budget_minutes"):
        build_run_config("gpt", preset="tiny", overrides=[f"train.budget_minutes={value}"])
