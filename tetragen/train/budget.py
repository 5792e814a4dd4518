"""`train.budget_minutes`: the step count that makes a run's whole schedule end inside a time budget.

A run with a budget times its own first steps and one evaluation on the machine it runs on, then sets
`train.max_steps` so that the remaining steps, the evaluations every `train.eval_every` steps and the final one fit
in what is left of the budget. The learning-rate schedule spans the planned steps, so it reaches `train.min_lr` when
the time is up, rather than being cut short by `train.max_minutes`. The plan is written to config.json and to the
trainer state, so `--resume` carries on with the same schedule instead of planning again.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass

UNTIMED_STEPS = 2  # the first steps allocate buffers and warm caches: not representative
MIN_TIMED_STEPS = 3
PROBE_FRACTION = 0.03  # of the budget spent timing steps (at most PROBE_MAX_S)
PROBE_MAX_S = 15.0
HARD_STOP = 1.15  # train.max_minutes unset: a budgeted run stops at 115% of its budget whatever the plan
SAFETY = 0.97  # of the time left that the plan fills: step times drift a little as a run goes on


@dataclass
class Plan:
    max_steps: int
    warmup_steps: int
    seconds_per_step: float
    eval_seconds: float
    probe_steps: int

    def as_record(self, budget_minutes: float) -> dict:
        return {"budget_minutes": budget_minutes, **asdict(self)}


def probe_done(steps_done: int, timed_seconds: float, budget_minutes: float) -> bool:
    """Whether enough steps have been timed to plan: a few, over a small share of the budget."""
    timed = steps_done - UNTIMED_STEPS
    return timed >= MIN_TIMED_STEPS and timed_seconds >= min(PROBE_MAX_S, PROBE_FRACTION * 60 * budget_minutes)


def plan(budget_minutes: float, elapsed_s: float, step: int, seconds_per_step: float, eval_seconds: float,
         eval_every: int, warmup_steps: int, configured_steps: int = 0) -> Plan:
    """The step count whose remaining steps and evaluations fill the budget's remaining time.

    From `step`, n more steps cost n * seconds_per_step, plus an evaluation every `eval_every` steps (eval_every=0:
    only the final one) and the final evaluation. A plan shorter than the configured `configured_steps` keeps the
    warm-up's share of the schedule (a 200-step warm-up of 4000 steps is 15 steps of a 302-step plan); a warm-up the
    run cannot hold is cut to a tenth of it."""
    left = SAFETY * (60 * budget_minutes - elapsed_s) - eval_seconds  # the final evaluation is always run
    per_step = seconds_per_step + (eval_seconds / eval_every if eval_every else 0.0)
    more = max(1, math.floor(left / per_step)) if left > 0 else 1
    total = step + more
    warmup = warmup_steps
    if 0 < total < configured_steps:
        warmup = min(warmup, math.ceil(warmup * total / configured_steps))
    warmup = warmup if warmup < total else total // 10
    return Plan(max_steps=total, warmup_steps=warmup, seconds_per_step=seconds_per_step, eval_seconds=eval_seconds,
                probe_steps=step)


FEW_STEPS = 20  # a plan with fewer steps after the probe than this is warned about


def too_short(p: Plan, budget_minutes: float, elapsed_s: float) -> str | None:
    """A warning when the budget leaves the run almost no steps after loading and timing, else None."""
    more = p.max_steps - p.probe_steps
    if more >= FEW_STEPS:
        return None
    return (f"tetragen: warning: train.budget_minutes={budget_minutes:g} leaves {more} step{'s' if more != 1 else ''} "
            f"after the probe ({elapsed_s:.0f} s of the budget went to loading the data, building the model and "
            f"timing it); the run will hardly learn: give it more minutes")


def describe(p: Plan, budget_minutes: float, configured_warmup: int) -> str:
    note = (f"; warm-up shortened from {configured_warmup} to {p.warmup_steps} steps with the schedule"
            if p.warmup_steps != configured_warmup else "")
    return (f"tetragen: train.budget_minutes={budget_minutes:g}: {p.seconds_per_step * 1000:.1f} ms/step and "
            f"{p.eval_seconds:.1f} s per evaluation on this machine -> train.max_steps={p.max_steps}{note}")
