"""torchrun with 2 CPU processes (gloo) whose clocks disagree: they still take one precision, one plan and the same
re-plans at the same steps, because every decision is made from timings averaged over the processes."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

# each process reads its own simulated clock: the second is twice as slow, both slow down from step 30 on, and bf16
# is twice as fast as fp32 in the first process only
SCRIPT = """
import json, os, sys
from tetragen.api import load_data
from tetragen.config import build_run_config
from tetragen.train import budget, precision
from tetragen.train.trainer import Trainer

rank = int(os.environ["RANK"])
now = [0.0]
budget.clock = precision.clock = lambda: now[0]
precision.bf16_support = lambda device: (None, "bf16 instructions")
cfg = build_run_config("gpt", preset="tiny", overrides=[
    "train.eval_tokens=256", "train.budget_minutes=0.15", "train.max_minutes=10", "train.eval_every=0",
    "train.save_every=0", "train.precision=auto", "train.max_steps=100000"])
cfg.data.source = sys.argv[1]
trainer = Trainer(cfg, load_data(cfg), sys.argv[2], progress=False)
real = trainer._train_step

def step():
    speed = {"fp32": 1.0, "bf16": 0.5 if rank == 0 else 1.2}[trainer.precision]
    now[0] += (0.1 if trainer.step < 30 else 0.18) * (1 + rank) * speed
    return real()
trainer._train_step = step
trainer.fit()
print("RESULT " + json.dumps({"rank": rank, "precision": trainer.precision, "step": trainer.step,
                              "plans": [[p["step"], p["max_steps"]] for p in trainer.budget.plans]}))
"""


def test_processes_with_different_clocks_agree_on_precision_plans_and_replans(corpus, tmp_path):
    torchrun = Path(sys.executable).with_name("torchrun")
    if not torchrun.exists():
        pytest.skip("torchrun is not installed beside this Python")
    script = tmp_path / "run.py"
    script.write_text(SCRIPT)
    r = subprocess.run([str(torchrun), "--standalone", "--nproc-per-node=2", str(script), str(corpus),
                        str(tmp_path / "run")], capture_output=True, text=True, timeout=300,
                       env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert r.returncode == 0, r.stderr[-3000:]
    results = sorted((json.loads(ln.split("RESULT ", 1)[1]) for ln in r.stdout.splitlines() if "RESULT " in ln),
                     key=lambda x: x["rank"])
    assert [x["rank"] for x in results] == [0, 1]
    first, second = results
    assert (first["precision"], first["step"], first["plans"]) == (second["precision"], second["step"],
                                                                  second["plans"])
    assert len(first["plans"]) > 1  # the slow-down was seen, by both, at the same step
    assert first["step"] == first["plans"][-1][1]
    records = [json.loads(ln) for ln in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records if r["split"] == "budget" and r["event"] != "end"] == \
        [p[0] for p in first["plans"]]
    decided = [r for r in records if r["split"] == "precision"]
    # the timings were averaged: rank 0 alone would have taken bf16 (2x), rank 1 alone fp32 (0.83x)
    assert len(decided) == 1 and decided[0]["precision"] == first["precision"]
    assert decided[0]["bf16_speedup"] == pytest.approx((0.1 + 0.2) / 2 / ((0.05 + 0.24) / 2))
