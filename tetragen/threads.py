"""How many torch threads inference uses (`tetragen generate`, `tetragen serve`).

torch's intra-op pool spins while it waits for its threads; when another process holds some of the cores, a
decode step on more threads than there are free cores waits for a thread that is not running, at every one of the
many small kernels of a step. bench/decode_threads.py measured what that costs (bench/RESULTS.md, section
decode_threads). The rule: never more threads than cores that are idle when the model starts (sampled from
/proc/stat over a short window), nor than this process's share of its cores when it runs several models at once;
at least one.
"""
from __future__ import annotations

import os
import time

SAMPLE_S = 0.25  # how long the CPU is watched to count busy cores


def usable_cores() -> int:
    """The CPUs this process may run on (its affinity mask)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def _cpu_times() -> tuple[float, float] | None:
    """(busy, total) jiffies of all CPUs since boot, from /proc/stat; None where there is none."""
    try:
        with open("/proc/stat", encoding="ascii") as f:
            fields = [float(x) for x in f.readline().split()[1:]]
    except (OSError, ValueError):
        return None
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0.0)  # idle + iowait
    return sum(fields) - idle, sum(fields)


def busy_cores(sample_s: float = SAMPLE_S) -> float:
    """How many of the machine's cores other work keeps busy, measured over `sample_s` seconds (this process is
    idle meanwhile); 0 where /proc/stat is missing."""
    a = _cpu_times()
    if a is None:
        return 0.0
    time.sleep(sample_s)
    b = _cpu_times()
    if b is None or b[1] <= a[1]:
        return 0.0
    return (b[0] - a[0]) / (b[1] - a[1]) * (os.cpu_count() or 1)


def inference_threads(*, n_models: int = 1, cores: int | None = None, busy: float | None = None) -> int:
    """The intra-op thread count for inference: the idle cores, within this process's share of its cores."""
    cores = usable_cores() if cores is None else cores
    share = max(1, cores // max(1, n_models))
    busy = busy_cores() if busy is None else busy
    idle = cores - int(busy + 0.5)  # a core more than half busy counts as taken
    return max(1, min(share, idle))


def apply(threads: int | None, *, n_models: int = 1) -> int:
    """Set torch's intra-op threads for inference and return the count: `threads` when given (a --threads flag),
    else OMP_NUM_THREADS when the environment sets it, else the rule above."""
    import torch
    if threads is None and os.environ.get("OMP_NUM_THREADS"):
        return torch.get_num_threads()
    n = threads or inference_threads(n_models=n_models)
    torch.set_num_threads(n)
    return n
