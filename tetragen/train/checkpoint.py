"""Checkpoints as `config.json` + `model.safetensors` + trainer state (safetensors + JSON). No pickle anywhere.

A run directory looks like this:

    RUN/config.json  model.safetensors  tokenizer.json  [ema.safetensors]  metrics.jsonl
    RUN/checkpoints/step_00000500/   the same files + optimizer.safetensors, rng.safetensors, trainer_state.json
    RUN/checkpoints/best/            weights at the best evaluation so far (+ metrics.json)

Every checkpoint folder is written under a temporary name and renamed into place, and top-level files are replaced
with `os.replace`, so a kill at any moment leaves the previous checkpoint whole and loadable.
"""
from __future__ import annotations

import json
import os
import random
import shutil
from pathlib import Path

import numpy as np
import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from ..errors import UserError

CKPT_DIR = "checkpoints"
STATE_FILE = "trainer_state.json"


# ----------------------------------------------------------------------------------------------------------------
# tensors <-> files

def unique_state(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """The model's state dict with tied tensors stored once (the first name wins), contiguous, on the CPU."""
    seen, out = set(), {}
    for name, t in model.state_dict().items():
        key = (t.untyped_storage().data_ptr(), t.storage_offset(), tuple(t.shape))
        if key in seen:
            continue
        seen.add(key)
        out[name] = t.detach().to("cpu").contiguous()
    return out


def save_tensors(tensors: dict[str, torch.Tensor], path: Path, metadata: dict | None = None) -> None:
    tmp = path.with_name(path.name + f".tmp{os.getpid()}")
    save_file({k: v.detach().to("cpu").contiguous() for k, v in tensors.items()}, str(tmp), metadata=metadata)
    os.replace(tmp, path)


def read_tensors(path: Path) -> dict[str, torch.Tensor]:
    if not Path(path).is_file():
        raise UserError(f"{path}: missing; the run folder is incomplete")
    try:
        return load_file(str(path))
    except (SafetensorError, OSError, ValueError, RuntimeError) as e:
        raise UserError(f"{path}: not a readable safetensors file (truncated or corrupt: "
                        f"{str(e).splitlines()[0][:100]}); {latest_hint(path)}") from None


def load_weights(model: torch.nn.Module, path: Path, tensors: dict | None = None) -> None:
    """Load weights into `model`, accepting only the names tying leaves out; shape mismatches are user errors."""
    tensors = read_tensors(path) if tensors is None else tensors
    expected = model.state_dict()
    unexpected = sorted(set(tensors) - set(expected))
    if unexpected:
        raise UserError(f"{path}: tensor {unexpected[0]!r} is not part of this model ({len(unexpected)} unknown); "
                        f"the weights do not match config.json")
    for name, t in tensors.items():
        if tuple(t.shape) != tuple(expected[name].shape):
            raise UserError(f"{path}: tensor {name!r} has shape {tuple(t.shape)} but the model expects "
                            f"{tuple(expected[name].shape)}; the weights do not match config.json")
    missing = set(expected) - set(tensors)
    tied = set(expected) - set(unique_state(model))
    if missing - tied:
        raise UserError(f"{path}: tensor {sorted(missing - tied)[0]!r} is missing; the file is incomplete")
    model.load_state_dict(tensors, strict=False)


def write_json(path: Path, doc) -> None:
    tmp = path.with_name(path.name + f".tmp{os.getpid()}")
    tmp.write_text(json.dumps(doc, indent=2, ensure_ascii=False), encoding="utf-8")
    os.replace(tmp, path)


# ----------------------------------------------------------------------------------------------------------------
# optimizer and RNG state

def optimizer_state(optimizers: dict[str, torch.optim.Optimizer]) -> tuple[dict, dict]:
    tensors, groups = {}, {}
    for name, opt in optimizers.items():
        sd = opt.state_dict()
        for idx, st in sd["state"].items():
            for k, v in st.items():
                tensors[f"{name}/{idx}/{k}"] = v if torch.is_tensor(v) else torch.tensor(v)
        groups[name] = sd["param_groups"]
    return tensors, groups


def load_optimizer_state(optimizers: dict[str, torch.optim.Optimizer], tensors: dict, groups: dict) -> None:
    for name, opt in optimizers.items():
        state: dict = {}
        for key, v in tensors.items():
            phase, idx, k = key.split("/")
            if phase == name:
                state.setdefault(int(idx), {})[k] = v
        opt.load_state_dict({"state": state, "param_groups": groups[name]})


def rng_state() -> tuple[dict, dict]:
    np_state = np.random.get_state()
    py_state = random.getstate()
    tensors = {"torch_cpu": torch.get_rng_state(), "numpy_keys": torch.from_numpy(np_state[1].astype(np.int64))}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        for i, s in enumerate(torch.cuda.get_rng_state_all()):
            tensors[f"torch_cuda_{i}"] = s
    meta = {"python": [py_state[0], list(py_state[1]), py_state[2]],
            "numpy": [np_state[0], int(np_state[2]), int(np_state[3]), float(np_state[4])]}
    return tensors, meta


def set_rng_state(tensors: dict, meta: dict) -> None:
    torch.set_rng_state(tensors["torch_cpu"])
    cuda = [tensors[k] for k in sorted(tensors) if k.startswith("torch_cuda_")]
    if cuda and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(cuda)
    v, keys, gauss = meta["python"]
    random.setstate((v, tuple(keys), gauss))
    name, pos, has_gauss, cached = meta["numpy"]
    np.random.set_state((name, tensors["numpy_keys"].numpy().astype(np.uint32), pos, has_gauss, cached))


# ----------------------------------------------------------------------------------------------------------------
# checkpoint folders

def step_dirs(run_dir: Path) -> list[Path]:
    root = Path(run_dir) / CKPT_DIR
    if not root.is_dir():
        return []
    return sorted(p for p in root.iterdir() if p.is_dir() and p.name.startswith("step_") and (p / STATE_FILE).is_file())


def write_folder_atomically(final: Path, write) -> None:
    """Call write(tmp_folder), then rename the folder into place (replacing an old one of the same name)."""
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = final.with_name(f".tmp-{final.name}-{os.getpid()}")
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir()
    write(tmp)
    old = None
    if final.exists():
        old = final.with_name(f".old-{final.name}-{os.getpid()}")
        os.replace(final, old)
    os.replace(tmp, final)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def clean_temporaries(run_dir: Path) -> None:
    """Remove half-written checkpoint folders left by a killed process."""
    root = Path(run_dir) / CKPT_DIR
    if root.is_dir():
        for p in root.iterdir():
            if p.name.startswith((".tmp-", ".old-")):
                shutil.rmtree(p, ignore_errors=True)
    for p in Path(run_dir).glob("*.tmp*"):
        p.unlink(missing_ok=True)


def prune(run_dir: Path, keep_last: int) -> None:
    for old in step_dirs(run_dir)[:-keep_last]:
        shutil.rmtree(old, ignore_errors=True)


def is_run_dir(path: Path) -> bool:
    """Whether `path` holds a config.json that tetragen wrote (other tools name their files config.json too)."""
    try:
        doc = json.loads((Path(path) / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError, UnicodeDecodeError):
        return False
    return (isinstance(doc, dict) and isinstance(doc.get("family"), str)
            and all(isinstance(doc.get(k), dict) for k in ("model", "train", "data")))


def latest_hint(path: Path) -> str:
    """Where to find an intact copy of a damaged file of a run folder."""
    for run in (Path(path).parent, Path(path).parent.parent.parent):
        dirs = step_dirs(run)
        if dirs:
            return f"restore it from {dirs[-1]} or resume the run with --resume"
    return "retrain or copy the run folder again"
