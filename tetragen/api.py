"""The Python API the CLI is built on: load data for a config, train, load a run."""
from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import torch

from .config import RunConfig, build_run_config, validate_cross
from .errors import UserError
from .registry import get_family, list_families, run_modality
from .train import checkpoint as ck
from .train import finetune as ft_module


def load_data(cfg: RunConfig, assets=None, task: str = "lm"):
    """The dataset a run config asks for, read by the family (with `assets`, a trained run's tokenizer, when
    given). Sets the model config's data-derived fields (vocabulary size, class count)."""
    return get_family(cfg.family).load_data(cfg, assets, task)


def checked(cfg: RunConfig, assets=None) -> None:
    """A run config's keys checked, a run of a family that learns grids first taking the shape its kind of content
    fixes (so a key checked against model.image_size is checked at the size the run will have); what that changed
    is said once they pass."""
    notice = None
    if get_family(cfg.family).grids:
        from .data.grids import fit_run_shape
        notice = fit_run_shape(cfg, assets)
    validate_cross(cfg)
    if notice:
        print(f"tetragen: {notice}", file=sys.stderr)


def read_assets(run_dir: Path, cfg: RunConfig, base: RunConfig | None = None):
    """What a run keeps beside its weights to be used again (its tokenizer, its class names), read by the family.
    `base`: the run's own config when `cfg` is a new run built on it (a fine-tune)."""
    return get_family(cfg.family).read_assets(Path(run_dir), cfg, base)


def train(family: str, data: str, out: str | Path, *, preset: str | None = None, config: str | None = None,
          overrides: list[str] = (), resume: bool = False, overwrite: bool = False, progress: bool = True,
          init_from: str | None = None, task: str = "lm") -> dict:
    """Train a model; the same as `tetragen train`. Returns the final evaluation metrics.

    `init_from`: a folder of another library whose shape and weights the run starts from (read by the family's
    `importer`, which may also take the folder's tokenizer).

    `task`: "lm" is the family's main task; another of the family's `tasks` (a classifier, `task="classify"`) is
    trained from random initialisation on its own data, the same model `finetune(..., task=...)` makes from a trained
    run."""
    from .train.trainer import Trainer
    started = time.perf_counter()  # a train.budget_minutes budget holds loading the data and building the model
    out = Path(out)
    fam = get_family(family)
    _check_task(fam, task)
    if task != "lm" and init_from:
        raise UserError(f"--init-from: another library's folder starts a {fam.name} run's main task, not --task "
                        f"{task}; fine-tune a trained run instead (`tetragen finetune RUN --task {task}`)")
    _refuse_foreign_folder(out, resume=resume, overwrite=overwrite)
    importer = None
    if resume and ck.step_dirs(out):  # continue with the run's own config; overrides may extend it
        # the command line is checked as for a new run (family, preset, --config), then the run's config is used
        asked = build_run_config(family, preset=preset, yaml_path=config, overrides=overrides)
        cfg = read_run_config(out, extra_overrides=overrides)
        if asked.family != cfg.family:
            raise UserError(f"--out {out}: the run there is a {cfg.family} run, not {family}; resume it with "
                            f"`tetragen train {cfg.family} --resume`, or start a new run with another --out")
        assets = read_assets(out, cfg)
        if data and data != cfg.data.source and str(Path(data).expanduser().resolve()) != cfg.data.source:
            raise UserError(f"--data {data}: the run at {out} was trained on {cfg.data.source!r}; "
                            f"resume it with the same data, or start a new run with --out")
    else:
        if init_from:  # the folder fixes the model's shape; the user's overrides come after
            importer = fam.importer
            if importer is None:
                takers = [n for n in list_families() if get_family(n).importer is not None]
                raise UserError(f"--init-from: the {fam.name} family does not start from another library's folder"
                                + (f" ({', '.join(get_family(n).importer.what + ' for ' + n for n in takers)})"
                                   if takers else ""))
            overrides = [*importer.overrides(Path(init_from).expanduser()), *overrides]
        cfg = build_run_config(family, preset=preset, yaml_path=config, overrides=overrides)
        # a path is stored absolute so that eval and resume work from any folder
        cfg.data.source = str(Path(data).expanduser().resolve()) if data and Path(data).expanduser().exists() else data
        if importer is not None:
            cfg.finetune.init_from = str(Path(init_from).expanduser().resolve())
        if cfg.data.tokenizer not in ("char", "bpe") and Path(cfg.data.tokenizer).expanduser().is_file():
            cfg.data.tokenizer = str(Path(cfg.data.tokenizer).expanduser().resolve())
        assets = None
    checked(cfg, assets)
    dataset = load_data(cfg, assets, task)
    if importer is not None:
        if importer.check is not None:
            importer.check(cfg, dataset)
        ft_module.prepare(fam.build(cfg.model), cfg)  # checked before anything is written
    return Trainer(cfg, dataset, out, resume=resume, overwrite=overwrite, progress=progress, started=started).fit()


def _check_task(family, task: str) -> None:
    """`task`: "lm" (the family's main task) or one of the family's extra `tasks`."""
    if task == "lm" or task in family.tasks:
        return
    takers = [n for n in list_families() if task in get_family(n).tasks]
    if not takers:
        known = sorted({"lm", *(t for n in list_families() for t in get_family(n).tasks)})
        raise UserError(f"--task: {task!r} is not a task; choose one of: {', '.join(known)}")
    raise UserError(f"--task {task}: the {family.name} family has no {task} task ({', '.join(takers)} runs do)")


def read_run_config(run_dir: str | Path, extra_overrides: list[str] = ()) -> RunConfig:
    run_dir = Path(run_dir)
    path = run_dir / "config.json"
    if not path.is_file():
        what = "does not exist" if not run_dir.exists() else "is not a tetragen run (no config.json)"
        raise UserError(f"{run_dir}: {what}; pass the --out folder of a `tetragen train` run")
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as e:
        raise UserError(f"{path}: not valid JSON ({e})") from None
    if not isinstance(doc, dict) or "family" not in doc:
        raise UserError(f"{path}: no 'family' field; this is not a tetragen run config")
    family = doc["family"]
    if not isinstance(family, str):
        raise UserError(f"{path}: 'family' must be a family name such as \"gpt\", got {family!r}")
    try:
        get_family(family)
    except UserError as e:
        raise UserError(f"{path}: {e}; this tetragen cannot load the run") from None
    return build_run_config(family, base=doc, overrides=extra_overrides, base_source=str(path))


def _refuse_foreign_folder(out: Path, *, resume: bool, overwrite: bool) -> None:
    """--resume and --overwrite write into (or delete) an existing folder: only ever one that holds a tetragen run."""
    if (resume or overwrite) and (out / "config.json").is_file() and not ck.is_run_dir(out):
        flag = "--overwrite" if overwrite else "--resume"
        raise UserError(f"--out {out}: its config.json was not written by tetragen, so {flag} leaves the folder "
                        f"alone; choose another --out folder")


def load(run_dir: str | Path, *, device: str = "cpu", ema: bool | None = None):
    """Load a trained run (or one of its checkpoint folders) for inference on `device` ("cpu", "cuda", "cuda:1").

    For a GPT run this returns a `TextGenerator`: `tetragen.load("runs/gpt").generate("ROMEO:", 200, seed=1)`.
    The EMA weights are used when the run has them, unless `ema=False`.
    """
    where = check_device(device)
    run_dir = Path(run_dir)
    cfg = read_run_config(run_dir)
    family = get_family(cfg.family)
    assets = read_assets(run_dir, cfg)
    weights = run_dir / ("ema.safetensors" if (ema is not False and (run_dir / "ema.safetensors").is_file())
                         else "model.safetensors")
    if not weights.is_file() and (run_dir / ft_module.ADAPTER_JSON).is_file():  # a LoRA adapter over its base
        weights = run_dir / ft_module.ADAPTER_FILE
        tensors = ft_module.read_adapter(run_dir, cfg)
    else:
        tensors = ck.read_tensors(weights)
    model = ft_module.structure_for(family.build(cfg.model), cfg, tensors)
    ck.load_weights(model, weights, tensors)
    pipe = family.pipeline(model.to(where), assets, cfg)
    made = run_modality(cfg)  # a family trained on another kind than its own: that kind's content comes out
    form = made.tokens if family.tokens else made.grids
    if made.name != family.makes and form is not None and form.adapt is not None:
        pipe = form.adapt(pipe, run_dir)
    return pipe


def check_device(name: str) -> torch.device:
    """`--device NAME` as a torch device; one-line errors for a name torch does not know or a device not here."""
    try:
        device = torch.device(name)
    except (RuntimeError, TypeError):
        raise UserError(f"--device {name}: not a device; use cpu, cuda or cuda:N") from None
    if device.type == "cuda":
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if not count:
            raise UserError(f"--device {name}: no CUDA device is available here; use --device cpu")
        if device.index is not None and device.index >= count:
            raise UserError(f"--device {name}: this machine has {count} CUDA device(s), numbered from 0")
    elif device.type != "cpu":
        raise UserError(f"--device {name}: tetragen runs on cpu or cuda devices")
    return device


def evaluate(run_dir: str | Path, *, data: str | None = None, n: int = 10000, seed: int = 0, iw_samples: int = 100,
             eval_tokens: int = 0, device: str = "cpu") -> tuple[dict, list[str]]:
    """Evaluate a trained run on its own data (or `data`); the same as `tetragen eval`. Returns (metrics, the lines
    `tetragen eval` prints): validation loss and bits per character for language models, FID/KID (+ class accuracy)
    of `n` samples for image generators, likelihood bounds with `iw_samples` importance samples where defined."""
    from .eval.image import check_n
    from .eval.likelihood import check_iw_samples
    check_n(n)
    iw_samples = check_iw_samples(iw_samples)
    pipe = load(run_dir, device=device)
    cfg = pipe.config
    if data:
        cfg.data.source = data
    cfg.train.eval_tokens = eval_tokens
    try:
        dataset = load_data(cfg, pipe.assets)
    except UserError as e:
        if data:
            raise
        raise UserError(f"{run_dir}: cannot read the data the run was trained on ({e}); "
                        f"pass --data NAME_OR_PATH to evaluate on a copy of it") from None
    return pipe.evaluate(dataset, n=n, seed=seed, iw_samples=iw_samples)


def finetune(run_dir: str | Path, data: str, out: str | Path, *, overrides: list[str] = (), overwrite: bool = False,
             progress: bool = True, task: str = "lm") -> dict:
    """Train a new run at `out` that starts from the trained run at `run_dir` (its weights, config and tokenizer)
    with its own schedule; `finetune.method=lora` trains adapters only. The same as `tetragen finetune`.

    `task`: another of the family's `tasks` adds that task's head, trained on `data` (`task="classify"`: text,label
    rows of a .csv/.jsonl file; the labels are saved in the run)."""
    from .train.trainer import Trainer
    run_dir, out = Path(run_dir), Path(out)
    base = read_run_config(run_dir)
    family = get_family(base.family)
    _check_task(family, task)
    weights = run_dir / ("ema.safetensors" if (run_dir / "ema.safetensors").is_file() else "model.safetensors")
    if not weights.is_file() and (run_dir / ft_module.ADAPTER_JSON).is_file():
        raise UserError(f"{run_dir}: holds a LoRA adapter only; fine-tune from a run saved with "
                        f"finetune.lora_save=merged (or from its base run)")
    if out.resolve() == run_dir.resolve():
        raise UserError(f"--out {out}: is the run being fine-tuned; choose a new folder")
    _refuse_foreign_folder(out, resume=False, overwrite=overwrite)
    doc = {k: v for k, v in base.to_dict().items() if k != "finetune"}  # a fine-tune of a fine-tune starts afresh
    cfg = build_run_config(base.family, base=doc, overrides=overrides, base_source=str(run_dir / "config.json"))
    cfg.finetune.init_from = str(weights.resolve())
    cfg.data.source = str(Path(data).expanduser().resolve()) if data and Path(data).expanduser().exists() else data
    assets = read_assets(run_dir, cfg, base)
    checked(cfg, assets)
    dataset = load_data(cfg, assets, task)  # a new task head takes its labels from the data
    ft_module.prepare(family.build(cfg.model), cfg)  # weights and LoRA targets checked before anything is written
    metrics = Trainer(cfg, dataset, out, overwrite=overwrite, progress=progress).fit()
    ft_module.finish(out, cfg)
    return metrics
