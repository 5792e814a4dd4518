"""Music on the JSB Chorales benchmark: a gpt trained for a fixed budget on the standard split, its test NLL per
quarter-note frame beside the published table and two baselines fitted on the same training split.

1. Baselines, fitted on the training pieces and scored on the test pieces exactly as the model is (the frame
   tokens of each piece from its start, divided by its frames):
   - independent keys: each of the 88 keys sounds in a frame with its training frequency, independently of the
     others and of the past (the piano roll's simplest model, scored directly per frame);
   - token n-gram: the frame tokenization's tokens (tetragen/modalities/music/tokens.py), orders 1 to N linearly
     interpolated, the weights chosen on the validation pieces (the prompt is context, never scored).
2. gpt trained through `tetragen.train` on `jsb-chorales` with `train.budget_minutes` (default 10), evaluated on
   the validation pieces every 100 steps; the checkpoint with the lowest validation NLL (`checkpoints/best`) is
   then scored by `tetragen.api.evaluate` (as `tetragen eval`): test NLL per frame, per token and per note (the
   prompt's words included, an upper bound of the piano roll's NLL), and the statistics of
   drawn pieces against the test pieces (the training pieces as the reference row). Generation speed: notes written
   per second, 16 pieces of up to 64 frames drawn together.
3. Writes the `music` section of bench/RESULTS.md (a --quick run writes nothing there).

Published figures (test NLL per frame on the same split; lower is better), as cited in the benchmark's issue:
- Bai, Kolter, Koltun 2018, "An Empirical Evaluation of Generic Convolutional and Recurrent Networks for Sequence
  Modeling", https://arxiv.org/abs/1803.01271: TCN 8.10, GRU 8.43, LSTM 8.45;
- Boulanger-Lewandowski, Bengio, Vincent 2012, "Modeling Temporal Dependencies in High-Dimensional Sequences:
  Application to Polyphonic Music Generation and Transcription", ICML, https://arxiv.org/abs/1206.6392:
  RNN-NADE 5.56.
These were not re-read from the papers' tables here: check them there before quoting.

    python bench/music.py                  # 10 minutes of training
    python bench/music.py --minutes 2      # a shorter budget (RESULTS.md is written)
    python bench/music.py --transpose 5    # training windows transposed by up to 5 semitones either way
    python bench/music.py --quick          # smoke run: 0.2 minutes, RESULTS.md untouched
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections import Counter, defaultdict
from datetime import datetime
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _results import header, write_section  # noqa: E402

PUBLISHED = [("RNN-NADE (Boulanger-Lewandowski et al. 2012)", 5.56),
             ("TCN (Bai et al. 2018)", 8.10), ("GRU (Bai et al. 2018)", 8.43), ("LSTM (Bai et al. 2018)", 8.45)]
DATA = "jsb-chorales"
ORDER = 6            # the n-gram baseline's highest order


def independent_keys(train, test) -> float:
    """NLL per frame of the test pieces when each key sounds independently with its training frequency."""
    counts = np.zeros(128)
    frames = 0
    for piece in train:
        for f in piece.frames:
            counts[f] += 1
            frames += 1
    q = np.clip((counts[21:109] + 0.5) / (frames + 1.0), 1e-6, 1 - 1e-6)
    total, n = 0.0, 0
    for piece in test:
        for f in piece.frames:
            x = np.zeros(88)
            x[[p - 21 for p in f]] = 1
            total -= float((x * np.log(q) + (1 - x) * np.log(1 - q)).sum())
            n += 1
    return total / n


class NGram:
    """Token n-grams of orders 1..N, interpolated with weights chosen on held-out pieces."""

    def __init__(self, pieces: list[list[int]], vocab: int, order: int):
        self.vocab, self.order = vocab, order
        self.counts = [defaultdict(Counter) for _ in range(order)]   # order k: context of k tokens -> next counts
        for ids in pieces:
            for t in range(1, len(ids)):
                for k in range(order):
                    if t - k < 0:
                        break
                    self.counts[k][tuple(ids[t - k:t])][ids[t]] += 1
        self.weights = np.full(order + 1, 1.0 / (order + 1))

    def probs(self, ids: list[int], t: int) -> np.ndarray:
        """Each order's probability of token t (order -1: uniform first), for the interpolation."""
        out = [1.0 / self.vocab]
        for k in range(self.order):
            table = self.counts[k].get(tuple(ids[t - k:t])) if t - k >= 0 else None
            total = sum(table.values()) if table else 0
            out.append(table[ids[t]] / total if total else out[-1])  # an unseen context backs off to the order below
        return np.array(out)

    def rows(self, pieces, scored) -> np.ndarray:
        return np.array([self.probs(ids, t) for ids in pieces for t in range(1, len(ids)) if scored(ids)[t]])

    def fit_weights(self, pieces, scored, steps: int = 60) -> None:
        """EM for the mixture weights on held-out tokens."""
        p = self.rows(pieces, scored)
        w = self.weights
        for _ in range(steps):
            r = p * w
            r /= r.sum(1, keepdims=True)
            w = r.mean(0)
        self.weights = w

    def nats(self, pieces, scored) -> float:
        return float(-np.log(self.rows(pieces, scored) @ self.weights).sum())


def baselines(jsb, tok) -> dict:
    from tetragen.modalities.music.data import scored_positions
    enc = {s: [tok.encode_piece(p.frames, p.prompt) for p in jsb.splits[s]] for s in ("train", "valid", "test")}
    frames = sum(len(p.frames) for p in jsb.splits["test"])
    scored = lambda ids: scored_positions(ids, tok)  # noqa: E731
    model = NGram(enc["train"], tok.vocab_size, ORDER)
    model.fit_weights(enc["valid"], scored)
    return {"independent keys": independent_keys(jsb.splits["train"], jsb.splits["test"]),
            f"token {ORDER}-gram, interpolated": model.nats(enc["test"], scored) / frames}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--minutes", type=float, default=10.0, help="training budget of the gpt (default 10)")
    ap.add_argument("--quick", action="store_true", help="smoke run: 0.2 minutes; RESULTS.md untouched")
    ap.add_argument("--out", default="", help="where the run goes (default: a temporary folder)")
    ap.add_argument("--transpose", type=int, default=0,
                    help="data.transpose of the run: training windows shifted by up to this many semitones")
    args = ap.parse_args()
    minutes = 0.2 if args.quick else args.minutes

    import torch
    import tetragen
    from tetragen import api
    from tetragen.modalities.music.data import _jsb_locate, read_split_json
    from tetragen.modalities.music.tokens import MusicTokenizer, words_of
    torch.set_num_threads(max(1, torch.get_num_threads()))

    jsb = read_split_json(_jsb_locate()[0], "bach chorale")
    tok = MusicTokenizer({w for p in jsb.splits["train"] for w in words_of(p.prompt)})
    t0 = time.perf_counter()
    base = baselines(jsb, tok)
    for name, v in base.items():
        print(f"{name}: test NLL {v:.3f} nats/frame", flush=True)
    print(f"(baselines fitted and scored in {time.perf_counter() - t0:.1f} s)", flush=True)

    overrides = [f"train.budget_minutes={minutes}", "model.block_size=128", "model.dropout=0.1",
                 f"data.transpose={args.transpose}", "train.eval_tokens=0",
                 f"train.eval_every={20 if args.quick else 100}", "train.log_every=50"]
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(args.out) if args.out else Path(tmp) / "gpt-jsb"
        started = time.perf_counter()
        api.train("gpt", DATA, out, preset="fast", overrides=overrides, overwrite=True, progress=False)
        trained = time.perf_counter() - started
        best = out / "checkpoints" / "best"  # the step with the lowest validation NLL: chosen on valid, not test
        metrics, lines = api.evaluate(best if best.is_dir() else out, n=64)
        for line in lines:
            print(line, flush=True)
        pipe = tetragen.load(out)
        t1 = time.perf_counter()
        score = pipe.sample(16, seed=0, prompt="bach chorale", max_frames=64, warn=lambda s: None)
        notes = sum(len(f) for frames in score.pieces for f in frames) / (time.perf_counter() - t1)
        params = sum(p.numel() for p in pipe.model.parameters())
        steps = pipe.config.train.max_steps

    ours = metrics["test_nll_frame"]
    print(f"gpt ({minutes:g} min): test NLL {ours:.3f} nats/frame, {notes:.0f} notes/s", flush=True)
    rows = [(f"**tetragen gpt**, {minutes:g} min on this CPU ({params / 1e6:.2f}M parameters, {steps} steps)",
             ours, "this run")]
    rows += [(name, v, "baseline, same split, scored the same way") for name, v in base.items()]
    rows += [(name, v, "published") for name, v in PUBLISHED]
    rows.sort(key=lambda r: r[1])
    table = "\n".join(f"| {name} | {v:.2f} | {what} |" for name, v, what in rows)
    machine = "\n".join(header())
    body = f"""## Music: JSB Chorales, test NLL per quarter-note frame (`bench/music.py`)

{machine}

{datetime.now():%Y-%m-%d}, `python bench/music.py --minutes {minutes:g} --transpose {args.transpose}`: gpt (preset
`fast`, `model.block_size=128`, `model.dropout=0.1`, `data.transpose={args.transpose}`) trained for {minutes:g} minutes
({trained / 60:.1f} measured, loading and evaluation included), the checkpoint of lowest validation NLL scored, on
`jsb-chorales`, the standard 229/76/77 split of Boulanger-Lewandowski et al. (2012), in the frame tokenization
(each frame its sounding pitches in ascending order and an end-of-frame token), so the model's NLL of a piece's frame
tokens divided by its frames is the piano roll's NLL per frame (its prompt's words, style and estimated key, are
scored too: an upper bound). Each test piece is scored from its own start (a sliding window with stride half the
context past the context). Lower is better. The published recurrent and convolutional models (TCN, GRU, LSTM)
predict a frame's 88 keys independently given the past; RNN-NADE and the frame tokens predict them one after
another.

| model | test NLL (nats/frame) | |
|---|---:|---|
{table}

Also: test NLL {metrics['test_nll_token']:.3f} nats/token and {metrics['test_nll_note']:.3f} nats/note; drawn pieces
against the test pieces (training pieces as the reference): pitch-class TV {metrics['sample_pc_distance']:.3f}
({metrics['train_pc_distance']:.3f}), interval TV {metrics['sample_interval_distance']:.3f}
({metrics['train_interval_distance']:.3f}), notes per frame {metrics['sample_notes_per_frame']:.2f}
({metrics['test_notes_per_frame']:.2f} in the test pieces), in-key share {metrics['sample_in_key']:.3f}
({metrics['test_in_key']:.3f}). Generation: {notes:.0f} notes/s (16 pieces of up to 64 frames drawn together).

Published figures: Bai, Kolter, Koltun 2018 (https://arxiv.org/abs/1803.01271), Boulanger-Lewandowski, Bengio,
Vincent 2012 (https://arxiv.org/abs/1206.6392), as cited in the benchmark's issue.
"""
    if args.quick:
        print("--quick: bench/RESULTS.md left as it is")
    else:
        write_section("music", body)
        print("wrote the music section of bench/RESULTS.md")
    return 0


if __name__ == "__main__":
    sys.exit(main())
