"""Video from prompts on moving-fashion-mnist: tetragen's families that learn grids, trained for a fixed budget each,
their prompted clips scored by the shipped video evaluator against its reference rows.

For each entry (ENTRIES below; a clip is learnt as a 32x32 grid with a channel per frame; the token prior reads
`[prompt ; clip tokens]` of a vqvae whose 3-D convolutions down-sample time as well as space, and the latent
diffusion denoiser learns the continuous latents of such a vqvae, its latent frames as channels):
1. Train through `tetragen.train` with `train.budget_minutes` (the trainer plans the steps and re-plans as it goes);
   the tokenizer of the token prior or of the denoiser first, for its share of the entry's minutes (the split is
   stated in the table).
2. `tetragen.api.evaluate` (as `tetragen eval`) with `--eval-samples` prompted clips (every class in turn, a class
   being a garment and its motion): Fréchet distance and KID in the evaluator's features, class accuracy, and apart
   garment accuracy and motion accuracy; reference rows: train vs test, the test clips frozen on their first frame,
   the test clips with their frames shuffled, clips whose every frame comes from another clip. A tokenizer is
   scored too: reconstruction MSE and codebook use on the test clips.
3. Clips made per second (batch 16).
4. Write the table to the `video` section of bench/RESULTS.md (a --quick run writes nothing there).

    python bench/video.py                  # cgan 10 minutes, tokenizer + denoiser 15, tokenizer + prior 15
    python bench/video.py --families ldm   # the latent denoiser only
    python bench/video.py --quick          # smoke run: 0.2 minutes per entry, 100 clips, RESULTS.md untouched
    python bench/video.py --data moving-fashion-mnist-pairs --families cgan   # two garments: section video-pairs

Also in the table: per-frame FID (each frame centred on its garment, in Fashion-MNIST's image evaluator; clips of one
garment) and temporal drift (grey levels a centred frame changes from the previous one), each beside the
references'.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from _results import header, per_second, train_for, write_section  # noqa: E402

import tetragen  # noqa: E402
from tetragen.api import evaluate  # noqa: E402

WORK = ROOT / "bench" / "_work" / "video"
DATA = "moving-fashion-mnist"
SHOWN = {"moving-fashion-mnist": "a sneaker moving left",  # data -> the prompt of the GIF written beside the table
         "moving-fashion-mnist-pairs": "a sneaker and a bag moving apart",
         "moving-fashion-mnist-mixed": "a sneaker bouncing"}
# name -> the run: family, preset, minutes (the budgets), and a component trained first ("base", as
# bench/_results.train_for takes it)
ENTRIES = {
    "cgan": {"family": "cgan", "preset": "clips", "minutes": 10},
    "diffusion": {"family": "diffusion", "preset": "fmnist", "minutes": 10},
    "t2i": {"family": "t2i", "preset": "clips", "minutes": 15,
            "base": {"family": "vqvae", "preset": "clips", "share": 1 / 3, "override": "model.tokenizer_run"}},
    "ldm": {"family": "ldm", "preset": "clips", "minutes": 15,
            "base": {"family": "vqvae", "preset": "clip-latents", "share": 1 / 3, "override": "model.autoencoder_run"}},
}
DEFAULT = "cgan,ldm,t2i"
SPEED_BATCH = 16


def run_entry(name: str, args) -> dict:
    entry = ENTRIES[name]
    out = WORK / name
    minutes = args.minutes or entry["minutes"]
    steps, train_s = train_for(entry["family"], args.data, out, entry["preset"], minutes, args.seed,
                               overrides=args.override, base=entry.get("base"))
    metrics, lines = evaluate(out, n=args.eval_samples, seed=0)
    print("\n".join(lines), flush=True)
    row = {"name": name, "family": entry["family"], "preset": " ".join([entry["preset"], *args.override]),
           "minutes": minutes, "steps": steps, "train_s": train_s}
    if "base" in entry:
        tokenizer = WORK / f"{name}_{entry['base']['family']}"
        tok, tok_lines = evaluate(tokenizer, n=min(args.eval_samples, 1000), seed=0)
        print("\n".join(tok_lines), flush=True)
        records = [json.loads(ln) for ln in (tokenizer / "metrics.jsonl").read_text().splitlines()]
        row.update(base=f"{entry['base']['family']} ({entry['base']['preset']}), {entry['base']['share']:.2f} of the "
                        f"minutes, {max(r['step'] for r in records if 'step' in r)} steps",
                   recon_mse=tok["recon_mse"], codebook_usage=tok["codebook_usage"],
                   codebook_perplexity=tok["codebook_perplexity"])
    pipe = tetragen.load(out)
    row["clips_per_s"] = per_second(pipe, len, SPEED_BATCH, args.speed_batches)
    WORK.mkdir(parents=True, exist_ok=True)
    from tetragen.modalities.video.show import write_gif_output
    prompt = SHOWN[args.data]
    write_gif_output(WORK / f"{name}_{prompt.replace(' ', '_')}.gif", pipe.sample(4, seed=1, prompt=prompt))
    return {**row, **{k: v for k, v in metrics.items() if isinstance(v, (int, float))}}


def table(results: list[dict]) -> str:
    r0 = results[0]
    frame = "frame_fid" in r0  # per-frame FID: clips of one garment
    lines = ["| family (preset) | minutes | steps | train min | FD (video) | KID | class acc | garment acc | motion acc | "
             + ("per-frame FID | per-frame garment acc | " if frame else "") + "drift | clips/s |",
             "|---|" + "---:|" * (12 if frame else 10)]
    for r in results:
        lines.append(f"| {r['family']} ({r['preset']}) | {r['minutes']:g} | {r['steps']} | {r['train_s'] / 60:.1f} | "
                     f"{r['fid']:.2f} | {r['kid']:.4f} | {r['class_acc']:.3f} | {r['garment_acc']:.3f} | "
                     f"{r['motion_acc']:.3f} | " + (f"{r['frame_fid']:.2f} | {r['frame_garment_acc']:.3f} | " if frame
                                                    else "") +
                     f"{r['drift']:.2f} | {r['clips_per_s']:.1f} |")
    refs = {"train": "train vs test", "still": "first frame held", "shuffled": "frames shuffled",
            "mixed": "each frame from another clip"}

    def ref(k: str) -> str:
        return (f"{r0[f'ref_{k}_frame_fid']:.2f}, " if frame else "") + f"{r0[f'ref_{k}_drift']:.2f}"
    lines += ["", f"References at the same n ({int(r0['n'])} clips vs {int(r0['n_real'])} test clips), FD "
              f"({'per-frame FID, ' if frame else ''}drift): " +
              ", ".join(f"{title} {r0[f'ref_{k}_fid']:.2f} ({ref(k)})" for k, title in refs.items()) +
              f"; the test clips' own drift {r0['ref_test_drift']:.2f}. The evaluator reads "
              f"{r0['evaluator_test_acc']:.3f} of the real test clips as their class (garment and motion). Drift: "
              f"grey levels a centred frame changes from the previous one." +
              (" Per-frame FID: each frame centred on its garment, 28x28, in Fashion-MNIST's image evaluator, against "
               "the test clips' frames. Per-frame garment acc: the garment that evaluator (which never saw a clip) "
               "reads most often over a clip's centred frames is the asked one; it reads "
               f"{r0['ref_test_frame_garment_acc']:.3f} of the real test clips' garments." if frame else "")]
    for r in results:
        if "base" in r:
            lines += ["", f"{r['family']} ({r['preset']}): its tokenizer {r['base']} (the rest of the {r['minutes']:g} "
                      f"minutes to the {r['family']} run); on the test clips: reconstruction MSE "
                      f"{r['recon_mse']:.5f}, codebook usage {r['codebook_usage']:.1%}, perplexity "
                      f"{r['codebook_perplexity']:.1f}."]
    return "\n".join(lines)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--minutes", type=float,
                    help="training budget per entry, tokenizer included (default: each entry's: " +
                         ", ".join(f"{k} {v['minutes']}" for k, v in ENTRIES.items()) + ")")
    ap.add_argument("--eval-samples", type=int, default=2000, help="prompted clips scored per family")
    ap.add_argument("--speed-batches", type=int, default=10, help="batches of 16 clips timed for clips/s")
    ap.add_argument("--families", default=DEFAULT, help=f"comma-separated, of: {', '.join(ENTRIES)} (default {DEFAULT})")
    ap.add_argument("--data", default=DATA, choices=list(SHOWN), help=f"the clips (default {DATA})")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--quick", action="store_true", help="a smoke run; RESULTS.md is left untouched")
    ap.add_argument("--override", action="append", default=[], metavar="KEY=VALUE",
                    help="a config override for each family's run (repeatable), e.g. model.layers=2 on the pairs")
    ap.add_argument("--section", help="the section of RESULTS.md it writes (default: video, or video-pairs and so on "
                                      "for another --data), so that a run of some families keeps another's section")
    args = ap.parse_args()
    if args.quick:
        args.minutes, args.eval_samples, args.speed_batches = 0.2, 100, 2
    names = args.families.split(",")
    if unknown := [f for f in names if f not in ENTRIES]:
        raise SystemExit(f"--families: {unknown[0]!r} is not one of {', '.join(ENTRIES)}")
    results = []
    for name in names:
        results.append(run_entry(name, args))
        print(json.dumps(results[-1]), flush=True)  # kept in the log should a later family be stopped
    body = "\n".join([f"## Video: {args.data}, prompted clips", "", *header(), "", table(results)])
    print(body)
    if not args.quick:
        write_section(args.section or "video" + args.data.removeprefix(DATA), body)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
