"""Sound from prompts on spoken-words: tetragen's families trained for a fixed budget each, scored by the audio
evaluator as audio (after Griffin-Lim), against its reference rows.

For each family (cgan with preset `words`, cvae with preset `fmnist`; both learn 64x64 log-mel pictures):
1. Train through `tetragen.train` with `train.budget_minutes` (the trainer plans the steps and re-plans as it goes).
2. `tetragen.api.evaluate` (as `tetragen eval`) with `--eval-samples` prompted clips (every word in turn): Fréchet distance and KID in the
   evaluator's features, prompted-word accuracy (the evaluator's reading of the word asked for, on voices it never
   heard in training), and the reference rows: train vs test, the test clips after a Griffin-Lim round trip, the
   test clips with noise at 10 dB SNR.
3. Seconds of audio made per second (sampling + Griffin-Lim, batch 16).
4. Write the table to the `sound` section of bench/RESULTS.md (a --quick run writes nothing there).

    python bench/sound.py                  # 10 minutes per family, 2000 samples
    python bench/sound.py --quick          # smoke run: 0.3 minutes per family, 100 samples, RESULTS.md untouched

Not yet here: a public SpecGAN/WaveGAN-style peer trained side by side on the same data and scored by the same
evaluator.
"""
from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from _results import header, write_section  # noqa: E402

import tetragen  # noqa: E402
from tetragen.api import evaluate  # noqa: E402

WORK = ROOT / "bench" / "_work" / "sound"
DATA = "spoken-words"
FAMILIES = {"cgan": "words", "cvae": "fmnist"}
SPEED_BATCH = 16


def run_family(family: str, preset: str, args) -> dict:
    out = WORK / family
    if out.exists():
        shutil.rmtree(out)
    t0 = time.perf_counter()
    tetragen.train(family, DATA, out, preset=preset, progress=False,
                   overrides=[f"train.seed={args.seed}", f"train.budget_minutes={args.minutes:g}",
                              "train.eval_every=0", "train.eval_samples=0"])
    train_s = time.perf_counter() - t0
    records = [json.loads(ln) for ln in (out / "metrics.jsonl").read_text().splitlines()]
    steps = max(r["step"] for r in records if "step" in r)
    metrics, _ = evaluate(out, n=args.eval_samples, seed=0, iw_samples=10)  # the cvae's bound: 10 samples
    pipe = tetragen.load(out)
    pipe.sample(SPEED_BATCH, seed=0)  # warm-up
    t0, made = time.perf_counter(), 0.0
    for i in range(args.speed_batches):
        sound = pipe.sample(SPEED_BATCH, seed=100 + i * SPEED_BATCH)
        made += sound.waves.size / sound.sample_rate
    per_s = made / (time.perf_counter() - t0)
    WORK.mkdir(parents=True, exist_ok=True)
    from tetragen.modalities.sound.show import write_wav_output
    write_wav_output(WORK / f"{family}_seven.wav", pipe.sample(4, seed=1, prompt="seven"))
    return {"family": family, "preset": preset, "steps": steps, "train_s": train_s, "audio_per_s": per_s,
            **{k: v for k, v in metrics.items() if isinstance(v, (int, float))}}


def table(results: list[dict]) -> str:
    r0 = results[0]
    lines = ["| family (preset) | steps | train min | FD | KID | prompted-word acc | audio s per s |",
             "|---|---:|---:|---:|---:|---:|---:|"]
    for r in results:
        lines.append(f"| {r['family']} ({r['preset']}) | {r['steps']} | {r['train_s'] / 60:.1f} | {r['fid']:.2f} | "
                     f"{r['kid']:.4f} | {r.get('class_acc', float('nan')):.3f} | {r['audio_per_s']:.1f} |")
    lines += ["", f"References at the same n ({int(r0['n'])} clips vs {int(r0['n_real'])} test clips): train vs test FD "
              f"{r0['ref_train_fid']:.2f}, Griffin-Lim round trip of the test clips {r0['ref_griffinlim_fid']:.2f}, "
              f"test clips with noise at 10 dB SNR {r0['ref_noise_fid']:.2f}; the evaluator hears "
              f"{r0['evaluator_test_acc']:.3f} of the real held-out-voice test clips as their word."]
    return "\n".join(lines)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--minutes", type=float, default=10.0, help="training budget per family (default 10)")
    ap.add_argument("--eval-samples", type=int, default=2000, help="prompted clips scored per family")
    ap.add_argument("--speed-batches", type=int, default=10, help="batches of 16 clips timed for audio s per s")
    ap.add_argument("--families", default=",".join(FAMILIES), help="comma-separated, of: " + ", ".join(FAMILIES))
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--quick", action="store_true", help="a smoke run; RESULTS.md is left untouched")
    args = ap.parse_args()
    if args.quick:
        args.minutes, args.eval_samples, args.speed_batches = 0.3, 100, 2
    results = []
    for family in args.families.split(","):
        results.append(run_family(family, FAMILIES[family], args))
        print(json.dumps(results[-1]), flush=True)  # kept in the log should a later family be stopped
    body = "\n".join(["## Sound: spoken-words, prompted clips scored as audio", "", *header(), "", table(results)])
    print(body)
    if not args.quick:
        write_section("sound", body)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
