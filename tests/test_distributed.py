"""torchrun with 2 CPU processes (gloo) follows the same loss curve as 1 process with the same global batch."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

COMMON = ["--preset", "tiny", "train.max_steps=8", "train.log_every=1", "train.eval_every=0", "train.grad_clip=0",
          "train.save_every=0", "train.eval_tokens=256"]


def losses(run: Path) -> list[float]:
    recs = [json.loads(ln) for ln in (run / "metrics.jsonl").read_text().splitlines()]
    return [r["loss"] for r in recs if r["split"] == "train"]


def test_two_process_ddp_matches_one_process_with_same_global_batch(corpus, tmp_path):
    torchrun = Path(sys.executable).with_name("torchrun")
    if not torchrun.exists():
        pytest.skip("torchrun is not installed beside this Python")
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    one = subprocess.run([sys.executable, "-m", "tetragen", "train", "gpt", "--data", str(corpus),
                          "--out", str(tmp_path / "one"), *COMMON, "train.batch_size=8"],
                         capture_output=True, text=True, timeout=300, env=env)
    assert one.returncode == 0, one.stderr
    two = subprocess.run([str(torchrun), "--standalone", "--nproc-per-node=2", "-m", "tetragen", "train", "gpt",
                          "--data", str(corpus), "--out", str(tmp_path / "two"), *COMMON, "train.batch_size=4"],
                         capture_output=True, text=True, timeout=300, env=env)
    assert two.returncode == 0, two.stderr[-3000:]
    a, b = losses(tmp_path / "one"), losses(tmp_path / "two")
    assert len(a) == len(b) == 8
    assert a[-1] < a[0]
    for x, y in zip(a, b):
        assert abs(x - y) < 1e-4 * max(1.0, abs(x)), (a, b)
    # only rank 0 wrote: one metrics file, one set of checkpoints
    assert (tmp_path / "two" / "model.safetensors").is_file()
