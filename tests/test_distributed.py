"""torchrun with 2 CPU processes (gloo) follows the same loss curve as 1 process with the same global batch."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from .conftest import in_process, run_cli

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
    one = in_process([sys.executable, "-m", "tetragen", "train", "gpt", "--data", str(corpus),
                      "--out", str(tmp_path / "one"), *COMMON, "train.batch_size=8"], env={"OMP_NUM_THREADS": "1"})
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


def _torchrun():
    torchrun = Path(sys.executable).with_name("torchrun")
    if not torchrun.exists():
        pytest.skip("torchrun is not installed beside this Python")
    return [str(torchrun), "--standalone", "--nproc-per-node=2", "-m", "tetragen"]


def _children(pid: int) -> list[int]:
    """The processes whose parent is `pid` (from /proc)."""
    out = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            out.append(int(stat.parent.name))
    return out


RESUMABLE = ["--preset", "tiny", "model.dropout=0.1", "model.n_embd=64", "model.block_size=64", "train.batch_size=8",
             "train.max_steps=40", "train.save_every=5", "train.eval_every=0", "train.eval_tokens=256",
             "train.warmup_steps=2", "train.log_every=5"]


@pytest.mark.slow  # about 30 s (three torchrun launches); make test-slow runs it
def test_two_process_sigkill_then_resume_is_bitwise_identical(corpus, tmp_path):
    """Each process saves and restores its own RNG state: after a resume the two ranks still draw different dropout
    masks, exactly as in the uninterrupted run."""
    import signal
    import time
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = lambda out, *extra: [*_torchrun(), "train", "gpt", "--data", str(corpus), "--out", str(out),  # noqa: E731
                               *RESUMABLE, *extra]
    straight = subprocess.run(cmd(tmp_path / "a"), capture_output=True, text=True, timeout=300, env=env)
    assert straight.returncode == 0, straight.stderr[-3000:]
    proc = subprocess.Popen(cmd(tmp_path / "b"), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    deadline = time.time() + 120
    while not (tmp_path / "b" / "checkpoints" / "step_00000010" / "trainer_state.json").exists():
        assert proc.poll() is None and time.time() < deadline, "training ended before it could be killed"
        time.sleep(0.005)
    # torchrun starts its workers in sessions of their own: kill it and its workers together, as a machine failure
    # would (killing torchrun alone leaves the workers training)
    for pid in [proc.pid, *_children(proc.pid)]:
        os.kill(pid, signal.SIGKILL)
    proc.wait()
    time.sleep(0.2)
    from tetragen.train import checkpoint as ck
    assert ck.step_dirs(tmp_path / "b")[-1].name < "step_00000040", "the kill came after the end"
    assert {p.name for p in ck.step_dirs(tmp_path / "b")[-1].glob("rng_rank*")} == {"rng_rank0.safetensors",
                                                                                  "rng_rank1.safetensors"}
    resumed = subprocess.run(cmd(tmp_path / "b", "--resume"), capture_output=True, text=True, timeout=300, env=env)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert (tmp_path / "a" / "model.safetensors").read_bytes() == (tmp_path / "b" / "model.safetensors").read_bytes()
    # one process cannot take over a two-process run's random streams
    one = run_cli("train", "gpt", "--data", str(corpus), "--out", str(tmp_path / "a"), "--resume", *RESUMABLE,
                  "train.max_steps=45")
    assert one.returncode == 2 and len(one.stderr.strip().splitlines()) == 1, one.stderr
    assert "--nproc-per-node=2" in one.stderr


@pytest.mark.slow  # about 20 s (an evaluator trained under torchrun); make test-slow runs it
def test_an_image_evaluation_on_rank_0_does_not_time_out_the_others(tmp_path):
    """Rank 0 evaluates (FID of many samples, after training the evaluator) while rank 1 waits at a barrier with a
    timeout of its own: with the training collectives' timeout cut to 1 s the run still completes."""
    from .conftest import make_image_folder
    root = make_image_folder(tmp_path / "images")
    env = {**os.environ, "OMP_NUM_THREADS": "1", "TETRAGEN_DIST_TIMEOUT_S": "1"}
    r = subprocess.run([*_torchrun(), "train", "dcgan", "--data", str(root), "--out", str(tmp_path / "run"),
                        "--preset", "tiny", "train.max_steps=4", "train.eval_every=2", "train.eval_samples=4000"],
                       capture_output=True, text=True, timeout=300, env=env)
    assert r.returncode == 0, r.stderr[-3000:]
    evals = [json.loads(ln) for ln in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()
             if json.loads(ln)["split"] == "val"]
    assert [e["step"] for e in evals] == [2, 4] and all(e["fid"] >= 0 for e in evals)
