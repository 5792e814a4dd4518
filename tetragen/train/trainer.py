"""The trainer: one loop for every family, driven by the family's phases. Never subclassed.

Each step: draw the step's micro-batches (a pure function of seed and step), then for each phase of the family's
objective: zero grads, accumulate the loss over micro-batches (bf16 autocast when asked), clip, check the loss and
gradient norm are finite (skip the step if not), and step that phase's AdamW at the scheduled learning rate.
Around it: EMA, evaluation, metrics.jsonl (+ TensorBoard), atomic checkpoints and exact resume; before it, where
`train.precision=auto` cannot tell without timing, a few rolled-back steps in each precision; through it, where
`train.budget_minutes` is set, the plan of the step count and its checks (train/budget.py).
"""
from __future__ import annotations

import contextlib
import copy
import gc
import json
import math
import os
import shutil
import signal
import sys
import time
from pathlib import Path

import torch
from tqdm import tqdm

from ..config import RunConfig
from ..errors import Interrupted, TrainingError, UserError
from ..registry import get_family
from .. import files
from . import checkpoint as ck
from . import budget, distributed, finetune
from .ema import EMA
from . import precision as precisions
from .optim import decay_progress, lr_at, make_optimizer


def format_metrics(metrics: dict) -> str:
    """One line of evaluation metrics (`val_loss 1.6799  val_bpc 2.4236`, `fid 16.0600  kid 0.9460`); counts such
    as the number of validation tokens are left out."""
    return "  ".join(f"{k} {v:.4f}" for k, v in metrics.items()
                     if isinstance(v, float) and not k.endswith(("_tokens", "_examples", "_samples")))


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise UserError("train.device=cuda: no CUDA device is available here; use train.device=cpu")
    return torch.device(name)


def autocast(device: torch.device, precision: str):
    if precision == "bf16":
        return torch.autocast(device_type=device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


def prepare_run_dir(out: Path, *, resume: bool, overwrite: bool, clear: bool = True) -> bool:
    """Check what is at `out` before anything is written; returns True when an existing run should be resumed.
    With `clear` (under the run's lock), an --overwrite deletes what tetragen wrote there; without it the call only
    checks, and writes nothing."""
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise UserError(f"--out {out}: exists and is not a folder")
    has_files = out.is_dir() and any(p.name != files.LOCK_FILE for p in out.iterdir())
    if resume:
        if ck.step_dirs(out):
            return True
        if has_files and not ck.is_run_dir(out):
            raise UserError(f"--out {out}: the folder is not a tetragen run; pick an empty or new folder")
        if clear:
            print(f"tetragen: no checkpoint in {out} yet; starting a new run", file=sys.stderr)
        return False
    if has_files:
        if not overwrite:
            raise UserError(f"--out {out}: a run (or other files) is already there; pass --resume to continue it, "
                            f"--overwrite to replace it, or choose another folder")
        if not ck.is_run_dir(out):
            raise UserError(f"--out {out}: --overwrite only replaces tetragen runs and this folder is not one; "
                            f"choose another folder")
        files.refuse_foreign(out)
        if clear:
            files.clear_run(out)  # what tetragen wrote there, and only that
    return False


def _record_step(line: str) -> int | None:
    """The step of one metrics.jsonl line; None for a line a kill cut short (or anything else unreadable)."""
    try:
        return int(json.loads(line)["step"])
    except (ValueError, KeyError, TypeError):
        return None


class Trainer:
    def __init__(self, cfg: RunConfig, data, run_dir: str | Path, *, resume: bool = False,
                 overwrite: bool = False, progress: bool = True, started: float | None = None):
        """`started`: the time.perf_counter() (budget.clock) a `train.budget_minutes` budget counts from (the start
        of the `train` call, so loading the data and building the model are in it; default: now)."""
        self.started = budget.clock() if started is None else started
        self.cfg, self.data, self.run_dir = cfg, data, Path(run_dir)
        self.family = get_family(cfg.family)
        t = cfg.train
        self.device = resolve_device(t.device)
        self.dist = distributed.setup(self.device.type)
        precision, self.precision_reason = precisions.resolve_precision(t.precision, self.device,
                                                                        warn=self.dist.is_main)
        # None: `auto` where only timing this model's steps can tell (settle_precision); fp32 until then
        self.precision_pending = precision is None
        self.precision = precision or "fp32"
        self.precision_record: dict | None = None  # the timed choice, kept in checkpoints so a resume reuses it
        if self.dist.enabled and self.device.type == "cuda":
            self.device = torch.device("cuda", self.dist.local_rank)
        self.resuming, self._lock, created = False, None, False
        if self.dist.is_main:
            # everything is checked before the lock file is written: a refused run leaves the folder as it was
            prepare_run_dir(self.run_dir, resume=resume, overwrite=overwrite, clear=False)
            created = not self.run_dir.exists()
            self._lock = files.RunLock(self.run_dir)  # one writer per run folder, before anything is read or deleted
        try:
            if self.dist.is_main:  # again under the lock, which makes it final
                self.resuming = prepare_run_dir(self.run_dir, resume=resume, overwrite=overwrite)
            if self.dist.enabled:
                flag = torch.tensor([int(self.resuming)])
                torch.distributed.broadcast(flag, 0)
                self.resuming = bool(flag.item())
            torch.manual_seed(t.seed)  # the same initial weights in every process
            # a fine-tune starts from another run's weights, and with LoRA trains adapters only (train/finetune.py)
            self.model = finetune.prepare(self.family.build(cfg.model), cfg).to(self.device)
            self.phases = self.family.objective(self.model, cfg)
            self.optimizers = {p.name: make_optimizer(p.params, t, self.device.type, self.model)
                               for p in self.phases}
            self.ema = EMA(self.model, t.ema_decay) if t.ema_decay > 0 else None
            self.step, self.skipped, self.bad_streak = 0, 0, 0
            self.best: dict | None = None
            # train.budget_minutes: the probe, the plans and their checks (train/budget.py)
            self.budget = budget.Budget(t.budget_minutes, self.started) if t.budget_minutes else None
            self.lr_anchor: list | None = None  # [step, progress] where a budget re-plan bent the schedule
            torch.manual_seed(t.seed + 1 + self.dist.rank)  # dropout and sampling noise differ between processes
            if self.resuming:
                self._load_latest()

            self.wrapped = self.model
            if self.dist.enabled:
                from torch.nn.parallel import DistributedDataParallel as DDP
                # with several phases each forward uses only part of the model (a GAN's "disc" phase leaves the
                # generator out of the graph), which DDP must be told to expect
                self.wrapped = DDP(self.model, find_unused_parameters=len(self.phases) > 1,
                                   device_ids=[self.device.index] if self.device.type == "cuda" else None)
            if t.compile:
                self.wrapped = torch.compile(self.wrapped)
        except BaseException:
            self.close(remove_empty=created)
            raise
        self.progress = progress and self.dist.is_main and not os.environ.get("TETRAGEN_NO_PROGRESS")
        self._tb = None

    def close(self, *, remove_empty: bool = False) -> None:
        """Release the run folder's lock (fit does at its end); `remove_empty`: also remove the folder when nothing
        but the lock was written (a run refused before it started)."""
        if self._lock is not None:
            self._lock.release()
            self._lock = None
            if remove_empty and self.run_dir.is_dir() and \
                    all(p.name == files.LOCK_FILE for p in self.run_dir.iterdir()):
                shutil.rmtree(self.run_dir, ignore_errors=True)

    # ------------------------------------------------------------------------------------------------------------
    def fit(self) -> dict:
        """Train to train.max_steps; returns the final evaluation metrics."""
        t = self.cfg.train
        self.model.train()  # whatever mode the caller left it in: dropout, batch norm and codebooks train
        if self.dist.is_main:
            self._start_files()
        bar = tqdm(total=t.max_steps, initial=self.step, disable=not self.progress, unit="step",
                   dynamic_ncols=True, file=sys.stderr)
        window = {"loss": 0.0, "n": 0, "units": 0, "t0": time.perf_counter()}
        final: dict = {}
        fit_t0 = budget.clock()
        deadline = fit_t0 + 60 * t.max_minutes if t.max_minutes else None
        b = self.budget
        probing = b is not None and not b.planned
        if b is not None and not t.max_minutes:  # a hard stop well past the plan, should the machine slow down
            deadline = (self.started if probing else fit_t0) + 60 * t.budget_minutes * budget.HARD_STOP
        configured_steps = t.max_steps
        if probing:  # until the plan is made the run is as long as it needs (the schedule is still warming up)
            t.max_steps = max(t.max_steps, 10 ** 9)
        trained = False
        self._stop_signal = None
        handlers = self._catch_stop_signals()
        try:
            if self.precision_pending and self.step < t.max_steps:
                self.settle_precision()
                if self.dist.is_main:
                    self._append_metrics({"step": self.step, "split": "precision", **self.precision_record})
            while self.step < t.max_steps:
                step_t0 = budget.clock()
                logs, units = self._train_step()
                self.step += 1
                trained = True
                if logs is not None:
                    window["loss"] += logs["loss"]
                    window["n"] += 1
                window["units"] += units
                bar.update(1)
                if b is not None:
                    b.step_timed(budget.clock() - step_t0)
                    # one agreement of every process per step: the hard stop, the budget's clock and the probe
                    past, elapsed, timed = self._agree([float(budget.clock() > deadline) if deadline else 0.0,
                                                        b.elapsed(), sum(b.probe)])
                    out_of_time = past > 0
                    if not b.planned and b.probe_done(timed):
                        self._plan_budget(configured_steps, bar)
                    elif b.check_due(elapsed):
                        self._check_budget(elapsed, bar)
                else:
                    out_of_time = deadline is not None and self._past(deadline)
                if self.step % t.log_every == 0 or self.step == t.max_steps:
                    rec = self._log_train(window, logs or {})
                    bar.set_postfix(loss=f"{rec.get('loss', float('nan')):.4f}",
                                    **{f"{self.data.unit}/s": f"{rec['throughput']:.0f}"})
                    window = {"loss": 0.0, "n": 0, "units": 0, "t0": time.perf_counter()}
                last = self.step == t.max_steps or out_of_time
                if last or (t.eval_every and self.step % t.eval_every == 0):
                    eval_t0 = budget.clock()
                    if self.dist.is_main:
                        final = self.evaluate()
                        bar.write(f"step {self.step}: {format_metrics(final)}")
                    distributed.wait_for_main(self.dist)  # the others wait at a barrier meant for it
                    if b is not None:
                        b.eval_timed(budget.clock() - eval_t0)
                if last or (t.save_every and self.step % t.save_every == 0):
                    self.save()
                if out_of_time:
                    if self.dist.is_main:
                        limit = (f"train.max_minutes={t.max_minutes:g}" if t.max_minutes else
                                 f"train.budget_minutes={t.budget_minutes:g} (overrun by "
                                 f"{budget.HARD_STOP - 1:.0%}: the machine slowed down)")
                        print(f"tetragen: {limit} reached at step {self.step} of "
                              f"{t.max_steps}; `--resume` carries on", file=sys.stderr)
                    break
                if self._stopping() and not last:
                    if not (t.save_every and self.step % t.save_every == 0):
                        self.save()
                    raise Interrupted(self._stop_signal or signal.SIGTERM, self._resume_hint())
            if b is not None and trained and self.dist.is_main:
                end = b.end_record(self.step)
                self._append_metrics(end)
                bar.write(f"tetragen: train.budget_minutes={t.budget_minutes:g}: the run took "
                          f"{end['elapsed_seconds'] / 60:.2f} min ({end['budget_used']:.0%} of its budget)")
            # every process leaves together: one tearing down its process group while another still talks to it
            # can abort the other at exit
            distributed.barrier(self.dist)
        finally:
            for signum, handler in handlers.items():
                signal.signal(signum, handler)
            bar.close()
            if self._tb is not None:
                self._tb.close()
            if self.wrapped is not self.model:
                # the DDP wrapper's reducer holds the process group and gloo's pending work: freed now, while the
                # interpreter is whole, rather than at its exit, where a gloo thread destroyed unjoined aborts it
                self.wrapped = self.model
                gc.collect()
            distributed.teardown(self.dist)
            self.close()
        return final

    def settle_precision(self) -> None:
        """train.precision=auto where only timing can tell: a few training steps of this model in fp32 and in bf16
        autocast (train/precision.py), every process agreeing on the times; the faster is kept. The probe's steps
        are rolled back (weights, optimizer, EMA, random state, counters), so the run trains as if they had not been
        taken. Nothing to do once settled; a resumed run reuses the choice its checkpoint recorded."""
        if not self.precision_pending:
            return
        t = self.cfg.train
        weights = {k: v.detach().clone() for k, v in self.model.state_dict().items()}
        optimizers = {name: copy.deepcopy(opt.state_dict()) for name, opt in self.optimizers.items()}
        ema = {k: v.clone() for k, v in self.ema.state_dict().items()} if self.ema is not None else None
        rng = ck.rng_state()
        counters, wrapped = (self.skipped, self.bad_streak), self.wrapped
        # a compiled model would be timed compiling; its eager module has the same mix of operations
        self.wrapped = getattr(wrapped, "_orig_mod", wrapped)

        def one_step(precision: str) -> None:
            self.precision, self.bad_streak = precision, 0  # a non-finite probe step must not end the run
            self._train_step()
        try:
            seconds = precisions.time_steps(
                one_step, precisions.PROBE_SHARE * 60 * t.budget_minutes if t.budget_minutes else None)
        finally:
            self.wrapped = wrapped
            self.model.load_state_dict(weights)
            for name, opt in self.optimizers.items():
                opt.load_state_dict(optimizers[name])
                opt.zero_grad(set_to_none=True)
            if ema is not None:
                self.ema.load_state_dict(ema)
            ck.set_rng_state(*rng)
            self.skipped, self.bad_streak = counters
        fp32_s, bf16_s = self._agree([seconds["fp32"], seconds["bf16"]])
        self.precision, self.precision_reason = precisions.choose(fp32_s, bf16_s,
                                                                  self.precision_reason.removeprefix("auto: "))
        self.precision_record = {"precision": self.precision, "reason": self.precision_reason,
                                 "fp32_seconds": fp32_s, "bf16_seconds": bf16_s, "bf16_speedup": fp32_s / bf16_s}
        self.precision_pending = False

    def _agree(self, values: list[float]) -> list[float]:
        """Timings averaged over every process, so that all of them take the same decision from them."""
        return distributed.average(torch.tensor(values, dtype=torch.float64, device=self.device), self.dist).tolist()

    def _plan_budget(self, configured_steps: int, bar) -> None:
        """train.budget_minutes: time one evaluation, then set train.max_steps (train/budget.py) in every process
        and in config.json."""
        t, b = self.cfg.train, self.budget
        t0 = budget.clock()
        if self.dist.is_main:
            bar.write(f"step {self.step}: {format_metrics(self.evaluate())}")
        distributed.wait_for_main(self.dist)
        # every process plans from the same (averaged) timings, so they agree on the step count
        step_s, eval_s, elapsed = self._agree([b.probe_seconds(), budget.clock() - t0, b.elapsed()])
        configured_warmup = t.warmup_steps
        p = budget.plan(t.budget_minutes, elapsed, self.step, budget.Timing(step_s, eval_s), t.eval_every,
                        t.warmup_steps, configured_steps)
        t.max_steps, t.warmup_steps = p.max_steps, p.warmup_steps
        b.plans.append(p.as_record(t.budget_minutes, step=self.step, event="plan", probe_steps=self.step))
        b.start_window(elapsed)
        bar.total = t.max_steps
        bar.refresh()
        if self.dist.is_main:
            # the probe's evaluation may have written the best checkpoint before the plan: it gets the plan too
            for folder in (self.run_dir, self.run_dir / ck.CKPT_DIR / "best"):
                if (folder / "config.json").is_file():
                    ck.write_json(folder / "config.json", self.cfg.to_dict())
            self._append_metrics({"step": self.step, "split": "budget", **b.current})
            bar.write(budget.describe(p, t.budget_minutes, configured_warmup))
            warning = budget.too_short(p, self.step, t.budget_minutes)
            if warning:
                print(warning, file=sys.stderr)

    def _check_budget(self, elapsed: float, bar) -> None:
        """At one of budget.CHECKS (`elapsed`: the budget's seconds, agreed by every process): the speed since the
        last plan or check, agreed too. Where the plan would end off its target, plan again; the schedule's decay
        goes on from where it is over the new length (optim.decay_progress), so the learning rate does not jump."""
        t, b = self.cfg.train, self.budget
        measured = b.measured(elapsed)
        step_s, eval_s = self._agree([measured.step, measured.eval])
        timing = budget.Timing(step_s, eval_s)
        p = budget.replan(t.budget_minutes, elapsed, self.step, timing, t.eval_every, t.warmup_steps)
        # a plan ends on a whole step, up to one step short of its target: only another step count is a new plan
        if p.max_steps != t.max_steps and b.departs(elapsed, self.step, t.max_steps, timing, t.eval_every):
            before = t.max_steps
            progress = decay_progress(self.step, t, self.lr_anchor)
            self.lr_anchor = [max(self.step, t.warmup_steps), progress]
            t.max_steps = p.max_steps
            b.plans.append(p.as_record(t.budget_minutes, step=self.step, event="replan", lr_progress=progress))
            bar.total = t.max_steps
            bar.refresh()
            if self.dist.is_main:
                ck.write_json(self.run_dir / "config.json", self.cfg.to_dict())
                self._append_metrics({"step": self.step, "split": "budget", **b.current})
                bar.write(budget.describe_replan(p, t.budget_minutes, before, self.step))
        b.checked(elapsed)

    def _catch_stop_signals(self) -> dict:
        """Ctrl-C (SIGINT) and SIGTERM ask the loop to finish its step, write a checkpoint and stop; a second Ctrl-C
        stops at once. Only in the main thread, where Python delivers signals."""
        import threading
        if threading.current_thread() is not threading.main_thread():
            return {}

        def ask_to_stop(signum, frame):
            self._stop_signal = signum
            signal.signal(signum, signal.default_int_handler if signum == signal.SIGINT else signal.SIG_DFL)
            if self.dist.is_main:
                print(f"\ntetragen: {signal.Signals(signum).name}: finishing step {self.step + 1}, then writing a "
                      f"checkpoint (again to stop at once)", file=sys.stderr)
        previous = {}
        for signum in (signal.SIGINT, signal.SIGTERM):
            previous[signum] = signal.getsignal(signum)
            signal.signal(signum, ask_to_stop)
        return previous

    def _stopping(self) -> bool:
        """Whether a stop signal arrived, agreed by every process (one of them signalled stops them all)."""
        if not self.dist.enabled:
            return self._stop_signal is not None
        flag = torch.tensor([float(self._stop_signal or 0)], device=self.device)
        torch.distributed.all_reduce(flag, op=torch.distributed.ReduceOp.MAX)
        if flag.item() and self._stop_signal is None:
            self._stop_signal = int(flag.item())
        return bool(flag.item())

    def _resume_hint(self) -> str:
        where = ck.step_dirs(self.run_dir)
        saved = f"the checkpoint {where[-1]}" if where else "no checkpoint"
        return (f"stopped at step {self.step} of {self.cfg.train.max_steps} with {saved}; continue with "
                f"`tetragen train {self.cfg.family} --out {self.run_dir} --resume`")

    def _past(self, deadline: float) -> bool:
        """Whether the time limit has passed, agreed by every process (one of them past it stops them all)."""
        flag = torch.tensor([float(budget.clock() > deadline)], device=self.device)
        return bool(distributed.average(flag, self.dist).item() > 0)

    def _train_step(self) -> tuple[dict | None, int]:
        t, d = self.cfg.train, self.dist
        batches = [{k: v.to(self.device, non_blocking=True) for k, v in
                    self.data.train_batch(seed=t.seed, step=self.step, micro=m, batch_size=t.batch_size,
                                          rank=d.rank, world_size=d.world_size).items()}
                   for m in range(t.grad_accum)]
        units = sum(self.data.count(b) for b in batches) * d.world_size
        lr = lr_at(self.step, t, self.lr_anchor)
        logs: dict = {"lr": lr}
        ok = True
        for phase in self.phases:
            opt = self.optimizers[phase.name]
            for group in opt.param_groups:
                group["lr"] = lr * phase.lr_scale
            opt.zero_grad(set_to_none=True)
            total = torch.zeros((), device=self.device)
            extra: dict = {}
            for m, batch in enumerate(batches):
                sync = contextlib.nullcontext()
                if d.enabled and m < len(batches) - 1:
                    sync = self.wrapped.no_sync() if hasattr(self.wrapped, "no_sync") else sync
                with sync, autocast(self.device, self.precision):
                    loss, metrics = phase.loss(self.wrapped, batch)
                (loss / len(batches)).backward()
                total += loss.detach().float()
                for k, v in metrics.items():
                    extra[k] = extra.get(k, 0.0) + float(v) / len(batches)
            loss_value = distributed.average(total / len(batches), d)
            max_norm = t.grad_clip if t.grad_clip > 0 else math.inf
            norm = torch.nn.utils.clip_grad_norm_(phase.params, max_norm)
            if not (torch.isfinite(loss_value) and torch.isfinite(norm)):
                ok = False
                opt.zero_grad(set_to_none=True)
                continue
            opt.step()
            name = "loss" if len(self.phases) == 1 else f"loss_{phase.name}"
            logs[name] = float(loss_value)
            logs[f"grad_norm{'' if len(self.phases) == 1 else '_' + phase.name}"] = float(norm)
            logs.update({k if len(self.phases) == 1 else f"{k}_{phase.name}": v for k, v in extra.items()})
        if not ok:
            self.skipped += 1
            self.bad_streak += 1
            if self.bad_streak >= t.max_bad_steps:
                where = ck.step_dirs(self.run_dir)
                keep = f"the last good checkpoint is {where[-1]}" if where else "no checkpoint had been written yet"
                raise TrainingError(f"the loss or gradient was non-finite for {self.bad_streak} steps in a row "
                                    f"(at step {self.step + 1}); {keep}; lower train.lr, raise train.warmup_steps "
                                    f"or use train.precision=fp32")
            return None, units
        self.bad_streak = 0
        if self.ema is not None:
            self.ema.update(self.model, self.step)
        if "loss" not in logs:  # multi-phase: the headline loss is the sum of the phases'
            logs["loss"] = sum(v for k, v in logs.items() if k.startswith("loss_"))
        return logs, units

    # ------------------------------------------------------------------------------------------------------------
    def eval_model(self) -> torch.nn.Module:
        """The weights that evaluation and sampling use: the EMA when it is on."""
        if self.ema is None:
            return self.model
        shadow = copy.deepcopy(self.model)
        shadow.load_state_dict(self.ema.state_dict())
        return shadow

    @torch.no_grad()
    def evaluate(self) -> dict:
        model = self.eval_model()
        was_training = model.training
        model.eval()
        try:
            metrics = self.family.evaluate(model, self.data, self.cfg, self.device)
            if self.family.preview is not None:
                self.family.preview(model, self.data, self.cfg, self.run_dir / "samples" / f"step_{self.step:08d}")
        finally:
            model.train(was_training)
        metrics = {k: float(v) for k, v in metrics.items()}
        self._append_metrics({"step": self.step, "split": "val", **metrics})
        key = self.family.primary_metric
        if key in metrics and (self.best is None or metrics[key] < self.best["value"]):
            self.best = {"metric": key, "value": metrics[key], "step": self.step}
            self._write_best(model, metrics)
        return metrics

    # ------------------------------------------------------------------------------------------------------------
    def _start_files(self) -> None:
        self.run_dir.mkdir(parents=True, exist_ok=True)
        ck.clean_temporaries(self.run_dir)
        ck.write_json(self.run_dir / "config.json", self.cfg.to_dict())
        self.data.save_assets(self.run_dir)
        metrics = self.run_dir / "metrics.jsonl"
        if self.resuming and metrics.exists():  # forget what a killed process logged after its last checkpoint
            keep = [ln for ln in metrics.read_text(encoding="utf-8", errors="replace").splitlines()
                    if _record_step(ln) is not None and _record_step(ln) <= self.step]
            files.write_text(metrics, "".join(ln + "\n" for ln in keep))
        try:
            from torch.utils.tensorboard import SummaryWriter
            self._tb = SummaryWriter(str(self.run_dir / "tensorboard"), purge_step=self.step or None)
        except ImportError:
            self._tb = None

    def _append_metrics(self, record: dict) -> None:
        with open(self.run_dir / "metrics.jsonl", "a", encoding="utf-8") as f:
            f.write(json.dumps(record) + "\n")
        if self._tb is not None:
            split = record.get("split", "train")
            for k, v in record.items():
                if isinstance(v, (int, float)) and k not in ("step",):
                    self._tb.add_scalar(f"{split}/{k}", v, record["step"])

    def _log_train(self, window: dict, logs: dict) -> dict:
        dt = max(time.perf_counter() - window["t0"], 1e-9)
        rec = {"step": self.step, "split": "train", **{k: v for k, v in logs.items() if k != "loss"},
               "throughput": window["units"] / dt, "unit": self.data.unit, "precision": self.precision,
               "precision_reason": self.precision_reason,
               "skipped_steps": self.skipped}
        if window["n"]:
            rec["loss"] = window["loss"] / window["n"]
        if self.dist.is_main:
            self._append_metrics(rec)
        return rec

    def _write_best(self, model: torch.nn.Module, metrics: dict) -> None:
        def write(folder: Path) -> None:
            ck.save_tensors(ck.unique_state(model), folder / "model.safetensors")
            ck.write_json(folder / "config.json", self.cfg.to_dict())
            self.data.save_assets(folder)
            ck.write_json(folder / "metrics.json", {"step": self.step, **metrics})
        try:
            ck.write_folder_atomically(self.run_dir / ck.CKPT_DIR / "best", write)
        except OSError as e:
            raise self._unwritable(e, f"the best checkpoint (step {self.step})") from None

    def save(self) -> None:
        """A checkpoint; every process calls it (each sends rank 0 its RNG state), rank 0 writes."""
        rngs = distributed.gather_bytes(ck.rng_bytes(), self.dist)
        if not self.dist.is_main:
            return
        try:
            self._save(rngs)
        except OSError as e:
            raise self._unwritable(e, f"the checkpoint of step {self.step}") from None

    def _unwritable(self, e: OSError, what: str) -> UserError:
        """Disk full, folder gone read-only: one line; the earlier checkpoints are untouched."""
        where = ck.step_dirs(self.run_dir)
        keep = f"the last complete checkpoint is {where[-1]}" if where else "no checkpoint had been written yet"
        return UserError(f"--out {self.run_dir}: cannot write {what} ({e.strerror or e}); {keep}; free space and "
                         f"--resume")

    def _save(self, rngs: list[bytes]) -> None:
        weights = ck.unique_state(self.model)
        ema = self.ema.state_dict() if self.ema is not None else None
        opt_tensors, opt_groups = ck.optimizer_state(self.optimizers)
        state = {"step": self.step, "data_position": {"step": self.step, "seed": self.cfg.train.seed},
                 "skipped_steps": self.skipped, "bad_streak": self.bad_streak, "best": self.best,
                 "world_size": self.dist.world_size, "optimizer_groups": opt_groups,
                 "optimizer": self.cfg.train.optimizer, "lr_anchor": self.lr_anchor,
                 "budget": self.budget.state() if self.budget is not None else None,
                 "precision": self.precision_record}

        def write(folder: Path) -> None:
            ck.save_tensors(weights, folder / "model.safetensors")
            if ema is not None:
                ck.save_tensors(ema, folder / "ema.safetensors")
            ck.save_tensors(opt_tensors, folder / "optimizer.safetensors")
            for rank, data in enumerate(rngs):  # each process's own RNG: dropout masks and noise differ by rank
                (folder / f"rng_rank{rank}.safetensors").write_bytes(data)
            ck.write_json(folder / "config.json", self.cfg.to_dict())
            self.data.save_assets(folder)
            ck.write_json(folder / ck.STATE_FILE, state)  # written last: its presence marks a complete folder
        ck.write_folder_atomically(self.run_dir / ck.CKPT_DIR / f"step_{self.step:08d}", write)
        ck.save_tensors(weights, self.run_dir / "model.safetensors")
        if ema is not None:
            ck.save_tensors(ema, self.run_dir / "ema.safetensors")
        ck.prune(self.run_dir, self.cfg.train.keep_last)

    def _load_latest(self) -> None:
        folder = ck.step_dirs(self.run_dir)[-1]
        ck.load_weights(self.model, folder / "model.safetensors")
        if self.ema is not None:
            if (folder / "ema.safetensors").is_file():
                self.ema.load_state_dict(ck.read_tensors(folder / "ema.safetensors"))
            else:
                self.ema = EMA(self.model, self.cfg.train.ema_decay)
        state = json.loads((folder / ck.STATE_FILE).read_text())
        t = self.cfg.train
        if state.get("optimizer", t.optimizer) != t.optimizer:
            raise UserError(f"train.optimizer={t.optimizer}: the run at {self.run_dir} was trained with "
                            f"{state['optimizer']}, and its optimizer state cannot carry over; resume with "
                            f"train.optimizer={state['optimizer']}, or fine-tune it into a new run")
        # the saved state carries the moments; the hyperparameters (weight decay, betas, momentum) are this
        # command line's, so that an override on --resume takes effect
        fresh = {name: [{k: v for k, v in g.items() if k != "params"} for g in opt.param_groups]
                 for name, opt in self.optimizers.items()}
        try:
            ck.load_optimizer_state(self.optimizers, ck.read_tensors(folder / "optimizer.safetensors"),
                                    state["optimizer_groups"])
        except (ValueError, KeyError) as e:
            raise UserError(f"{folder}: its optimizer state does not fit this model and optimizer ({e}); resume with "
                            f"the run's own settings") from None
        for name, opt in self.optimizers.items():
            for group, settings in zip(opt.param_groups, fresh[name]):
                group.update(settings)
        if state.get("world_size", 1) != self.dist.world_size:
            raise UserError(f"{self.run_dir}: the run was trained by {state.get('world_size', 1)} process(es) and "
                            f"this resume has {self.dist.world_size}; each process's batches and random draws "
                            f"depend on the count, so resume with --nproc-per-node={state.get('world_size', 1)}, "
                            f"or fine-tune the run into a new one")
        rng_file = folder / f"rng_rank{self.dist.rank}.safetensors"
        if rng_file.is_file():
            ck.set_rng_bytes(rng_file.read_bytes())
        else:  # a checkpoint from before per-process RNG files: one state, saved by rank 0
            ck.set_rng_state(ck.read_tensors(folder / "rng.safetensors"), state["rng"])
        self.step = state["step"]
        self.skipped, self.bad_streak, self.best = state["skipped_steps"], state["bad_streak"], state["best"]
        self.lr_anchor = state.get("lr_anchor")
        if self.precision_pending and state.get("precision"):  # the choice this run timed when it started
            self.precision_record = state["precision"]
            self.precision, self.precision_reason = self.precision_record["precision"], self.precision_record["reason"]
            self.precision_pending = False
        if t.budget_minutes and state.get("budget"):
            self.budget = budget.Budget(t.budget_minutes, self.started, state["budget"])
            if self.budget.planned and self.budget.following:
                self._follow_plan(folder)
        if self.dist.is_main:
            print(f"tetragen: resuming {self.run_dir} from step {self.step}", file=sys.stderr)

    def _follow_plan(self, folder: Path) -> None:
        """A resumed budgeted run takes its step count and warm-up from its latest plan (the run's config.json may
        hold a re-plan made after the checkpoint, or lag behind one); unless this command line asked for another
        train.max_steps or warm-up than either config.json holds: then that schedule rules and the plan is no longer
        checked."""
        t, latest = self.cfg.train, self.budget.current
        saved = set()
        for path in (self.run_dir / "config.json", folder / "config.json"):
            try:
                train = json.loads(path.read_text(encoding="utf-8"))["train"]
                saved.add((train["max_steps"], train["warmup_steps"]))
            except (OSError, ValueError, KeyError, TypeError):
                pass
        if (t.max_steps, t.warmup_steps) in saved:
            t.max_steps, t.warmup_steps = latest["max_steps"], latest["warmup_steps"]
        else:
            self.budget.following = False
