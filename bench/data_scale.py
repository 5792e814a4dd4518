"""Data at scale: tokenization throughput and peak memory on a 1 GB corpus.

1. Builds a deterministic ~1 GB text file: the lines of Tiny Shakespeare, shuffled with a fixed seed (a new
   permutation per pass), repeated until the target size.
2. (a) Tokenizes it with `tetragen.data.text.tokenize_files` in a fresh process with an empty TETRAGEN_CACHE and
   reports MB/s (timed inside that process) and the process's peak RSS.
   (b) Trains the `small` GPT preset for a few steps on it through the real CLI (`python -m tetragen train ...`,
   reusing the token cache from (a)) and reports that process's peak RSS.
   Peak RSS is each child's own ru_maxrss, read with os.wait4.
3. Deletes the corpus, the token cache and the run (unless --keep).

The requirement checked: tokenization streams and the token arrays are memory-mapped, so training `small` stays
under 2 GiB of peak memory whatever the corpus size.

    python bench/data_scale.py            # 1 GB corpus; writes the data_scale section of bench/RESULTS.md
    python bench/data_scale.py --quick    # smoke run: 20 MB corpus, 2 training steps, nothing written
"""
from __future__ import annotations

import argparse
import json
import os
import shlex
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from _results import header, write_section  # noqa: E402

MB = 1_000_000
GiB = 1 << 30
LIMIT = 2 * GiB  # the requirement for training `small`

# Runs in a child process so that its peak RSS is the tokenization's alone.
TOKENIZE_CHILD = """
import json, sys, time
from pathlib import Path
from tetragen.data.text import tokenize_files
t0 = time.perf_counter()
cache = tokenize_files([Path(sys.argv[1])])
seconds = time.perf_counter() - t0
print(json.dumps({"seconds": seconds, "n_tokens": int(len(cache.tokens)), "dtype": cache.tokens.dtype.name,
                  "vocab_size": cache.tokenizer.vocab_size, "memmap": type(cache.tokens).__name__}))
"""


def find_tinyshakespeare() -> Path:
    from tetragen.data.text import resolve_text_source
    return resolve_text_source("tinyshakespeare")[1][0]  # TETRAGEN_DATA, the cache, or a download


def make_corpus(path: Path, target_bytes: int, seed: int) -> int:
    """Write shuffled Tiny Shakespeare lines until the file reaches target_bytes (cut at a line end); returns size."""
    lines = find_tinyshakespeare().read_text(encoding="utf-8").splitlines(keepends=True)
    rng = np.random.default_rng(seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    written = 0
    with open(path, "w", encoding="utf-8", newline="") as f:
        while written < target_bytes:
            text = "".join([lines[i] for i in rng.permutation(len(lines)).tolist()])
            if written + len(text) > target_bytes:  # the text is ASCII: characters == bytes
                text = text[: text.rfind("\n", 0, target_bytes - written) + 1]
                if not text:  # less than a line short of the target
                    break
            f.write(text)
            written += len(text)
    return path.stat().st_size


def rss_parts(pid: int) -> dict[str, int]:
    """RssAnon (heap, tensors) and RssFile (mapped files: libraries, memory-mapped tokens) of a live process, bytes."""
    try:
        text = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return {}
    return {k: int(v.split()[0]) * 1024 for k, v in (line.split(":", 1) for line in text.splitlines())
            if k in ("RssAnon", "RssFile")}


def run_measured(cmd: list[str], env: dict, log: Path) -> tuple[int, float, int, dict[str, int]]:
    """Run cmd (output to log); returns (exit code, wall seconds, peak RSS in bytes, the largest RssAnon and
    RssFile seen while polling every 0.2 s) of that process alone."""
    t0 = time.perf_counter()
    parts: dict[str, int] = {}
    with open(log, "w") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=env, cwd=ROOT)
        while True:
            pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                break
            for k, v in rss_parts(proc.pid).items():
                parts[k] = max(parts.get(k, 0), v)
            time.sleep(0.2)
    proc.returncode = os.waitstatus_to_exitcode(status)
    return proc.returncode, time.perf_counter() - t0, usage.ru_maxrss * 1024, parts  # ru_maxrss: KiB on Linux


def fmt_bytes(n: float) -> str:
    return f"{n / GiB:.2f} GiB" if n >= GiB else f"{n / (1 << 20):.0f} MiB"


def split(parts: dict[str, int]) -> str:
    return f"max anon {fmt_bytes(parts.get('RssAnon', 0))}, max file-backed {fmt_bytes(parts.get('RssFile', 0))}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size-mb", type=float, default=1000, help="corpus size in MB (10^6 bytes; default 1000)")
    ap.add_argument("--steps", type=int, default=20, help="training steps of the `small` preset (default 20)")
    ap.add_argument("--batch-size", type=int, default=8, help="training batch size (default 8)")
    ap.add_argument("--work", type=Path, default=ROOT / "bench" / "_work" / "data_scale",
                    help="scratch folder for the corpus, cache and run (git-ignored; deleted at the end)")
    ap.add_argument("--seed", type=int, default=0, help="seed of the line shuffling")
    ap.add_argument("--keep", action="store_true", help="keep the corpus, cache and run afterwards")
    ap.add_argument("--quick", action="store_true", help="smoke run: 20 MB, 2 steps, RESULTS.md untouched")
    ap.add_argument("--no-write", action="store_true", help="print only; do not touch bench/RESULTS.md")
    args = ap.parse_args()
    if args.quick:
        args.size_mb, args.steps = min(args.size_mb, 20), min(args.steps, 2)

    work = args.work.resolve()
    corpus, cache, run = work / "corpus.txt", work / "cache", work / "run"
    env = {**os.environ, "TETRAGEN_CACHE": str(cache), "TETRAGEN_NO_PROGRESS": "1", "PYTHONPATH": str(ROOT)}
    try:
        shutil.rmtree(work, ignore_errors=True)
        t0 = time.perf_counter()
        size = make_corpus(corpus, int(args.size_mb * MB), args.seed)
        print(f"corpus: {corpus} {size / MB:.0f} MB, written in {time.perf_counter() - t0:.1f} s", flush=True)

        # (a) tokenization, fresh cache
        code, wall, tok_rss, tok_parts = run_measured([sys.executable, "-c", TOKENIZE_CHILD, str(corpus)], env,
                                           work / "tokenize.log")
        log = (work / "tokenize.log").read_text()
        if code:
            raise SystemExit(f"tokenization failed (exit {code}):\n{log}")
        tok = json.loads(log.strip().splitlines()[-1])
        mbps = size / MB / tok["seconds"]
        token_bytes = sum(f.stat().st_size for f in (cache / "tokens").rglob("tokens.bin"))
        print(f"tokenize: {tok['seconds']:.1f} s ({wall:.1f} s with interpreter start) = {mbps:.1f} MB/s, "
              f"{tok['n_tokens']:,} tokens ({tok['dtype']}, vocab {tok['vocab_size']}, {tok['memmap']}), "
              f"token file {fmt_bytes(token_bytes)}, peak RSS {fmt_bytes(tok_rss)} ({split(tok_parts)})", flush=True)

        # (b) training `small` through the real CLI, the token cache from (a) reused
        train_cmd = ["python", "-m", "tetragen", "train", "gpt", "--preset", "small", "--data", str(corpus),
                     "--out", str(run), f"train.max_steps={args.steps}", "train.eval_tokens=65536",
                     "train.eval_every=0", f"train.batch_size={args.batch_size}",
                     f"train.warmup_steps={args.steps // 4}"]  # the preset's 100 must be < max_steps
        code, train_wall, train_rss, train_parts = run_measured([sys.executable, *train_cmd[1:]], env,
                                                               work / "train.log")
        log = (work / "train.log").read_text()
        if code:
            raise SystemExit(f"training failed (exit {code}):\n{log}")
        print(f"train small: {train_wall:.1f} s, peak RSS {fmt_bytes(train_rss)} ({split(train_parts)}; "
              f"{'under' if train_rss < LIMIT else 'OVER'} the 2 GiB limit)", flush=True)
        print("  last lines of the training log:\n    " + "\n    ".join(log.strip().splitlines()[-3:]))
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
            print(f"removed {work}")

    if args.quick or args.no_write:
        return
    rows = [
        ("step", "figure", "wall", "peak RSS"),
        ("corpus", f"{size / MB:.0f} MB ({size:,} bytes; {tok['n_tokens']:,} tokens, vocab {tok['vocab_size']})",
         "", ""),
        ("(a) tokenize (fresh cache)", f"**{mbps:.1f} MB/s** ({tok['seconds']:.1f} s; token file "
         f"{fmt_bytes(token_bytes)} {tok['dtype']})", f"{wall:.1f} s", f"**{fmt_bytes(tok_rss)}** ({split(tok_parts)})"),
        (f"(b) train `small`, {args.steps} steps, batch {args.batch_size}", "token cache from (a), memory-mapped",
         f"{train_wall:.1f} s", f"**{fmt_bytes(train_rss)}** ({split(train_parts)})"),
    ]
    table = ["| " + " | ".join(r) + " |" for r in rows]
    table.insert(1, "|---|---|---|---|")
    verdict = "meets" if train_rss < LIMIT and tok_rss < LIMIT else "DOES NOT meet"
    body = "\n".join([
        "## Data at scale: 1 GB corpus",
        "",
        *header(),
        f"- (b) runs `{' '.join(shlex.quote(a) for a in train_cmd)}`",
        f"- corpus: Tiny Shakespeare's lines shuffled (numpy seed {args.seed}, a new permutation per pass) and "
        "repeated; MB = 10^6 bytes; peak RSS is each child process's ru_maxrss (os.wait4), split into anonymous "
        "and file-backed (mapped libraries and token files) by polling /proc every 0.2 s; tokenization is "
        "timed inside its process (load + 2 streaming passes + writing the token file)",
        "",
        *table,
        "",
        f"Peak memory {verdict} the requirement (training `small` under 2 GiB whatever the corpus size).",
    ])
    write_section("data_scale", body)
    print("wrote the data_scale section of bench/RESULTS.md")


if __name__ == "__main__":
    main()
