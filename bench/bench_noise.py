"""How far apart two `tetragen bench` runs with the same seed land on this machine.

`tetragen bench` plans each family's step count from a timing of its first steps (`train.budget_minutes`), so two
runs with the same seed and budget train for slightly different step counts and end at slightly different metrics:
that is the noise of the machine a leaderboard should be read with. This benchmark runs the same `tetragen bench`
twice, one after the other, and writes each family's steps and headline metric in both runs and their difference.

    python bench/bench_noise.py                            # 1 minute per family, the quickstart's families
    python bench/bench_noise.py --budget-minutes 2 --families gpt,dcgan
    python bench/bench_noise.py --quick                    # smoke run, RESULTS.md untouched
"""
from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))
from _results import header, write_section  # noqa: E402

WORK = ROOT / "bench" / "_work" / "bench_noise"
HEADLINE = ("val_bpc", "fid", "val_loss", "recon_mse")  # the first a family's metrics have


def one(out: Path, args) -> dict:
    shutil.rmtree(out, ignore_errors=True)
    cmd = [sys.executable, "-m", "tetragen", "bench", "--budget-minutes", f"{args.budget_minutes:g}",
           "--seed", str(args.seed), "--eval-n", str(args.eval_n), "--out", str(out)]
    if args.families:
        cmd += ["--families", args.families]
    subprocess.run(cmd, check=True, cwd=ROOT)
    doc = json.loads((out / "bench.json").read_text())
    return {r["family"]: r for r in doc["results"]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--budget-minutes", type=float, default=1.0)
    ap.add_argument("--families", default="gpt,bert,dcgan,cgan,vae,t2i")
    ap.add_argument("--eval-n", type=int, default=2000)
    ap.add_argument("--seed", type=int, default=1337)
    ap.add_argument("--quick", action="store_true", help="smoke run: 0.1 minute per family, nothing written")
    args = ap.parse_args()
    if args.quick:
        args.budget_minutes, args.eval_n, args.families = 0.1, 200, "gpt,dcgan"
    runs = [one(WORK / f"run{k}", args) for k in (1, 2)]
    lines = ["## Same seed, two runs of `tetragen bench` (bench/bench_noise.py)", "", *header(),
             f"- `tetragen bench --budget-minutes {args.budget_minutes:g} --seed {args.seed} --eval-n {args.eval_n} "
             f"--families {args.families}`, twice, one after the other; each family's headline metric "
             f"(bits/char for text, FID for images, recon MSE for a tokenizer)", "",
             "| family | metric | steps (1st / 2nd) | 1st | 2nd | difference | relative |",
             "|---|---|---:|---:|---:|---:|---:|"]
    for family, a in runs[0].items():
        b = runs[1][family]
        key = next(k for k in HEADLINE if k in a["metrics"])
        x, y = a["metrics"][key], b["metrics"][key]
        lines.append(f"| {family} | {key} | {a['steps']} / {b['steps']} | {x:.4f} | {y:.4f} | {y - x:+.4f} | "
                     f"{abs(y - x) / abs(x):.1%} |")
    text = "\n".join(lines)
    print(text)
    if not args.quick:
        write_section("bench_noise", text)


if __name__ == "__main__":
    main()
