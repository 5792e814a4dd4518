"""train.budget_minutes: a run times itself, plans its step count, and its schedule ends where the plan says."""
import json
import time

import pytest

from tetragen.config import build_run_config, validate_cross
from tetragen.errors import UserError
from tetragen.train import budget
from tetragen.train.optim import lr_at
from tetragen.train.trainer import Trainer

from .test_trainer import tiny


def test_plan_fills_the_time_left_with_steps_and_evaluations():
    # 60 s budget, 10 s gone: 0.97 * 50 s - one final evaluation of 2 s = 46.5 s for steps of 0.1 s, each also
    # carrying 1/100 of an evaluation (0.02 s): 387 more steps after the 5 timed ones
    p = budget.plan(1.0, 10.0, 5, 0.1, 2.0, eval_every=100, warmup_steps=50)
    assert (p.max_steps, p.warmup_steps) == (392, 50)
    # only the final evaluation when eval_every=0
    assert budget.plan(1.0, 10.0, 5, 0.1, 2.0, eval_every=0, warmup_steps=50).max_steps == 5 + 465
    # a warm-up longer than the run is cut to a tenth of it
    short = budget.plan(0.1, 1.0, 5, 0.1, 0.5, eval_every=0, warmup_steps=100)
    assert short.max_steps == 5 + 43 and short.warmup_steps == 4
    # a plan shorter than the configured schedule keeps the warm-up's share of it: 50 of 1000 steps -> 20 of 392
    shorter = budget.plan(1.0, 10.0, 5, 0.1, 2.0, eval_every=100, warmup_steps=50, configured_steps=1000)
    assert shorter.warmup_steps == 20
    # a longer plan keeps the configured warm-up
    assert budget.plan(1.0, 10.0, 5, 0.1, 2.0, eval_every=100, warmup_steps=50, configured_steps=100).warmup_steps == 50
    # a budget already spent still makes one more step (and the final evaluation)
    assert budget.plan(0.01, 60.0, 7, 0.1, 1.0, eval_every=0, warmup_steps=0).max_steps == 8


def test_budgeted_run_plans_its_steps_and_its_schedule_ends_at_min_lr(corpus, tmp_path):
    # train.max_minutes well above the budget: the hard stop cannot cut this run, so it must end where it planned
    cfg, data = tiny(corpus, "train.budget_minutes=0.05", "train.max_minutes=10", "train.max_steps=3",
                     "train.warmup_steps=100000", "train.log_every=1", "train.eval_every=0", "train.lr=1e-3",
                     "train.min_lr=1e-5")
    validate_cross(cfg)  # a warm-up longer than max_steps is no error with a budget: the plan sets both
    trainer = Trainer(cfg, data, tmp_path / "run", progress=False)
    trainer.fit()
    records = [json.loads(ln) for ln in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    plans = [r for r in records if r["split"] == "budget"]
    assert len(plans) == 1
    planned = plans[0]["max_steps"]
    assert planned > plans[0]["probe_steps"] >= budget.UNTIMED_STEPS + budget.MIN_TIMED_STEPS
    assert plans[0]["warmup_steps"] == planned // 10  # 100000 did not fit
    assert trainer.step == planned
    saved = json.loads((tmp_path / "run" / "config.json").read_text())["train"]
    assert (saved["max_steps"], saved["warmup_steps"]) == (planned, planned // 10)
    last_lr = [r["lr"] for r in records if r["split"] == "train"][-1]
    assert last_lr == pytest.approx(lr_at(planned - 1, trainer.cfg.train))
    assert last_lr - 1e-5 < 0.01 * (1e-3 - 1e-5)  # the cosine has come down to min_lr: the schedule ended in time
    # the probe's evaluation and the final one are both logged
    assert [r["step"] for r in records if r["split"] == "val"] == [plans[0]["step"], planned]

    resumed = Trainer(*tiny(corpus, "train.budget_minutes=0.05"), tmp_path / "run", resume=True, progress=False)
    plan = {k: v for k, v in plans[0].items() if k not in ("step", "split")}
    assert resumed.budget_plan == plan and resumed.step == planned  # a resume keeps the plan, never re-plans


def test_the_budget_counts_from_the_start_of_the_train_call(corpus, tmp_path, capsys):
    # a run whose data took its whole 3-second budget to load has time for one step after its probe, however fast
    # its steps are
    cfg, data = tiny(corpus, "train.budget_minutes=0.05", "train.max_minutes=10", "train.eval_every=0")
    trainer = Trainer(cfg, data, tmp_path / "run", progress=False, started=time.perf_counter() - 3.0)
    trainer.fit()
    plan = trainer.budget_plan
    assert plan["max_steps"] == plan["probe_steps"] + 1 and trainer.step == plan["max_steps"]
    assert "leaves 1 step after the probe" in capsys.readouterr().err  # and the run says it will hardly learn


@pytest.mark.parametrize("value", ["-1", "20000", "soon"])
def test_bad_budget_is_one_line(value):
    with pytest.raises(UserError, match="train.budget_minutes"):
        build_run_config("gpt", preset="tiny", overrides=[f"train.budget_minutes={value}"])
