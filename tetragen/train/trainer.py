"""The trainer: one loop for every family, driven by the family's phases. Never subclassed.

Each step: draw the step's micro-batches (a pure function of seed and step), then for each phase of the family's
objective: zero grads, accumulate the loss over micro-batches (bf16 autocast when asked), clip, check the loss and
gradient norm are finite (skip the step if not), and step that phase's AdamW at the scheduled learning rate.
Around it: EMA, evaluation, metrics.jsonl (+ TensorBoard), atomic checkpoints and exact resume.
"""
from __future__ import annotations

import contextlib
import copy
import json
import math
import os
import shutil
import sys
import time
from pathlib import Path

import torch
from tqdm import tqdm

from ..config import RunConfig
from ..errors import TrainingError, UserError
from ..registry import get_family
from . import checkpoint as ck
from . import distributed, finetune
from .ema import EMA
from .optim import lr_at, make_optimizer


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


def native_bf16(device: torch.device) -> bool:
    """Whether this device computes bf16 matrix products natively. CPUs without AVX-512 (AVX2 only) emulate them,
    many times slower than fp32."""
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return torch.backends.cpu.get_cpu_capability().startswith("AVX512")


def resolve_precision(precision: str, device: torch.device, *, warn: bool = True) -> str:
    """The precision a run computes in: `auto` becomes bf16 or fp32 by the hardware; an explicit bf16 on hardware
    that only emulates it is kept, with a warning."""
    if precision == "auto":
        return "bf16" if native_bf16(device) else "fp32"
    if precision == "bf16" and warn and not native_bf16(device):
        where = torch.backends.cpu.get_cpu_capability() if device.type == "cpu" else torch.cuda.get_device_name()
        print(f"tetragen: warning: train.precision=bf16 but this {device.type} ({where}) has no native bf16; it is "
              f"emulated and can be many times slower than fp32: use train.precision=auto or fp32", file=sys.stderr)
    return precision


def autocast(device: torch.device, precision: str):
    if precision == "bf16":
        return torch.autocast(device_type=device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


def prepare_run_dir(out: Path, *, resume: bool, overwrite: bool) -> bool:
    """Check what is at `out` before anything is written; returns True when an existing run should be resumed."""
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise UserError(f"--out {out}: exists and is not a folder")
    has_files = out.is_dir() and any(out.iterdir())
    if resume:
        if ck.step_dirs(out):
            return True
        if has_files and not ck.is_run_dir(out):
            raise UserError(f"--out {out}: the folder is not a tetragen run; pick an empty or new folder")
        print(f"tetragen: no checkpoint in {out} yet; starting a new run", file=sys.stderr)
        return False
    if has_files:
        if not overwrite:
            raise UserError(f"--out {out}: a run (or other files) is already there; pass --resume to continue it, "
                            f"--overwrite to replace it, or choose another folder")
        if not ck.is_run_dir(out):
            raise UserError(f"--out {out}: --overwrite only replaces tetragen runs and this folder is not one; "
                            f"choose another folder")
    return False


class Trainer:
    def __init__(self, cfg: RunConfig, data, run_dir: str | Path, *, resume: bool = False,
                 overwrite: bool = False, progress: bool = True):
        self.cfg, self.data, self.run_dir = cfg, data, Path(run_dir)
        self.family = get_family(cfg.family)
        t = cfg.train
        self.device = resolve_device(t.device)
        self.dist = distributed.setup(self.device.type)
        self.precision = resolve_precision(t.precision, self.device, warn=self.dist.is_main)
        if self.dist.enabled and self.device.type == "cuda":
            self.device = torch.device("cuda", self.dist.local_rank)
        self.resuming = False
        if self.dist.is_main:
            self.resuming = prepare_run_dir(self.run_dir, resume=resume, overwrite=overwrite)
        if self.dist.enabled:
            flag = torch.tensor([int(self.resuming)])
            torch.distributed.broadcast(flag, 0)
            self.resuming = bool(flag.item())
        if self.dist.is_main and not self.resuming and overwrite and self.run_dir.is_dir():
            shutil.rmtree(self.run_dir)

        torch.manual_seed(t.seed)  # the same initial weights in every process
        # a fine-tune starts from another run's weights, and with LoRA trains adapters only (train/finetune.py)
        self.model = finetune.prepare(self.family.build(cfg.model), cfg).to(self.device)
        self.phases = self.family.objective(self.model, cfg)
        self.optimizers = {p.name: make_optimizer(p.params, t, self.device.type, self.model) for p in self.phases}
        self.ema = EMA(self.model, t.ema_decay) if t.ema_decay > 0 else None
        self.step, self.skipped, self.bad_streak = 0, 0, 0
        self.best: dict | None = None
        torch.manual_seed(t.seed + 1 + self.dist.rank)  # dropout and sampling noise differ between processes
        if self.resuming:
            self._load_latest()

        self.wrapped = self.model
        if self.dist.enabled:
            from torch.nn.parallel import DistributedDataParallel as DDP
            # with several phases each forward uses only part of the model (a GAN's "disc" phase leaves the
            # generator out of the graph), which DDP must be told to expect
            self.wrapped = DDP(self.model, device_ids=[self.device.index] if self.device.type == "cuda" else None,
                               find_unused_parameters=len(self.phases) > 1)
        if t.compile:
            self.wrapped = torch.compile(self.wrapped)
        self.progress = progress and self.dist.is_main and not os.environ.get("TETRAGEN_NO_PROGRESS")
        self._tb = None

    # ------------------------------------------------------------------------------------------------------------
    def fit(self) -> dict:
        """Train to train.max_steps; returns the final evaluation metrics."""
        t = self.cfg.train
        if self.dist.is_main:
            self._start_files()
        bar = tqdm(total=t.max_steps, initial=self.step, disable=not self.progress, unit="step",
                   dynamic_ncols=True, file=sys.stderr)
        window = {"loss": 0.0, "n": 0, "units": 0, "t0": time.perf_counter()}
        final: dict = {}
        deadline = time.perf_counter() + 60 * t.max_minutes if t.max_minutes else None
        try:
            while self.step < t.max_steps:
                logs, units = self._train_step()
                self.step += 1
                if logs is not None:
                    window["loss"] += logs["loss"]
                    window["n"] += 1
                window["units"] += units
                bar.update(1)
                if self.step % t.log_every == 0 or self.step == t.max_steps:
                    rec = self._log_train(window, logs or {})
                    bar.set_postfix(loss=f"{rec.get('loss', float('nan')):.4f}",
                                    **{f"{self.data.unit}/s": f"{rec['throughput']:.0f}"})
                    window = {"loss": 0.0, "n": 0, "units": 0, "t0": time.perf_counter()}
                out_of_time = deadline is not None and self._past(deadline)
                last = self.step == t.max_steps or out_of_time
                if self.dist.is_main and (last or (t.eval_every and self.step % t.eval_every == 0)):
                    final = self.evaluate()  # rank 0 only; the others wait for it at the next gradient sync
                    bar.write(f"step {self.step}: {format_metrics(final)}")
                if last or (t.save_every and self.step % t.save_every == 0):
                    self.save()
                if out_of_time:
                    if self.dist.is_main:
                        print(f"tetragen: train.max_minutes={t.max_minutes:g} reached at step {self.step} of "
                              f"{t.max_steps}; `--resume` carries on", file=sys.stderr)
                    break
        finally:
            bar.close()
            if self._tb is not None:
                self._tb.close()
            distributed.teardown(self.dist)
        return final

    def _past(self, deadline: float) -> bool:
        """Whether the time limit has passed, agreed by every process (one of them past it stops them all)."""
        flag = torch.tensor([float(time.perf_counter() > deadline)], device=self.device)
        return bool(distributed.average(flag, self.dist).item() > 0)

    def _train_step(self) -> tuple[dict | None, int]:
        t, d = self.cfg.train, self.dist
        batches = [{k: v.to(self.device, non_blocking=True) for k, v in
                    self.data.train_batch(seed=t.seed, step=self.step, micro=m, batch_size=t.batch_size,
                                          rank=d.rank, world_size=d.world_size).items()}
                   for m in range(t.grad_accum)]
        units = sum(self.data.count(b) for b in batches) * d.world_size
        lr = lr_at(self.step, t)
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
            self.ema.update(self.model)
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
            keep = [ln for ln in metrics.read_text().splitlines() if ln.strip() and json.loads(ln)["step"] <= self.step]
            metrics.write_text("".join(ln + "\n" for ln in keep))
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
        ck.write_folder_atomically(self.run_dir / ck.CKPT_DIR / "best", write)

    def save(self) -> None:
        if not self.dist.is_main:
            return
        weights = ck.unique_state(self.model)
        ema = self.ema.state_dict() if self.ema is not None else None
        opt_tensors, opt_groups = ck.optimizer_state(self.optimizers)
        rng_tensors, rng_meta = ck.rng_state()
        state = {"step": self.step, "data_position": {"step": self.step, "seed": self.cfg.train.seed},
                 "skipped_steps": self.skipped, "bad_streak": self.bad_streak, "best": self.best,
                 "world_size": self.dist.world_size, "optimizer_groups": opt_groups, "rng": rng_meta}

        def write(folder: Path) -> None:
            ck.save_tensors(weights, folder / "model.safetensors")
            if ema is not None:
                ck.save_tensors(ema, folder / "ema.safetensors")
            ck.save_tensors(opt_tensors, folder / "optimizer.safetensors")
            ck.save_tensors(rng_tensors, folder / "rng.safetensors")
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
        ck.load_optimizer_state(self.optimizers, ck.read_tensors(folder / "optimizer.safetensors"),
                                state["optimizer_groups"])
        rng = ck.read_tensors(folder / "rng.safetensors")
        if state.get("world_size", 1) == self.dist.world_size:
            ck.set_rng_state(rng, state["rng"])
        self.step = state["step"]
        self.skipped, self.bad_streak, self.best = state["skipped_steps"], state["bad_streak"], state["best"]
        if self.dist.is_main:
            print(f"tetragen: resuming {self.run_dir} from step {self.step}", file=sys.stderr)
