"""Checkpoints as `config.json` + `model.safetensors` + trainer state (safetensors + JSON). No pickle anywhere.

The folder layout and the atomic writes are in tetragen/files.py; this module adds what only training needs: the
model's unique tensors, optimizer and RNG state, pruning and clean-up after a killed process.
"""
from __future__ import annotations

import json
import random
import shutil
from pathlib import Path

import numpy as np
import torch

from ..errors import UserError
from ..files import (CKPT_DIR, STATE_FILE, is_run_dir, latest_hint, read_tensors, recover_folders,  # noqa: F401
                     save_tensors, step_dirs, write_folder_atomically, write_json)


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


def rng_bytes() -> bytes:
    """This process's RNG state as the bytes of a safetensors file (tensors + the rest as JSON metadata): what one
    rank sends rank 0 to be saved, no pickle involved."""
    from safetensors.torch import save
    tensors, meta = rng_state()
    return save(tensors, metadata={"rng": json.dumps(meta)})


def set_rng_bytes(data: bytes) -> None:
    from safetensors.torch import load
    set_rng_state(load(data), json.loads(_metadata(data)["rng"]))


def _metadata(data: bytes) -> dict:
    """The __metadata__ of safetensors bytes (an 8-byte little-endian header length, then the JSON header)."""
    size = int.from_bytes(data[:8], "little")
    return json.loads(data[8:8 + size]).get("__metadata__", {})


# ----------------------------------------------------------------------------------------------------------------
# checkpoint folders

def clean_temporaries(run_dir: Path) -> None:
    """After a killed process: put back checkpoint folders caught between two renames, remove half-written
    temporaries."""
    recover_folders(Path(run_dir) / CKPT_DIR)
    for p in Path(run_dir).glob("*.tmp*"):
        p.unlink(missing_ok=True)


def prune(run_dir: Path, keep_last: int) -> None:
    for old in step_dirs(run_dir)[:-keep_last]:
        shutil.rmtree(old, ignore_errors=True)


