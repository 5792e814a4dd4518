"""Which precision a run computes in: `train.precision=auto` takes bf16 only where it makes this model's training
steps faster than fp32.

bf16 support is not bf16 speed, and a fast bf16 matmul is not a fast bf16 training step: autocast adds casts,
small convolutions and elementwise work gain little, and a model's mix of operations decides. So `auto` settles
what is certain without timing (CUDA: bf16 tensor cores from compute capability 8.0, where
`torch.cuda.is_bf16_supported()` is also true for emulated bf16; a CPU without any bf16 instructions emulates bf16
many times slower: fp32), and on a CPU with bf16 instructions (AVX-512-bf16, AMX) it times a few training steps of
the run's own model in each precision (Trainer.settle_precision, which puts the weights, optimizer and random state
back afterwards) and takes bf16 when it is PROBE_MARGIN faster.
"""
from __future__ import annotations

import functools
import statistics
import sys
import time
from pathlib import Path
from typing import Callable

import torch

clock = time.perf_counter  # the probe's clock (tests put a simulated one in its place)

PROBE_WARMUP = 2     # untimed steps in each precision first: the first ones allocate and pick kernels
PROBE_STEPS = 3      # timed steps in each precision at least, taken in turn so that a change in load hits both
PROBE_MAX_STEPS = 20  # ... and more, up to this many, while the timed steps have taken less than PROBE_MIN_S:
PROBE_MIN_S = 1.0     # a cheap step's time is noisy, and more of them cost little
PROBE_SHARE = 0.03   # of a train.budget_minutes budget the probe may take beyond its warm-up and one step of each
PROBE_MARGIN = 1.1   # bf16 rounds more coarsely: it must be clearly faster to be chosen


def cpu_flags() -> set[str]:
    """The CPU's feature flags (Linux /proc/cpuinfo); empty where they cannot be read."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("flags"):
                return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return set()


@functools.lru_cache(maxsize=None)
def _cpu_support() -> tuple[bool | None, str]:
    flags = cpu_flags()
    if "amx_bf16" in flags:
        return None, "AMX bf16 tile units"
    has_bf16 = "avx512_bf16" in flags
    if not flags:  # not Linux: ask oneDNN
        try:
            has_bf16 = bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
        except (AttributeError, RuntimeError):
            has_bf16 = False
    if not has_bf16:
        return False, f"no bf16 instructions ({torch.backends.cpu.get_cpu_capability()}): bf16 would be emulated"
    return None, "bf16 instructions without AMX"


def bf16_support(device: torch.device) -> tuple[bool | None, str]:
    """(True where bf16 is certainly the faster choice on `device`, False where it certainly is not, None where only
    timing the model can tell; why)."""
    device = torch.device(device)
    if device.type == "cuda":
        major, minor = torch.cuda.get_device_capability(device)
        ok = major >= 8
        return ok, f"compute capability {major}.{minor} ({'has' if ok else 'no'} bf16 tensor cores)"
    return _cpu_support()


def resolve_precision(precision: str, device: torch.device, *, warn: bool = True) -> tuple[str | None, str]:
    """(the precision a run computes in, why): `auto` becomes bf16 or fp32 where that is certain, and None where
    the run must time its own steps (choose); an explicit bf16 where it is certainly slower is kept, with a
    warning."""
    if precision == "fp32":
        return "fp32", "asked (train.precision=fp32)"
    fast, why = bf16_support(device)
    if precision == "auto":
        return (None if fast is None else "bf16" if fast else "fp32"), f"auto: {why}"
    if warn and fast is False:
        print(f"tetragen: warning: train.precision=bf16, but on this {device.type} bf16 is not faster than fp32 "
              f"({why}); use train.precision=auto or fp32", file=sys.stderr)
    return "bf16", f"asked (train.precision=bf16); {why}"


def time_steps(step: Callable[[str], None], limit_s: float | None = None) -> dict[str, float]:
    """The median seconds of one training step in each precision; `step(precision)` runs one. PROBE_WARMUP untimed
    steps of each first, then timed ones in turn (fp32, bf16, fp32, ...): PROBE_STEPS of each, more (up to
    PROBE_MAX_STEPS) while they have taken less than PROBE_MIN_S, fewer once the probe has taken `limit_s` (never
    fewer than one of each)."""
    t0 = clock()
    for name in ("fp32", "bf16"):
        for _ in range(PROBE_WARMUP):
            step(name)
    times: dict[str, list[float]] = {"fp32": [], "bf16": []}
    for n in range(1, PROBE_MAX_STEPS + 1):
        for name, seconds in times.items():
            s = clock()
            step(name)
            seconds.append(clock() - s)
        if limit_s is not None and clock() - t0 >= limit_s:
            break
        if n >= PROBE_STEPS and sum(map(sum, times.values())) >= PROBE_MIN_S:
            break
    return {name: statistics.median(seconds) for name, seconds in times.items()}


def choose(fp32_s: float, bf16_s: float, why: str) -> tuple[str, str]:
    """(the precision, the reason) from the timed steps of each."""
    speedup = fp32_s / max(bf16_s, 1e-12)
    fast = speedup >= PROBE_MARGIN
    rule = "" if fast else f"; bf16 must be {PROBE_MARGIN:g}x as fast to be taken"
    return ("bf16" if fast else "fp32"), (f"auto: {why}; a training step of this model took {fp32_s * 1000:.1f} ms "
                                          f"in fp32 and {bf16_s * 1000:.1f} ms in bf16 ({speedup:.2f}x){rule}")
