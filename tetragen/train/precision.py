"""Which precision a run computes in: `train.precision=auto` takes bf16 only where it is faster than fp32.

bf16 support is not bf16 speed. On CPUs, oneDNN accepts bf16 on every AVX-512 machine, but only AMX tile units
make bf16 matrix products much faster than fp32; AVX-512-bf16 without AMX was measured slower than fp32
(bench/lm_speed.py), and AVX2-only CPUs emulate bf16 many times slower. So a CPU with AMX takes bf16, one without
any bf16 instructions takes fp32, and one in between is decided by a short matmul probe (bf16 vs fp32, timed once
per process). On CUDA, bf16 tensor cores start at compute capability 8.0 (Ampere);
`torch.cuda.is_bf16_supported()` is also true where bf16 is only emulated.
"""
from __future__ import annotations

import functools
import sys
import time
from pathlib import Path

import torch

PROBE_SIZE = 512          # a transformer-block-sized matmul
PROBE_MARGIN = 1.1        # bf16 must beat fp32 by 10% to be chosen


def cpu_flags() -> set[str]:
    """The CPU's feature flags (Linux /proc/cpuinfo); empty where they cannot be read."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("flags"):
                return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return set()


def measure_bf16_speedup(n: int = PROBE_SIZE, reps: int = 8) -> float:
    """fp32 time / bf16 time of an (n, n) @ (n, n) matmul on this CPU, with the threads torch uses now (best of
    `reps` after a warm-up)."""
    def best(dtype) -> float:
        g = torch.Generator().manual_seed(0)
        a, b = torch.randn(n, n, generator=g).to(dtype), torch.randn(n, n, generator=g).to(dtype)
        a @ b
        times = []
        for _ in range(reps):
            t0 = time.perf_counter()
            a @ b
            times.append(time.perf_counter() - t0)
        return min(times)
    return best(torch.float32) / best(torch.bfloat16)


@functools.lru_cache(maxsize=None)
def _cpu_decision() -> tuple[bool, str]:
    flags = cpu_flags()
    if "amx_bf16" in flags:
        return True, "AMX bf16 tile units"
    has_bf16 = "avx512_bf16" in flags
    if not flags:  # not Linux: ask oneDNN, then measure
        try:
            has_bf16 = bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
        except (AttributeError, RuntimeError):
            has_bf16 = False
    if not has_bf16:
        return False, f"no bf16 instructions ({torch.backends.cpu.get_cpu_capability()}): bf16 would be emulated"
    speedup = measure_bf16_speedup()
    return speedup >= PROBE_MARGIN, f"bf16 without AMX, measured {speedup:.2f}x fp32 on a {PROBE_SIZE}^2 matmul"


def bf16_decision(device: torch.device) -> tuple[bool, str]:
    """(whether bf16 is the faster choice on `device`, why)."""
    device = torch.device(device)
    if device.type == "cuda":
        major, minor = torch.cuda.get_device_capability(device)
        ok = major >= 8
        return ok, f"compute capability {major}.{minor} ({'has' if ok else 'no'} bf16 tensor cores)"
    return _cpu_decision()


def resolve_precision(precision: str, device: torch.device, *, warn: bool = True) -> tuple[str, str]:
    """(the precision a run computes in, why): `auto` becomes bf16 where it is faster, else fp32; an explicit bf16
    where it is not is kept, with a warning."""
    if precision == "fp32":
        return "fp32", "asked (train.precision=fp32)"
    fast, why = bf16_decision(device)
    if precision == "auto":
        return ("bf16" if fast else "fp32"), f"auto: {why}"
    if warn and not fast:
        print(f"tetragen: warning: train.precision=bf16, but on this {device.type} bf16 is not faster than fp32 "
              f"({why}); use train.precision=auto or fp32", file=sys.stderr)
    return "bf16", f"asked (train.precision=bf16); {why}"
