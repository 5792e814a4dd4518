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

`--part bach` and `--part styles` do the same on a set read from music21's corpus (`bach-chorales`; `music21-styles`,
four styles prompted by name) and write the `music-bach` and `music-styles` sections: test NLL per note and per
frame beside the same baselines, the statistics, the style classifier's accuracy where there are several styles,
and generation speed. `--tokenizer events` trains and scores them in the event tokenization instead (per note; the
sections `music-bach-events`, `music-styles-events`). `--part harmony` trains bert on `bach-chorales` in each
tokenization and scores its harmonisations of every test piece's melody against the piece's own voices, beside a
voicing lookup table (section `music-harmony`).

Published figures (test NLL per frame on the same split; lower is better), with where each was read:
- Bai, Kolter, Koltun 2018, "An Empirical Evaluation of Generic Convolutional and Recurrent Networks for Sequence
  Modeling", https://arxiv.org/abs/1803.01271, Table 1 ("Music JSB Chorales (loss)"): TCN 8.10, GRU 8.43, LSTM
  8.45, RNN 8.91 (their code scores nats per predicted frame, the first frame of each piece not predicted);
- Vohra, Goel, Sahoo 2015, "Modeling temporal dependencies in data using a DBN-LSTM", IEEE DSAA: DBN-LSTM 3.47, as
  Bai et al. 2018 quote it (Table 4); the paper's own table was not read;
- Boulanger-Lewandowski, Bengio, Vincent 2012, "Modeling Temporal Dependencies in High-Dimensional Sequences",
  ICML, https://arxiv.org/abs/1206.6392: RNN-NADE 5.19 and RNN 8.71, as Krishnan, Shalit, Sontag 2017
  ("Structured Inference Networks for Nonlinear State Space Models", AAAI, https://arxiv.org/abs/1609.09869,
  Tables 3 and 4) quote them; the paper's own Table 1 was not read (the issue cites RNN-NADE 5.56).

    python bench/music.py                  # 10 minutes of training
    python bench/music.py --minutes 2      # a shorter budget (RESULTS.md is written)
    python bench/music.py --transpose 5    # training windows transposed by up to 5 semitones either way
    python bench/music.py --quick          # smoke run: 0.2 minutes, RESULTS.md untouched
    python bench/music.py --part bach      # the Bach chorales of music21's corpus
    python bench/music.py --part styles    # four styles of music21's corpus, prompted by name
    python bench/music.py --part styles --tokenizer events   # the same in the event tokenization
    python bench/music.py --part harmony   # bert harmonising the chorales' melodies, frames and events
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

PUBLISHED = [("DBN-LSTM (Vohra et al. 2015, as quoted by Bai et al. 2018)", 3.47),
             ("RNN-NADE (Boulanger-Lewandowski et al. 2012, as quoted by Krishnan et al. 2017)", 5.19),
             ("TCN (Bai et al. 2018)", 8.10), ("GRU (Bai et al. 2018)", 8.43), ("LSTM (Bai et al. 2018)", 8.45),
             ("RNN (Boulanger-Lewandowski et al. 2012, as quoted by Krishnan et al. 2017)", 8.71),
             ("RNN (Bai et al. 2018)", 8.91)]
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


def baselines(collection, tok) -> dict:
    """name -> (test NLL per frame (None in events), per note) of each baseline fitted on the collection's training
    pieces, in the tokenizer's own tokens (independent keys: frames only)."""
    from tetragen.modalities.music.data import scored_positions
    frames_form = tok.tokenization == "frames"
    encode = (lambda p: tok.encode_piece(p.frames, p.prompt)) if frames_form \
        else (lambda p: tok.encode_events(p.events(), p.prompt))
    enc = {s: [encode(p) for p in collection.splits[s]] for s in ("train", "valid", "test")}
    test = collection.splits["test"]
    frames = sum(len(p.frames) for p in test)
    notes = sum(len(f) for p in test for f in p.frames) if frames_form else sum(len(p.events()) for p in test)
    scored = lambda ids: scored_positions(ids, tok)  # noqa: E731
    model = NGram(enc["train"], tok.vocab_size, ORDER)
    model.fit_weights(enc["valid"], scored)
    grams = model.nats(enc["test"], scored)
    out = {f"token {ORDER}-gram, interpolated": (grams / frames if frames_form else None, grams / notes)}
    if frames_form:
        keys = independent_keys(collection.splits["train"], test) * frames
        out = {"independent keys": (keys / frames, keys / notes), **out}
    return out


def train_and_score(data: str, minutes: float, overrides: list[str], out: Path, quick: bool, prompt: str) -> dict:
    """gpt trained on `data` for `minutes`, its checkpoint of lowest validation NLL scored as `tetragen eval` does,
    and its generation speed (16 pieces of up to 64 frames drawn together, from `prompt`)."""
    import tetragen
    from tetragen import api
    overrides = [f"train.budget_minutes={minutes}", "model.block_size=128", "model.dropout=0.1", "train.eval_tokens=0",
                 f"train.eval_every={20 if quick else 100}", "train.log_every=50", *overrides]
    best, trained = train_best("gpt", data, out, "fast", overrides)
    from tetragen.modalities.music.pipeline import STATS_PIECES
    metrics, lines = api.evaluate(best, n=STATS_PIECES)
    for line in lines:
        print(line, flush=True)
    pipe = tetragen.load(out)
    t1 = time.perf_counter()
    score = pipe.sample(16, seed=0, prompt=prompt, max_frames=64, warn=lambda s: None)
    written = sum(len(n) for n in score.notes) if score.notes is not None \
        else sum(len(f) for frames in score.pieces for f in frames)
    notes = written / (time.perf_counter() - t1)
    return {"metrics": metrics, "trained": trained, "notes_per_s": notes,
            "params": sum(p.numel() for p in pipe.model.parameters()), "steps": pipe.config.train.max_steps,
            "best_step": _best_step(out)}


def train_best(family: str, data: str, out: Path, preset: str, overrides: list[str]) -> tuple[Path, float]:
    """A run trained through `tetragen.train` -> (its checkpoint of lowest validation loss, chosen on the validation
    pieces and never the test ones, or the run where it kept none; the seconds training took)."""
    from tetragen import api
    started = time.perf_counter()
    api.train(family, data, out, preset=preset, overrides=overrides, overwrite=True, progress=False)
    best = out / "checkpoints" / "best"
    return (best if best.is_dir() else out), time.perf_counter() - started


def _best_step(out: Path) -> int | None:
    """The step of the checkpoint that was scored (the lowest validation NLL), from the run's metrics log."""
    import json
    rows = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines() if x.strip()]
    rows = [r for r in rows if "val_nll_frame" in r or "val_nll_note" in r]
    if not rows:
        return None
    key = "val_nll_frame" if "val_nll_frame" in rows[0] else "val_nll_note"
    return int(min(rows, key=lambda r: r[key])["step"])


def statistics_line(m: dict) -> str:
    return (f"drawn pieces against the test pieces (training pieces as the reference): pitch-class TV "
            f"{m['sample_pc_distance']:.3f} ({m['train_pc_distance']:.3f}), interval TV "
            f"{m['sample_interval_distance']:.3f} ({m['train_interval_distance']:.3f}), notes per frame "
            f"{m['sample_notes_per_frame']:.2f} ({m['test_notes_per_frame']:.2f} in the test pieces), in-key share "
            f"{m['sample_in_key']:.3f} ({m['test_in_key']:.3f})")


def jsb_part(args, minutes: float, tmp: Path) -> None:
    from tetragen.modalities.music.data import _jsb_locate, read_split_json
    from tetragen.modalities.music.tokens import MusicTokenizer, words_of
    jsb = read_split_json(_jsb_locate()[0], "bach chorale")
    tok = MusicTokenizer({w for p in jsb.splits["train"] for w in words_of(p.prompt)})
    t0 = time.perf_counter()
    base = {name: v[0] for name, v in baselines(jsb, tok).items()}
    for name, v in base.items():
        print(f"{name}: test NLL {v:.3f} nats/frame", flush=True)
    print(f"(baselines fitted and scored in {time.perf_counter() - t0:.1f} s)", flush=True)
    r = train_and_score(DATA, minutes, [f"data.transpose={args.transpose}"], Path(args.out) if args.out
                        else tmp / "gpt-jsb", args.quick, "bach chorale")
    metrics = r["metrics"]
    ours = metrics["test_nll_frame"]
    print(f"gpt ({minutes:g} min): test NLL {ours:.3f} nats/frame, {r['notes_per_s']:.0f} notes/s", flush=True)
    rows = [(f"**tetragen gpt**, {minutes:g} min on this CPU ({r['params'] / 1e6:.2f}M parameters, {r['steps']} "
             f"steps)", ours, "this run")]
    rows += [(name, v, "baseline, same split, scored the same way") for name, v in base.items()]
    rows += [(name, v, "published") for name, v in PUBLISHED]
    rows.sort(key=lambda row: row[1])
    table = "\n".join(f"| {name} | {v:.2f} | {what} |" for name, v, what in rows)
    machine = "\n".join(header())
    body = f"""## Music: JSB Chorales, test NLL per quarter-note frame (`bench/music.py`)

{machine}

{datetime.now():%Y-%m-%d}, `python bench/music.py --minutes {minutes:g} --transpose {args.transpose}`: gpt (preset
`fast`, `model.block_size=128`, `model.dropout=0.1`, `data.transpose={args.transpose}`) trained for {minutes:g} minutes
({r['trained'] / 60:.1f} measured, loading and evaluation included), the checkpoint of lowest validation NLL (step
{r['best_step']} of {r['steps']}) scored, on
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

Also: test NLL {metrics['test_nll_token']:.3f} nats/token and {metrics['test_nll_note']:.3f} nats/note;
{statistics_line(metrics)}. Generation: {r['notes_per_s']:.0f} notes/s (16 pieces of up to 64 frames drawn together).

Published figures, and where each was read: TCN 8.10, GRU 8.43, LSTM 8.45 and RNN 8.91 from Bai, Kolter, Koltun
2018 (https://arxiv.org/abs/1803.01271), Table 1, "Music JSB Chorales (loss)" (their code, locuslab/TCN, scores
nats per predicted frame and does not predict each piece's first frame, which the figure here scores); DBN-LSTM
3.47 (Vohra, Goel, Sahoo 2015, IEEE DSAA) as Bai et al. quote it in their Table 4; RNN-NADE 5.19 and RNN 8.71
(Boulanger-Lewandowski, Bengio, Vincent 2012, https://arxiv.org/abs/1206.6392) as Krishnan, Shalit, Sontag 2017
(https://arxiv.org/abs/1609.09869) quote them in their Tables 4 and 3. The 2012 and 2015 papers' own tables were
not read here; the benchmark's issue cites RNN-NADE 5.56, a figure not found in the sources read.
"""
    _write(args, "music", body)


def corpus_part(args, minutes: float, tmp: Path, data: str, section: str, title: str, prompt: str) -> None:
    """gpt on a set read from music21's corpus: NLL per note and per frame beside the baselines, statistics, style
    accuracy where the set has several styles, generation speed."""
    from tetragen.modalities.music.data import _named
    from tetragen.modalities.music.tokens import MusicTokenizer, words_of
    collection = _named()[data][1](None)
    events = args.tokenizer == "events"
    tok = MusicTokenizer({w for p in collection.splits["train"] for w in words_of(p.prompt)},
                         tokenization=args.tokenizer)
    base = baselines(collection, tok)
    for name, (frame, note) in base.items():
        print(f"{name}: test NLL {_nats(frame)} nats/frame, {note:.3f} nats/note", flush=True)
    r = train_and_score(data, minutes, [f"data.tokenizer={args.tokenizer}"],
                        Path(args.out) if args.out else tmp / f"gpt-{data}", args.quick, prompt)
    m = r["metrics"]
    sizes = "/".join(str(len(collection.splits[s])) for s in ("train", "valid", "test"))
    rows = [(f"**tetragen gpt**, {minutes:g} min ({r['params'] / 1e6:.2f}M parameters, {r['steps']} steps)",
             m.get("test_nll_frame"), m["test_nll_note"])]
    rows += [(f"{name} (baseline, same split, scored the same way)", f, n) for name, (f, n) in base.items()]
    table = "\n".join(f"| {name} | {_nats(f)} | {n:.3f} |" for name, f, n in rows)
    form = ("in the event tokenization (bars of each piece's metre, positions, pitches, durations; a pickup at the "
            "end of a whole first bar): per note, as frames are not its unit" if events else
            "in the frame tokenization")
    style = ""
    if "sample_style_acc" in m:
        from tetragen.modalities.music.pipeline import STATS_PIECES
        style = (f"\n\nStyle: the style classifier (docs/music.md) reads {m['sample_style_acc']:.3f} of "
                 f"{STATS_PIECES} drawn pieces "
                 f"(the {len(collection.styles)} styles asked in turn) as the style asked for, and "
                 f"{m['test_style_acc']:.3f} of the real test pieces as their own "
                 f"({m['style_classifier_window_acc']:.3f} of the test windows).")
    body = f"""## {title} (`bench/music.py --part {args.part}{' --tokenizer events' if events else ''}`)

{chr(10).join(header())}

gpt (preset `fast`, `model.block_size=128`, `model.dropout=0.1`) trained for {minutes:g} minutes
({r['trained'] / 60:.1f} measured, loading and evaluation included) on `{data}` ({sizes} pieces, split by piece),
the checkpoint of lowest validation NLL (step {r['best_step']} of {r['steps']}) scored on the test pieces, each
from its own start, {form} (the prompt's words scored too). Lower is better.

| model | test NLL (nats/frame) | test NLL (nats/note) |
|---|---:|---:|
{table}

Also: {statistics_line(m)}. Generation: {r['notes_per_s']:.0f} notes/s (16 pieces of up to 64 frames drawn
together, prompt "{prompt}").{style}
"""
    _write(args, section, body)


def voicing_baseline(train, test, events: bool) -> tuple[float, float, int]:
    """Each test frame's melody note with the voicing most often under that very pitch in the training pieces
    (`harmony_match` against the piece's own voices): a lookup table of chords, the harmoniser's baseline."""
    from tetragen.modalities.music.harmonise import harmony_match, harmony_reference
    from tetragen.modalities.music.midi import notes_frames
    under: dict[int, Counter] = defaultdict(Counter)
    for piece in train:
        for f in notes_frames(piece.events()) if events else piece.frames:
            if f:
                under[f[-1]][tuple(f[:-1])] += 1
    same = same_pc = total = 0
    for piece in test:
        real, _ = harmony_reference(piece, events)
        made = [sorted({*under[f[-1]].most_common(1)[0][0], f[-1]}) if f and under[f[-1]] else list(f[-1:])
                for f in real]
        a, b, n = harmony_match(real, made)
        same, same_pc, total = same + a * n, same_pc + b * n, total + n
    return same / total, same_pc / total, total


def harmony_part(args, minutes: float, tmp: Path) -> None:
    """bert on bach-chorales in each tokenization, its harmonisations of every test piece's top voice scored
    against the piece's own voices, beside the voicing lookup baseline."""
    import tetragen
    from tetragen.modalities.music.data import _named
    from tetragen.modalities.music.harmonise import HARMONISED_FRAMES, harmony_scores
    collection = _named()["bach-chorales"][1](None)
    train, test = collection.splits["train"], collection.splits["test"]
    rows = []
    for form in ("frames", "events"):
        out = Path(args.out) / form if args.out else tmp / f"bert-{form}"
        overrides = [f"train.budget_minutes={minutes}", "model.dropout=0.1", f"data.tokenizer={form}",
                     f"train.eval_every={20 if args.quick else 100}", "train.log_every=50"]
        best, trained = train_best("bert", "bach-chorales", out, "baby", overrides)
        pipe = tetragen.load(best)
        t1 = time.perf_counter()
        h = harmony_scores(pipe, test, most=len(test))
        spent = time.perf_counter() - t1
        base = voicing_baseline(train, test, form == "events")
        print(f"bert on {form}: {h['harmony_note_acc']:.3f} of the voices' notes, {h['harmony_pc_acc']:.3f} by pitch "
              f"class; baseline {base[0]:.3f} / {base[1]:.3f}; {spent:.1f} s", flush=True)
        rows.append((form, h, base, trained, spent, pipe.config.train.max_steps,
                     sum(p.numel() for p in pipe.model.parameters()), pipe.config.train.precision))
    table = "\n".join(
        f"| {form} | bert ({params / 1e6:.2f}M parameters, {steps} steps, {precision}) | {h['harmony_note_acc']:.3f} | "
        f"{h['harmony_pc_acc']:.3f} | {h['harmony_in_key']:.3f} | {h['harmony_frames'] / spent:.0f} |\n"
        f"| {form} | voicing lookup (baseline) | {b[0]:.3f} | {b[1]:.3f} | - | - |"
        for form, h, b, _, spent, steps, params, precision in rows)
    body = f"""## Music: harmonising the Bach chorales' melodies (`bench/music.py --part harmony`)

{chr(10).join(header())}

bert (preset `baby`, `model.dropout=0.1`) trained for {minutes:g} minutes on `bach-chorales` in each tokenization
({', '.join(f'{r[3] / 60:.1f}' for r in rows)} minutes measured), the checkpoint of lowest validation loss
harmonising the top voice of the first {HARMONISED_FRAMES} quarter notes of every test piece ({len(test)}) with the
likeliest notes (as many voices under it as the piece has most often; events: note against note, each melody note's
rhythm kept), scored against the piece's own voices frame by frame: the share of its notes under the melody written
in the same frame, by pitch and by pitch class. Baseline: each melody note with the voicing most often under that
pitch in the training pieces. Higher is better.

| tokens | harmoniser | notes right | pitch classes right | in key | frames/s |
|---|---|---:|---:|---:|---:|
{table}
"""
    _write(args, "music-harmony", body)


def _nats(v) -> str:
    return "-" if v is None else f"{v:.3f}"


def _write(args, section: str, body: str) -> None:
    if args.quick:
        print(f"--quick: the {section} section of bench/RESULTS.md left as it is")
    else:
        write_section(section, body)
        print(f"wrote the {section} section of bench/RESULTS.md")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--part", choices=("jsb", "bach", "styles", "harmony", "all"), default="jsb",
                    help="jsb: the JSB Chorales benchmark (section `music`); bach: the Bach chorales of music21's "
                         "corpus (`music-bach`); styles: music21-styles, four styles prompted by name "
                         "(`music-styles`); harmony: bert harmonising the chorales' melodies in each "
                         "tokenization (`music-harmony`); all: jsb, bach and styles, one after another")
    ap.add_argument("--minutes", type=float, default=10.0, help="training budget of each gpt (default 10)")
    ap.add_argument("--quick", action="store_true", help="smoke run: 0.2 minutes; RESULTS.md untouched")
    ap.add_argument("--out", default="", help="where the run goes (default: a temporary folder; one part only)")
    ap.add_argument("--tokenizer", choices=("frames", "events"), default="frames",
                    help="the tokenization of --part bach / styles (events: their sections end in -events)")
    ap.add_argument("--transpose", type=int, default=0,
                    help="data.transpose of the JSB run: training windows shifted by up to this many semitones")
    args = ap.parse_args()
    minutes = 0.2 if args.quick else args.minutes

    import torch
    torch.set_num_threads(max(1, torch.get_num_threads()))
    parts = ("jsb", "bach", "styles") if args.part == "all" else (args.part,)
    if args.tokenizer == "events" and ("jsb" in parts or "harmony" in parts):
        ap.error("--tokenizer events: for --part bach or styles (the JSB benchmark is scored per frame, in "
                 "frames; --part harmony runs both tokenizations)")
    suffix, title = ("-events", ", in events") if args.tokenizer == "events" else ("", "")
    with tempfile.TemporaryDirectory() as tmp:
        for part in parts:
            if part == "jsb":
                jsb_part(args, minutes, Path(tmp))
            elif part == "harmony":
                harmony_part(args, minutes, Path(tmp))
            elif part == "bach":
                corpus_part(args, minutes, Path(tmp), "bach-chorales", "music-bach" + suffix,
                            f"Music: Bach chorales from music21's corpus, test NLL per note{title}", "bach chorale")
            else:
                corpus_part(args, minutes, Path(tmp), "music21-styles", "music-styles" + suffix,
                            f"Music: four styles from music21's corpus, prompted by style{title}", "bach chorale")
    return 0


if __name__ == "__main__":
    sys.exit(main())
