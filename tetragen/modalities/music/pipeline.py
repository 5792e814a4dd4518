"""What `tetragen.load` returns for a language model trained on music: scores drawn from a prompt.

    pipe = tetragen.load("runs/gpt-chorales")
    score = pipe.sample(2, seed=0, prompt="bach chorale in g minor")   # Score: frames of each piece
    score.pieces[0][:2]      # [[43, 55, 62, 70], [43, 58, 62, 67]]
    score.text[0]            # the token text: "<bos> bach chorale in g minor <music> 43 55 62 70 | ..."

The prompt's words are fed after `<bos>`; the model completes the prompt (a style alone gets a key of the model's
choosing) and then writes frames until `<end>` or `max_frames`. Decoding is constrained to the frame form: words
and `<music>` in the prompt, then ascending pitches and `|` within a frame, so every draw is a valid score. Rows
are decoded together through the family's own batched decoder (`slot_decoder`), each from its own seed, so a
seeded piece is the same whatever else is drawn beside it.
"""
from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ...errors import UserError
from ...files import read_json
from ...sample.tokens import BatchedDecoding, SamplingParams, next_tokens
from . import stats
from .styles import style_scores
from .midi import frames_to_notes, notes_frames, read_file, read_midi, read_notes
from .tokens import HIGH, LOW, MAX_DURATION, STEPS, MusicTokenizer, words_of

MUSIC_FILE = "music.json"           # a music run's styles, beside its tokenizer.json
MAX_FRAMES = 64                     # frames a draw writes at most, unless asked
MAX_PROMPT_WORDS = 12               # words the model may add to a prompt before it must start the music
MAX_NOTES = 12                      # pitches in one frame at most
STATS_PIECES = 128                  # pieces drawn for the statistics of `evaluate` at most


class FrameGrammar:
    """What may come next in the frame tokenization: prompt words, `<music>`, then ascending pitches and `|` within
    a frame, `<end>` after at least one frame and at `max_frames` new frames. `feed` each token drawn."""

    def __init__(self, tok: MusicTokenizer, vocab: int, ids: list[int], max_frames: int):
        self.tok, self.vocab, self.max_frames = tok, vocab, max_frames
        self.words = [tok.index[w] for w in tok.words]
        self.in_music, self.frames, self.notes, self.prompt, self.done = False, 0, 0, 0, False
        self.last = None
        for t in ids:
            self.feed(t, replay=True)

    def feed(self, t: int, replay: bool = False) -> None:
        tok = self.tok
        if t == tok.music:
            self.in_music = True
        elif not self.in_music:
            self.prompt += t != tok.bos
        elif t == tok.frame:
            self.frames += 0 if replay else 1
            self.notes = 0
        elif tok.is_pitch(t):
            self.notes += 1
        elif t == tok.end:
            self.done = True
        self.last = t

    def allowed(self) -> torch.Tensor:
        tok = self.tok
        allowed = torch.zeros(self.vocab, dtype=torch.bool)
        if not self.in_music:
            if self.prompt < MAX_PROMPT_WORDS:
                allowed[self.words] = True
            allowed[tok.music] = True
            return allowed
        if self.frames >= self.max_frames:
            allowed[tok.end] = True
            return allowed
        low = self.last + 1 if tok.is_pitch(self.last) else tok.pitch0
        if self.notes < MAX_NOTES:
            allowed[low:tok.pitch0 + HIGH - LOW + 1] = True
        allowed[tok.frame] = True
        if not tok.is_pitch(self.last) and self.frames > 0:
            allowed[tok.end] = True
        return allowed


class EventGrammar(FrameGrammar):
    """What may come next in the event tokenization: after `<music>` a bar; in a bar, positions later than the last
    one and inside the bar (as long as the prompt's metre makes it); after a position a pitch or a velocity, after a
    velocity a pitch, after a pitch its duration, after a duration a higher pitch (or a velocity) at the same
    position, a later position, a new bar or `<end>` (after at least one note). At most as many new bars as
    `max_frames` quarter notes fill."""

    def __init__(self, tok: MusicTokenizer, vocab: int, ids: list[int], max_frames: int):
        self.bars, self.pos, self.pitch, self.here, self.count = 0, -1, None, 0, 0
        self.head, self.bar, self.quarters = [], STEPS, max_frames
        super().__init__(tok, vocab, ids, -(-max_frames // 4))

    def feed(self, t: int, replay: bool = False) -> None:
        tok = self.tok
        if not self.in_music and t == tok.music:
            self.bar = tok.bar_of_ids(self.head)
            self.max_frames = -(-4 * self.quarters // self.bar)      # bars
        elif not self.in_music:
            self.head.append(t)
        elif t == tok.bar:
            self.bars += 0 if replay else 1
            self.pos, self.pitch, self.here = -1, None, 0
        elif tok.is_position(t):
            self.pos, self.pitch, self.here = t - tok.pos0, None, 0
        elif tok.is_pitch(t):
            self.pitch = t
        elif tok.is_duration(t):
            self.here += 1
            self.count += 0 if replay else 1
        super().feed(t, replay)

    def allowed(self) -> torch.Tensor:
        tok = self.tok
        if not self.in_music:
            return super().allowed()
        allowed = torch.zeros(self.vocab, dtype=torch.bool)
        last, pitches = self.last, slice(tok.pitch0, tok.pitch0 + HIGH - LOW + 1)
        above = slice(self.pitch + 1 if self.pitch is not None else tok.pitch0, pitches.stop)
        if tok.is_position(last) or tok.is_velocity(last):
            allowed[above if tok.is_velocity(last) else pitches] = True
            if tok.is_position(last) and tok.velocities:
                allowed[tok.vel0:tok.vel0 + tok.velocities] = True
            return allowed
        if tok.is_pitch(last):
            allowed[tok.dur0:tok.dur0 + MAX_DURATION] = True
            return allowed
        if tok.is_duration(last) and self.here < MAX_NOTES and self.pitch is not None:
            allowed[above] = True
            if tok.velocities and above.start < above.stop:
                allowed[tok.vel0:tok.vel0 + tok.velocities] = True
        if last != tok.music:
            allowed[tok.pos0 + self.pos + 1:tok.pos0 + self.bar] = True
            if self.count > 0:
                allowed[tok.end] = True
        if self.bars < self.max_frames:
            allowed[tok.bar] = True
        if not allowed.any():
            allowed[tok.end] = True
        return allowed


@dataclass
class Score:
    """Pieces a model wrote: frames (lists of MIDI pitches) per piece, the prompt each was written from (as the
    model completed it), its token ids and token text, and the style (class index) asked of each (None: none)."""
    pieces: list[list[list[int]]]
    prompts: list[str]
    tokens: list[list[int]]
    text: list[str]
    labels: np.ndarray | None = None
    # each piece's notes (pitch, onset, duration in sixteenths) where it was written with real durations (events)
    notes: list | None = None

    def __len__(self) -> int:
        return len(self.pieces)


class MusicPipeline:
    """A trained causal language model on music: `sample` returns a `Score`; `evaluate` scores the test split per
    frame and compares drawn pieces' statistics with held-out ones."""

    def __init__(self, inner, styles: list[str]):
        if not isinstance(inner, BatchedDecoding) or not isinstance(inner.tokenizer, MusicTokenizer):
            raise TypeError("a music pipeline wraps a language model with batched decoding and a music tokenizer")
        self.inner, self.tokenizer = inner, inner.tokenizer
        self.config, self.model, self.assets = inner.config, inner.model, inner.assets
        self.classes = list(styles)
        self.num_classes = len(self.classes)
        self.batch_size = 16
        self.capabilities = frozenset({"sample", "prompt"})

    @property
    def conditional(self) -> bool:
        return self.num_classes > 0

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    @property
    def context(self) -> int:
        return int(self.config.model.block_size)

    def class_index(self, label) -> int:
        if isinstance(label, (int, np.integer)) or (isinstance(label, str) and label.isdigit()):
            k = int(label)
            if not 0 <= k < self.num_classes:
                raise UserError(f"--class {label}: this model has {self.num_classes} styles (0 to "
                                f"{self.num_classes - 1}): {', '.join(self.classes)}")
            return k
        wanted = " ".join(words_of(str(label)))
        if wanted in self.classes:
            return self.classes.index(wanted)
        raise UserError(f"--class {label}: not a style of this model; its styles: {', '.join(self.classes) or 'none'}")

    def labels_for(self, n: int, labels=None) -> torch.Tensor | None:
        if not self.conditional:
            return None
        if labels is None:
            return torch.arange(n) % self.num_classes
        if isinstance(labels, (int, str, np.integer)):
            return torch.full((n,), self.class_index(labels), dtype=torch.long)
        return torch.tensor([self.class_index(x if isinstance(x, str) else int(x)) for x in labels], dtype=torch.long)

    def interpolate(self, seed_a: int, seed_b: int, steps: int = 8, label=None):
        raise UserError(f"--interpolate: a {self.config.family} run on music has no latent space to walk; draw "
                        f"pieces with --seed")

    # ------------------------------------------------------------------------------------------------------------

    def prompt_ids(self, prompt: str) -> tuple[list[int], list[str]]:
        """`<bos>` and the prompt's words (a complete prompt's `<music>` is left to the model), with warnings: an
        unknown word, a prompt cut to the context."""
        tok, warnings = self.tokenizer, []
        words = words_of(prompt or "")
        unknown = [w for w in words if w not in tok.index]
        if unknown:
            warnings.append(f"prompt {prompt!r}: {', '.join(repr(w) for w in unknown[:3])} not among the words this "
                            f"model learnt (read as <unk>); its styles: {', '.join(self.classes) or 'none'}")
        ids = [tok.bos, *(tok.index.get(w, tok.unk) for w in words)]
        room = self.context // 2
        if len(ids) > room:
            warnings.append(f"prompt {prompt!r}: {len(ids)} tokens, cut to its first {room} (half the model's "
                            f"context of {self.context})")
            ids = ids[:room]
        return ids, warnings

    def primer_ids(self, primer, head: list[int]) -> tuple[list[int], list[str]]:
        """`<music>` and the frames (events: the bars) of `primer` (frames, or a .mid / MusicXML file's path or
        bytes) that fit after `head` in half the model's context (its last ones; a warning says when it was cut),
        with warnings."""
        tok, warnings = self.tokenizer, []
        if isinstance(primer, (str, Path)) and not Path(primer).is_file():
            raise UserError(f"primer {primer}: no such file; give a .mid or .musicxml file")
        if tok.tokenization == "frames":
            if isinstance(primer, (bytes, bytearray)):
                units, warnings = read_midi(bytes(primer), "primer")
            elif isinstance(primer, (str, Path)):
                units, warnings = read_file(Path(primer))
            else:
                units = [sorted({int(p) for p in f if LOW <= int(p) <= HIGH}) for f in primer]
            spell, unit = tok.frame_ids, "frames"
        else:
            notes, warnings = read_notes(primer, "primer") if isinstance(primer, (str, Path, bytes, bytearray)) \
                else (frames_to_notes([[int(p) for p in f if LOW <= int(p) <= HIGH] for f in primer]), [])
            bar = tok.bar_of_ids(head)
            units = [[] for _ in range(notes[-1][1] // bar + 1)] if notes else []
            for n in notes:
                units[n[1] // bar].append((n[0], n[1] % bar, *n[2:]))
            spell, unit = (lambda bars: tok.event_ids([(n[0], n[1] + k * bar, *n[2:]) for k, b in enumerate(bars)
                                                       for n in b], bar)), "bars"
        room = self.context // 2 - len(head) - 1
        kept = len(units)
        while kept and len(spell(units[len(units) - kept:])) > room:
            kept -= 1
        if kept < len(units):
            warnings.append(f"primer: {len(units)} {unit} ({len(spell(units))} tokens) are more than half "
                            f"the model's context of {self.context}; only its last {kept} {unit} are read")
        return [tok.music, *spell(units[len(units) - kept:])], warnings

    def sample(self, n: int | None = None, *, seed: int | None = None, seeds=None, labels=None,
               prompt: str | None = None, prompts=None, temperature: float | None = None, top_k: int | None = None,
               top_p: float | None = None, max_frames: int | None = None, guidance_scale=None, steps=None,
               primer=None, warn=None) -> Score:
        """n pieces, piece i from seeds[i] (or seed + i) and prompts[i] (or `prompt`, or the style of labels[i];
        by default every style in turn). `primer`: the first frames of every piece (frames, or a MIDI / MusicXML
        file's path or bytes), continued for up to `max_frames` new frames. `warn(line)`: where warnings go
        (default: stderr)."""
        for name, value in (("guidance_scale", guidance_scale), ("steps", steps)):
            if value is not None:
                raise UserError(f"{name}: a {self.config.family} run on music takes no {name}")
        if seeds is not None:
            seeds = [int(s) for s in seeds]
            n = len(seeds) if n is None else n
            if len(seeds) != n:
                raise UserError(f"seeds: {len(seeds)} seeds for {n} pieces")
        if n is None:
            n = len(list(prompts)) if prompts is not None else 1
        if n < 1:
            raise UserError(f"n: {n} must be at least 1")
        if seeds is None:
            base = seed if seed is not None else int(torch.seed() >> 2)
            seeds = [base + i for i in range(n)]
        if prompt is not None and prompts is not None:
            raise UserError("prompt and prompts: give one of them")
        asked = None
        if prompts is not None:
            texts = [str(p) for p in prompts]
            if len(texts) != n:
                raise UserError(f"prompts: {len(texts)} prompts for {n} pieces")
        elif prompt is not None:
            texts = [prompt] * n
        else:
            asked = self.labels_for(n, labels)
            texts = [self.classes[int(k)] for k in asked] if asked is not None else [""] * n
        frames = MAX_FRAMES if max_frames is None else int(max_frames)
        if frames < 1:
            raise UserError(f"max_frames: {frames} must be at least 1")
        params = SamplingParams(1.0 if temperature is None else float(temperature), top_k or 0,
                                1.0 if top_p is None else float(top_p))
        params.check()
        starts, lines = [], []
        for t in texts:
            ids, w = self.prompt_ids(t)
            if primer is not None:
                music, more = self.primer_ids(primer, ids)
                ids, w = ids + music, w + more
            starts.append(ids)
            lines += w
        for line in dict.fromkeys(lines):
            (warn or (lambda s: print(f"tetragen: {s}", file=sys.stderr)))(line)
        out = []
        for i in range(0, n, self.batch_size):
            out += self._draw(starts[i:i + self.batch_size], seeds[i:i + self.batch_size], params, frames)
        tok = self.tokenizer
        labels = None if asked is None else asked.numpy().astype(np.int64)
        if tok.tokenization == "events":
            decoded = [tok.decode_events(ids) for ids in out]
            return Score([notes_frames(n) for _, n in decoded], [p for p, _ in decoded], out,
                         [tok.decode(ids) for ids in out], labels, [n for _, n in decoded])
        decoded = [tok.decode_piece(ids) for ids in out]
        return Score([f for _, f in decoded], [p for p, _ in decoded], out, [tok.decode(ids) for ids in out], labels)

    @torch.no_grad()
    def _draw(self, starts: list[list[int]], seeds: list[int], params: SamplingParams, max_frames: int) -> list:
        tok = self.tokenizer
        decoder = self.inner.slot_decoder(self.batch_size)
        if decoder is None:
            raise UserError(f"a {self.config.family} run has no batched decoder to draw music with")
        gens = []
        for s in seeds:
            g = torch.Generator(device=decoder.device)
            g.manual_seed(s)
            gens.append(g)
        seqs = [list(ids) for ids in starts]
        grammar = FrameGrammar if tok.tokenization == "frames" else EventGrammar
        states = [grammar(tok, self.model.config.vocab_size, ids, max_frames) for ids in seqs]
        logits = {k: decoder.prefill(k, seqs[k]) for k in range(len(seqs))}
        while True:
            active = [k for k in range(len(seqs)) if not states[k].done]
            if not active:
                break
            rows = [logits[k].float().masked_fill(~states[k].allowed().to(logits[k].device), float("-inf"))
                    for k in active]
            picked = next_tokens(torch.cat(rows), [None] * len(active), [params] * len(active),
                                 [gens[k] for k in active])
            for k, t in zip(active, picked.tolist()):
                seqs[k].append(t)
                states[k].feed(t)
            live = {k: seqs[k] for k in active if not states[k].done}
            if live:
                logits = decoder.decode(live)
        return seqs

    # ------------------------------------------------------------------------------------------------------------

    def evaluate(self, data, *, n: int = 10000, seed: int = 0, iw_samples: int = 100) -> tuple[dict, list[str]]:
        """NLL of the test split per frame, token and note (each piece from its own start), and the statistics
        of up to STATS_PIECES drawn pieces (of up to MAX_FRAMES frames) against the test pieces, beside those of
        the training pieces."""
        m = data.score(self.model, self.device, split="test")
        test = [p.frames for p in data.split("test")]
        train = [p.frames for p in data.split("train")]
        count = max(1, min(n, STATS_PIECES))
        score = self.sample(count, seed=seed, max_frames=min(MAX_FRAMES, max(len(f) for f in test)),
                            warn=lambda s: None)
        made = score.pieces
        m.update(stats.compare(made, test, "sample_"))
        m.update(stats.compare(train, test, "train_"))
        m.update(stats.compare(test, test, "test_"))
        if score.labels is not None and self.num_classes > 1:
            m.update(style_scores(data.collection, made, [self.classes[k] for k in score.labels], self.device))
        frames = [f"test_nll_frame {m['test_nll_frame']:.4f} nats/frame"] if "test_nll_frame" in m else []
        lines = [f"{data.name}, test split: {int(m['test_pieces'])} pieces, {int(m['test_notes'])} notes, "
                 f"{int(m['test_tokens'])} tokens scored (each piece from its start)",
                 *frames,
                 f"test_nll_token {m['test_nll_token']:.4f} nats/token",
                 f"test_nll_note  {m['test_nll_note']:.4f} nats/note",
                 f"statistics against the test pieces ({count} drawn pieces, seed {seed}; training pieces as the "
                 f"reference):",
                 "                  drawn   train    test",
                 f"pitch-class TV    {m['sample_pc_distance']:.3f}   {m['train_pc_distance']:.3f}       -",
                 f"interval TV       {m['sample_interval_distance']:.3f}   {m['train_interval_distance']:.3f}       -",
                 f"notes per frame   {m['sample_notes_per_frame']:.2f}    {m['train_notes_per_frame']:.2f}    "
                 f"{m['test_notes_per_frame']:.2f}",
                 f"in-key share      {m['sample_in_key']:.3f}   {m['train_in_key']:.3f}   {m['test_in_key']:.3f}",
                 f"top voice (MIDI)  {m['sample_top_pitch']:.1f}    {m['train_top_pitch']:.1f}    "
                 f"{m['test_top_pitch']:.1f}",
                 f"bottom voice      {m['sample_bottom_pitch']:.1f}    {m['train_bottom_pitch']:.1f}    "
                 f"{m['test_bottom_pitch']:.1f}"]
        if "sample_style_acc" in m:
            lines.append(f"style accuracy    {m['sample_style_acc']:.3f}       -   {m['test_style_acc']:.3f}   (the "
                         f"share read as the style asked, or as their own, by the style classifier; it reads "
                         f"{m['style_classifier_window_acc']:.3f} of the test windows right)")
        return m, lines


def run_styles(run_dir: Path) -> list[str]:
    doc = read_json(Path(run_dir) / MUSIC_FILE, "the run folder is incomplete")
    styles = doc.get("styles")
    if not isinstance(styles, list) or not all(isinstance(s, str) for s in styles):
        raise UserError(f"{Path(run_dir) / MUSIC_FILE}: no 'styles' list; the run folder is incomplete")
    return styles


def adapt_causal(pipe: Any, run_dir: Path):
    """A causal language model's run on music draws scores; a run of a family without batched decoding keeps its
    own pipeline (harmonise.py `adapt` is the modality's)."""
    if not isinstance(pipe, BatchedDecoding) or not isinstance(_tokenizer_of(pipe), MusicTokenizer):
        return pipe
    return MusicPipeline(pipe, run_styles(run_dir))


def _tokenizer_of(pipe):
    from ...pipeline import GeneratesText
    return pipe.tokenizer if isinstance(pipe, GeneratesText) else None
