"""`train.budget_minutes`: the step count that makes a run's whole schedule end inside a time budget.

A run with a budget times its first steps on the machine it runs on (the median step after a warm-up, so that
allocation, kernel selection or a stray pause do not set the pace) and one evaluation, then sets `train.max_steps`
so that the steps, the evaluations every `train.eval_every` steps and the final evaluation end at TARGET of the
budget. A speed read in the first seconds need not hold for the whole run (caches warm up, other work on the
machine comes and goes), so the run checks its plan at CHECKS of the budget's time against the speed measured since
the last check, and plans again when the plan would end more than TOLERANCE of the budget away from its target.

The learning-rate schedule spans the planned steps, so it reaches `train.min_lr` when the time is up rather than
being cut short by the hard stop; after a re-plan it goes the rest of its way over the new step count
(optim.decay_progress), so the learning rate bends without jumping. Every plan is printed and written to config.json
and to metrics.jsonl (`"split": "budget"`, `"event": "plan"` or `"replan"`); the budget's whole state (plans, checks
passed, timings since the last check, time used) is kept in each checkpoint, so `--resume` carries on with the same
plans and checks. The run's last budget record (`"event": "end"`) says how much of the budget it used
(`budget_used`, a fraction).
"""
from __future__ import annotations

import math
import statistics
import time
from dataclasses import asdict, dataclass

clock = time.perf_counter  # every budget decision reads this clock (tests put a simulated one in its place)

UNTIMED_STEPS = 3  # the first steps allocate buffers, pick kernels and warm caches: not representative
MIN_TIMED_STEPS = 3
PROBE_FRACTION = 0.03  # of the budget spent timing steps before the first plan (at most PROBE_MAX_S)
PROBE_MAX_S = 15.0
HARD_STOP = 1.15  # train.max_minutes unset: a budgeted run stops at 115% of its budget whatever the plan
TARGET = 0.98  # of the budget where a plan ends: the rest covers the final checkpoint and what timing cannot foresee
CHECKS = (0.25, 0.5, 0.75, 0.9)  # of the budget's time: where the plan meets the speed measured since the last
TOLERANCE = 0.01  # of the budget: a plan that would end further than this from its target is made again


@dataclass
class Timing:
    """Seconds per training step and per evaluation on this machine."""
    step: float
    eval: float

    def per_step(self, eval_every: int) -> float:
        """One step with its share of the periodic evaluations (eval_every=0: only the final one)."""
        return self.step + (self.eval / eval_every if eval_every else 0.0)


def steps_that_fit(budget_minutes: float, elapsed_s: float, step: int, timing: Timing, eval_every: int) -> int:
    """The step count whose steps from `step`, their periodic evaluations and the final one end nearest TARGET of
    the budget, at most TOLERANCE past it (where a check would plan again); at least one more step, however little
    time is left.

    An evaluation is a step in time: one more step may bring one more periodic evaluation. So the count ending
    last before TARGET may leave most of an evaluation's time unused, while a count past the next evaluation ends
    nearer TARGET, a little after it; the nearer of the two is taken."""
    def last_within(limit: float) -> int:
        hi = step + max(1, math.floor((limit - elapsed_s - timing.eval) / max(timing.step, 1e-9)))
        lo = step + 1
        if projected_end(elapsed_s, step, lo, timing, eval_every) > limit:
            return lo
        while lo < hi:  # projected_end grows with the count
            mid = (lo + hi + 1) // 2
            lo, hi = (mid, hi) if projected_end(elapsed_s, step, mid, timing, eval_every) <= limit else (lo, mid - 1)
        return lo
    goal = TARGET * 60 * budget_minutes
    under, over = last_within(goal), last_within(goal + TOLERANCE * 60 * budget_minutes)
    miss = [abs(projected_end(elapsed_s, step, n, timing, eval_every) - goal) for n in (under, over)]
    return over if miss[1] < miss[0] else under


def projected_end(elapsed_s: float, step: int, max_steps: int, timing: Timing, eval_every: int) -> float:
    """The budget time (s) at which a run at `step` would finish `max_steps` at `timing`'s speed: its steps, the
    periodic evaluations that fall on them (every `eval_every`-th step before the last) and the final one. Counted
    one by one rather than spread over the steps, so that a run near its end does not save time for an evaluation
    that will not come."""
    periodic = max(0, (max_steps - 1) // eval_every - step // eval_every) if eval_every else 0
    return elapsed_s + (max_steps - step) * timing.step + (periodic + 1) * timing.eval


@dataclass
class Plan:
    max_steps: int
    warmup_steps: int
    seconds_per_step: float
    eval_seconds: float
    elapsed_seconds: float  # of the budget, when the plan was made

    def as_record(self, budget_minutes: float, **extra) -> dict:
        return {"budget_minutes": budget_minutes, **asdict(self), **extra}


def plan(budget_minutes: float, elapsed_s: float, step: int, timing: Timing, eval_every: int, warmup_steps: int,
         configured_steps: int = 0) -> Plan:
    """The first plan: the step count that fills the budget's remaining time (steps_that_fit). A plan shorter than
    the configured `configured_steps` keeps the warm-up's share of the schedule (a 200-step warm-up of 4000 steps
    is 15 steps of a 302-step plan); a warm-up the run cannot hold is cut to a tenth of it."""
    total = steps_that_fit(budget_minutes, elapsed_s, step, timing, eval_every)
    warmup = warmup_steps
    if 0 < total < configured_steps:
        warmup = min(warmup, math.ceil(warmup * total / configured_steps))
    warmup = warmup if warmup < total else total // 10
    return Plan(max_steps=total, warmup_steps=warmup, seconds_per_step=timing.step, eval_seconds=timing.eval,
                elapsed_seconds=elapsed_s)


def replan(budget_minutes: float, elapsed_s: float, step: int, timing: Timing, eval_every: int,
           warmup_steps: int) -> Plan:
    """A later plan: a new step count from the measured speed; the warm-up stays as the first plan set it (the
    learning rate is already on its way)."""
    total = steps_that_fit(budget_minutes, elapsed_s, step, timing, eval_every)
    return Plan(max_steps=total, warmup_steps=warmup_steps, seconds_per_step=timing.step, eval_seconds=timing.eval,
                elapsed_seconds=elapsed_s)


class Budget:
    """A budgeted run's bookkeeping: the probe's step times, the plans made, the checks passed and what was timed
    since the last one. `state()` is plain JSON, kept in each checkpoint; `Budget(minutes, started, state)` carries
    on from it in a resumed process, whose clock starts at `started`."""

    def __init__(self, minutes: float, started: float, state: dict | None = None):
        self.minutes, self.started = minutes, started
        state = dict(state or {})
        if state and "plans" not in state:  # a checkpoint from before re-plans: its one plan, never checked
            state = {"plans": [{**state, "event": "plan", "step": state.get("probe_steps", 0)}],
                     "checks_done": len(CHECKS)}
        self.plans: list[dict] = list(state.get("plans", []))  # the first plan and each re-plan, as logged
        self.checks_done: int = state.get("checks_done", 0)
        self.anchor: list | None = state.get("anchor")  # [step, progress] of the last re-plan (optim.decay_progress)
        self.spent_before: float = state.get("elapsed_seconds", 0.0)  # budget time used by earlier processes
        self.probe_steps: int = state.get("probe_steps", 0)
        self.probe: list[float] = list(state.get("probe", []))  # seconds of each timed probe step
        self.window: dict = dict(state.get("window", {"steps": 0, "evals": 0, "eval_s": 0.0, "start": 0.0}))
        self.following: bool = state.get("following", True)  # False once --resume set another train.max_steps

    def elapsed(self) -> float:
        """Seconds of the budget used so far, by this process and the ones before it."""
        return self.spent_before + clock() - self.started

    @property
    def planned(self) -> bool:
        return bool(self.plans)

    @property
    def current(self) -> dict:
        return self.plans[-1]

    def step_timed(self, seconds: float) -> None:
        """One training step took `seconds` (without the evaluations and checkpoints that followed it)."""
        if self.planned:
            self.window["steps"] += 1
            return
        self.probe_steps += 1
        if self.probe_steps > UNTIMED_STEPS:
            self.probe.append(seconds)

    def eval_timed(self, seconds: float) -> None:
        if self.planned:
            self.window["evals"] += 1
            self.window["eval_s"] += seconds

    def probe_share(self) -> float:
        """Seconds of steps timed before a plan (or a check) is made: a small share of the budget."""
        return min(PROBE_MAX_S, PROBE_FRACTION * 60 * self.minutes)

    def probe_done(self, timed_s: float) -> bool:
        """Whether enough steps have been timed to plan: a few, over `probe_share` (`timed_s`: the timed steps'
        seconds, sum(self.probe), as every process agrees on it)."""
        return len(self.probe) >= MIN_TIMED_STEPS and timed_s >= self.probe_share()

    def probe_seconds(self) -> float:
        """A training step's steady time: the median of the timed probe steps."""
        return statistics.median(self.probe)

    def check_due(self, elapsed_s: float) -> bool:
        """Whether the run has reached the next of CHECKS of the budget's time, with a few steps timed since the last
        plan or check (`elapsed_s`: as every process agrees on it)."""
        if not (self.following and self.planned and self.checks_done < len(CHECKS)):
            return False
        w = self.window
        return elapsed_s >= CHECKS[self.checks_done] * 60 * self.minutes and w["steps"] >= MIN_TIMED_STEPS and \
            elapsed_s - w["start"] >= self.probe_share()

    def checked(self, elapsed_s: float) -> None:
        """A check was made at `elapsed_s` (agreed): every point of CHECKS up to it is passed; the next window
        starts."""
        while self.checks_done < len(CHECKS) and elapsed_s >= CHECKS[self.checks_done] * 60 * self.minutes:
            self.checks_done += 1
        self.start_window(elapsed_s)

    def measured(self, elapsed_s: float) -> Timing:
        """The speed since the last plan or check: each step with its share of the logging and checkpoints, and
        the mean evaluation (the last plan's figure when none was run since)."""
        w = self.window
        eval_s = w["eval_s"] / w["evals"] if w["evals"] else self.current["eval_seconds"]
        return Timing(step=max(0.0, elapsed_s - w["start"] - w["eval_s"]) / max(1, w["steps"]), eval=eval_s)

    def departs(self, elapsed_s: float, step: int, max_steps: int, timing: Timing, eval_every: int) -> bool:
        """Whether the plan, at the measured speed, would end more than TOLERANCE of the budget from TARGET."""
        end = projected_end(elapsed_s, step, max_steps, timing, eval_every)
        return abs(end - TARGET * 60 * self.minutes) > TOLERANCE * 60 * self.minutes

    def start_window(self, elapsed_s: float) -> None:
        """Time from here (`elapsed_s`: as every process agrees on it, so that they agree on when a check is due)."""
        self.window = {"steps": 0, "evals": 0, "eval_s": 0.0, "start": elapsed_s}

    def state(self) -> dict:
        return {"budget_minutes": self.minutes, "plans": self.plans, "checks_done": self.checks_done,
                "anchor": self.anchor, "elapsed_seconds": self.elapsed(), "probe_steps": self.probe_steps,
                "probe": self.probe, "window": self.window, "following": self.following}

    def end_record(self, step: int) -> dict:
        """The run's last budget record: how much of the budget it used."""
        elapsed = self.elapsed()
        return {"step": step, "split": "budget", "event": "end", "budget_minutes": self.minutes,
                "elapsed_seconds": elapsed, "budget_used": elapsed / (60 * self.minutes),
                "replans": sum(p["event"] == "replan" for p in self.plans)}


FEW_STEPS = 20  # a plan with fewer steps after the probe than this is warned about


def too_short(p: Plan, step: int, budget_minutes: float) -> str | None:
    """A warning when the budget leaves the run almost no steps after loading and timing, else None."""
    more = p.max_steps - step
    if more >= FEW_STEPS:
        return None
    return (f"tetragen: warning: train.budget_minutes={budget_minutes:g} leaves {more} step{'s' if more != 1 else ''} "
            f"after the probe ({p.elapsed_seconds:.0f} s of the budget went to loading the data, building the model "
            f"and timing it); the run will hardly learn: give it more minutes")


def describe(p: Plan, budget_minutes: float, configured_warmup: int) -> str:
    note = (f"; warm-up shortened from {configured_warmup} to {p.warmup_steps} steps with the schedule"
            if p.warmup_steps != configured_warmup else "")
    return (f"tetragen: train.budget_minutes={budget_minutes:g}: {p.seconds_per_step * 1000:.1f} ms/step and "
            f"{p.eval_seconds:.1f} s per evaluation on this machine -> train.max_steps={p.max_steps}{note}")


def describe_replan(p: Plan, budget_minutes: float, before: int, step: int) -> str:
    return (f"tetragen: train.budget_minutes={budget_minutes:g}: at step {step}, {p.elapsed_seconds:.0f} s in, "
            f"{p.seconds_per_step * 1000:.1f} ms/step and {p.eval_seconds:.1f} s per evaluation -> "
            f"train.max_steps={p.max_steps} (was {before}); the schedule goes on to its end over the new length")
