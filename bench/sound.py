"""Sound from prompts on spoken-words: tetragen's families trained for a fixed budget each, scored by the audio
evaluator as audio (after Griffin-Lim), against its reference rows.

For each family (cgan and cvae, each with its preset `words`, and the token prior: t2i over a vqvae's tokens, the
tokenizer trained first for a third of the same minutes; all learn 64x64 log-mel pictures):
1. Train through `tetragen.train` with `train.budget_minutes` (the trainer plans the steps and re-plans as it goes).
2. `tetragen.api.evaluate` (as `tetragen eval`) with `--eval-samples` prompted clips (every word in turn): Fréchet distance and KID in the
   evaluator's features, prompted-word accuracy (the evaluator's reading of the word asked for, on voices it never
   heard in training), and the reference rows: train vs test, the test clips after a Griffin-Lim round trip, the
   test clips with noise at 10 dB SNR.
3. Seconds of audio made per second (sampling + Griffin-Lim, batch 16).
4. Write the table to the `sound` section of bench/RESULTS.md (a --quick run writes nothing there).

5. With --peer-dir, a public peer side by side: WaveGAN-pytorch (Thrcle421/WaveGAN-pytorch, a 2025 update of
   jtcramer's PyTorch port of Donahue et al.'s WaveGAN, https://arxiv.org/abs/1802.04208, that runs on torch 2.x
   and on the CPU), trained by its own `train_wavegan.py` with its own defaults on the same training clips, then
   scored by the same evaluator. Get it once (GitHub is not reached at run time):

       git clone https://github.com/Thrcle421/WaveGAN-pytorch bench/_peers/WaveGAN-pytorch
       git -C bench/_peers/WaveGAN-pytorch checkout 5f01a44ed8f1ef1dc736c7bee8f744c3132f39e7

   Its Python dependencies (its requirements.txt: librosa, pescador, ...) go into bench/_peers/venv, made here on
   first use with pip (bench/peers/venv.py; torch stays tetragen's CPU build). What is fed to it, and what is
   changed: the training split's clips as 16-bit 16 kHz WAV files in one flat folder (the format its loader reads;
   flat, so that its own 10% validation / 10% test split by file order draws from every word), the command line
   `train_wavegan.py DATA OUT --no-cuda`, and a step count. It has no time limit and saves its generator only when
   training ends, so a first short run (one iteration, `-ne 1 -bpe 1`) times an iteration, and the real run gets
   `-ne E` epochs of its default 10 iterations that end within --peer-minutes (`-ne 1 -bpe K` where fewer than 10
   iterations fit). Everything else is its default: batch 64, model size 64, 16384-sample windows, 5 critic
   updates per generator update, WGAN-GP, Adam 1e-4. Samples: bench/peers/wavegan_sample.py loads its saved
   generator with its own class and draws the latent as its training does; the 16384-sample clips, at 16 kHz
   already, are cut back to the 1 s its loader padded them from (samples 192 to 16192) and scored as the families'
   clips are, through the evaluator's own log-mel front end. It is unconditional: it has no prompted-word
   accuracy, so its row gives how many of the 20 words the evaluator hears in its clips (at least half their
   even share each) and the evenness of what it hears (normalised entropy, 1 = all words equally).

    python bench/sound.py                  # 10 minutes per family, 2000 samples
    python bench/sound.py --peer-dir bench/_peers/WaveGAN-pytorch     # and the peer for the same 10 minutes
    python bench/sound.py --quick          # smoke run: 0.3 minutes per family, 100 samples, RESULTS.md untouched
    python bench/sound.py --quick --families none --peer-dir bench/_peers/WaveGAN-pytorch   # the peer's plumbing

A --quick run with a peer also shrinks it (`-bs 8 -ms 16`, one iteration) so that the smoke run stays short: its
row checks the plumbing, not the peer.
"""
from __future__ import annotations

import argparse
import json
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from _results import header, per_second, train_for, write_section  # noqa: E402
from peers import venv as peer_venv  # noqa: E402

import tetragen  # noqa: E402
from tetragen.api import evaluate  # noqa: E402

WORK = ROOT / "bench" / "_work" / "sound"
DATA = "spoken-words"
# name -> the run: family and preset, and a component trained first for its share of the same minutes ("base", as
# bench/_results.train_for takes it): the token prior's tokenizer
FAMILIES = {"cgan": {"family": "cgan", "preset": "words"},
            "cvae": {"family": "cvae", "preset": "words"},
            # a 64x64 spectrogram in 8x8 tokens (fmnist's 4x down-sampling would make 256 a clip, each prior step
            # and sampled clip four times as long) by a half-width tokenizer (more steps in its share), and the
            # quickstart's 4 x 128 prior
            "t2i": {"family": "t2i", "preset": "fmnist-small",
                    "base": {"family": "vqvae", "preset": "fmnist", "share": 1 / 3, "override": "model.tokenizer_run",
                             "overrides": ["model.image_size=64", "model.downsample=8", "model.width=32"]}}}
SPEED_BATCH = 16
PEER = "Thrcle421/WaveGAN-pytorch"
PEER_COMMIT = "5f01a44ed8f1ef1dc736c7bee8f744c3132f39e7"
PEER_WINDOW = 16384        # its generator's clip; its loader pads a 16000-sample clip to it, centred
PEER_QUICK = ["-bs", "8", "-ms", "16"]


def run_family(name: str, args) -> dict:
    entry = FAMILIES[name]
    family, preset = entry["family"], entry["preset"]
    out = WORK / name
    steps, train_s = train_for(family, DATA, out, preset, args.minutes, args.seed, base=entry.get("base"))
    metrics, _ = evaluate(out, n=args.eval_samples, seed=0, iw_samples=10)  # the cvae's bound: 10 samples
    pipe = tetragen.load(out)
    per_s = per_second(pipe, lambda sound: sound.waves.size / sound.sample_rate, SPEED_BATCH, args.speed_batches)
    WORK.mkdir(parents=True, exist_ok=True)
    from tetragen.modalities.sound.show import write_wav_output
    write_wav_output(WORK / f"{family}_seven.wav", pipe.sample(4, seed=1, prompt="seven"))
    base = entry.get("base")
    label = f"{family} ({preset})" + (f", its {base['family']} tokenizer ({base['preset']}"
                                      f"{''.join(' ' + o for o in base.get('overrides', ()))}) trained first for "
                                      f"{base['share']:.2f} of the minutes" if base else "")
    return {"family": family, "preset": preset, "label": label, "steps": steps, "train_s": train_s,
            "audio_per_s": per_s, **{k: v for k, v in metrics.items() if isinstance(v, (int, float))}}


# ----------------------------------------------------------------------------------------------------------------
# the public peer

def spoken_words():
    """The spoken-words clips as the evaluator hears them (the same SoundData a run on it reads)."""
    from tetragen.modalities.sound.audio import MelSettings
    from tetragen.modalities.sound.data import SOUND_DATASETS, SoundData
    train, test = SOUND_DATASETS[DATA]()
    return SoundData(DATA, train, test, MelSettings())


def score_waves(data, waves: np.ndarray, n_real: int, seed: int = 0) -> dict:
    """FD and KID of float waves (N, 16000) against the test clips, in the evaluator's features: what
    `tetragen.eval.image.image_metrics` does after the vocoder, given waves instead of pictures; plus which words
    the evaluator hears in them, and the reference rows at the same n."""
    import torch
    from tetragen.eval.image import Distances, evaluator_rows, real_images, reference_rows
    real = real_images(data, n_real, seed)
    with torch.random.fork_rng(devices=[]):
        ev = data.evaluator("cpu")
        dist = Distances(ev, len(real), len(waves), "cpu")
        dist.update(real, real=True)
        dist.update(waves, real=False)
        out = dist.compute(seed)
    heard = np.bincount(ev.predict(waves, "cpu"), minlength=len(data.classes)) / len(waves)
    k = len(data.classes)
    share = heard[heard > 0]
    out.update({"words_heard": int((heard >= 0.5 / k).sum()),
                "heard_evenness": max(0.0, float(-(share * np.log(share)).sum() / np.log(k))), "n": len(waves),
                **reference_rows(data, ev, n_real, "cpu", seed), **evaluator_rows(ev)})
    return out


def write_peer_data(data, folder: Path) -> None:
    """The training clips as 16-bit 16 kHz WAV files in one flat folder, named by index and word."""
    from tetragen.modalities.sound.audio import write_wav
    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    waves, labels = data.waves["train"], data.train.labels
    for i in range(len(waves)):
        write_wav(folder / f"{i:05d}_{data.classes[labels[i]]}.wav", waves[i], 16000)


def run_peer_training(py: Path, peer_dir: Path, data_dir: Path, out: Path, extra: list[str],
                      limit_s: float) -> tuple[Path, dict]:
    """Run the peer's own train_wavegan.py; its log lines are echoed. Returns its model folder and the seconds
    from the process start to its "Starting training..." and "Training complete" lines and to its exit."""
    if out.exists():
        shutil.rmtree(out)
    cmd = [str(py), "train_wavegan.py", str(data_dir), str(out), "--no-cuda", *extra]
    print("peer: " + " ".join(cmd[1:]), file=sys.stderr, flush=True)
    t0 = time.perf_counter()
    marks = {}
    proc = subprocess.Popen(cmd, cwd=peer_dir, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    for line in proc.stdout:
        now = time.perf_counter() - t0
        for key, needle in (("start", "Starting training"), ("end", "Training complete")):
            if needle in line and key not in marks:
                marks[key] = now
        if re.search(r"Epoch: |Starting|complete|Error|error|Traceback|Saving models", line):
            print("peer: " + line.rstrip()[-160:], file=sys.stderr, flush=True)
        if now > 2 * limit_s + 600:  # far past its plan: something is wrong
            proc.kill()
    rc = proc.wait()
    marks["exit"] = time.perf_counter() - t0
    models = sorted(out.glob("*/model_gen.pkl"))
    if rc != 0 or not models:
        raise SystemExit(f"peer: train_wavegan.py exited {rc} without a saved generator in {out}")
    return models[-1].parent, marks


def run_peer(args, data) -> dict:
    peer_dir = Path(args.peer_dir).resolve()
    if not (peer_dir / "train_wavegan.py").is_file():
        raise SystemExit(f"--peer-dir {peer_dir}: no train_wavegan.py; clone https://github.com/{PEER} there and "
                         f"check out {PEER_COMMIT}")
    py = peer_venv.ensure(["-r", str(peer_dir / "requirements.txt")], f"{PEER}'s requirements")
    work = WORK / "peer"
    write_peer_data(data, work / "data")
    limit_s = args.peer_minutes * 60
    if args.quick:
        plan, note = ["-ne", "1", "-bpe", "1", *PEER_QUICK], "quick: one iteration, " + " ".join(PEER_QUICK)
    else:  # it saves its generator only at its end, so its iterations are counted to end within the limit
        _, probe = run_peer_training(py, peer_dir, work / "data", work / "probe", ["-ne", "1", "-bpe", "1"],
                                     limit_s)
        per_iter = probe["end"] - probe["start"]
        fit = max(1, int((limit_s - probe["start"]) // per_iter))
        plan = ["-ne", str(fit // 10)] if fit >= 10 else ["-ne", "1", "-bpe", str(fit)]
        note = (f"{' '.join(plan)} from a probe: {per_iter:.0f} s an iteration, {probe['start']:.0f} s to start; "
                f"otherwise its defaults")
    model_dir, marks = run_peer_training(py, peer_dir, work / "data", work / "run", plan, limit_s)
    cfg = json.loads((model_dir / "config.json").read_text())
    iterations = cfg["num_epochs"] * cfg["batches_per_epoch"]
    r = subprocess.run([str(py), str(Path(__file__).resolve().parent / "peers" / "wavegan_sample.py"),
                        str(model_dir), str(args.eval_samples), str(args.seed), str(work / "samples.npy")],
                       cwd=peer_dir, capture_output=True, text=True)
    if r.returncode != 0:
        raise SystemExit(f"peer: sampling failed (exit {r.returncode}):\n{r.stderr[-2000:]}")
    sample_s = json.loads(r.stdout.strip().splitlines()[-1])["forward_s"]
    clips = np.load(work / "samples.npy")
    assert clips.shape == (args.eval_samples, PEER_WINDOW), clips.shape
    pad = (PEER_WINDOW - 16000) // 2
    waves = np.ascontiguousarray(np.clip(clips[:, pad:pad + 16000], -1.0, 1.0), dtype=np.float32)
    metrics = score_waves(data, waves, args.eval_samples, args.seed)
    commit = peer_venv.checkout_commit(peer_dir)
    from tetragen.modalities.sound.audio import write_wav
    write_wav(WORK / "peer_four.wav", np.concatenate(waves[:4]), 16000)
    return {"family": "peer", "label": f"public peer: {PEER}@{commit[:7]} (WaveGAN, unconditional), unchanged "
                                       f"except data path and step count",
            "preset": "defaults", "steps": iterations, "train_s": marks["exit"], "peer_commit": commit,
            "peer_plan": note, "acc_note": f"n/a: hears {metrics['words_heard']}/{len(data.classes)} words, "
                                           f"evenness {metrics['heard_evenness']:.2f}",
            "audio_per_s": len(waves) / sample_s, **metrics}


def table(results: list[dict]) -> str:
    r0 = results[0]
    lines = ["| family (preset) | steps | train min | FD | KID | prompted-word acc | audio s per s |",
             "|---|---:|---:|---:|---:|---:|---:|"]
    for r in results:
        acc = f"{r['class_acc']:.3f}" if "class_acc" in r else r.get("acc_note", "n/a")
        lines.append(f"| {r.get('label') or r['family'] + ' (' + r['preset'] + ')'} | {r['steps']} | "
                     f"{r['train_s'] / 60:.1f} | {r['fid']:.2f} | {r['kid']:.4f} | {acc} | {r['audio_per_s']:.1f} |")
    lines += ["", f"References at the same n ({int(r0['n'])} clips vs {int(r0['n_real'])} test clips): train vs test FD "
              f"{r0['ref_train_fid']:.2f}, Griffin-Lim round trip of the test clips {r0['ref_griffinlim_fid']:.2f}, "
              f"test clips with noise at 10 dB SNR {r0['ref_noise_fid']:.2f}; the evaluator hears "
              f"{r0['evaluator_test_acc']:.3f} of the real held-out-voice test clips as their word."]
    for r in results:
        if r["family"] == "peer":
            lines += ["", f"The peer: https://github.com/{PEER} at {r['peer_commit']}, its own train_wavegan.py on the "
                      f"training clips as WAV files, {r['peer_plan']}; {r['steps']} generator iterations in "
                      f"{r['train_s'] / 60:.1f} minutes (the whole process). Its audio s per s: its generator's "
                      f"forward passes in batches of 16 (1 s kept of each 1.024 s clip)."]
    return "\n".join(lines)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--minutes", type=float, default=10.0, help="training budget per family (default 10)")
    ap.add_argument("--eval-samples", type=int, default=2000, help="prompted clips scored per family")
    ap.add_argument("--speed-batches", type=int, default=10, help="batches of 16 clips timed for audio s per s")
    ap.add_argument("--families", default=",".join(FAMILIES),
                    help="comma-separated, of: " + ", ".join(FAMILIES) + " ('none': the peer only)")
    ap.add_argument("--peer-dir", help=f"a checkout of {PEER} at {PEER_COMMIT[:7]}: run it side by side")
    ap.add_argument("--peer-minutes", type=float, help="the peer's training time (default: --minutes)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--quick", action="store_true", help="a smoke run; RESULTS.md is left untouched")
    args = ap.parse_args()
    if args.quick:
        args.minutes, args.eval_samples, args.speed_batches = 0.3, 100, 2
    args.peer_minutes = args.minutes if args.peer_minutes is None else args.peer_minutes
    families = [f for f in args.families.split(",") if f and f != "none"]
    if unknown := [f for f in families if f not in FAMILIES]:
        raise SystemExit(f"--families: {unknown[0]!r} is not one of {', '.join(FAMILIES)}")
    results = []
    for family in families:
        results.append(run_family(family, args))
        print(json.dumps(results[-1]), flush=True)  # kept in the log should a later family be stopped
    if args.peer_dir:
        results.append(run_peer(args, spoken_words()))
        print(json.dumps(results[-1]), flush=True)
    if not results:
        raise SystemExit("nothing to run: give --families or --peer-dir")
    body = "\n".join(["## Sound: spoken-words, prompted clips scored as audio", "", *header(), "", table(results)])
    print(body)
    if not args.quick:
        write_section("sound", body)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
