"""`tetragen harmonise RUN_DIR --melody "67 67 69 71 - 72" | --melody FILE [--prompt TEXT] [--voices V] [--seed S]
[--temperature T] --out FILE`: the voices a masked LM trained on music writes under a melody (harmonise.py), as
.mid, .wav (rendered by fluidsynth), .png (piano roll) or .json (frames)."""
from __future__ import annotations

import re
import sys
from pathlib import Path

from ... import api
from ...cli.options import add_device
from ...errors import UserError
from ...sample.images import check_output
from .harmonise import MusicMaskedLM
from .show import WRITERS

REST = ("-", "r", "rest")
_PITCHES = re.compile(r"^[\s,]*(?:(?:-?\d+|-|r|rest)[\s,]+)*(?:-?\d+|-|r|rest)[\s,]*$", re.IGNORECASE)


def add_parser(sub) -> None:
    p = sub.add_parser("harmonise", help="music: write the voices under a melody with a masked LM trained on music")
    p.add_argument("run_dir")
    p.add_argument("--melody", required=True,
                   help='one MIDI pitch per quarter-note frame, "-" for a rest (e.g. "67 67 69 71 - 72"), or a '
                        '.mid / .musicxml file (its highest note in each frame)')
    p.add_argument("--prompt", default="", help='style and key, e.g. "bach chorale in g major"')
    p.add_argument("--voices", type=int, default=3, help="voices under each melody note, 1 to 5 (default 3)")
    p.add_argument("--seed", type=int, default=0, help="same seed, same voices (default 0)")
    p.add_argument("--temperature", type=float, default=1.0, help="0: the likeliest notes (default 1)")
    p.add_argument("--out", required=True, help="output file: .mid, .wav, .png (piano roll) or .json (frames)")
    p.add_argument("--overwrite", action="store_true", help="replace --out if it exists")
    add_device(p)
    p.set_defaults(run=run)


def melody_arg(text: str) -> list[int | None] | str:
    """--melody: pitches (a rest is "-") when it reads as such, else a file's path."""
    if not _PITCHES.match(text):
        return text
    return [None if t.lower() in REST else int(t) for t in text.replace(",", " ").split()]


def run(args) -> int:
    if not 0 <= args.seed < (1 << 63):
        raise UserError(f"--seed: {args.seed} is out of range; use an integer from 0 to 2**63-1")
    out = check_output(args.out, overwrite=args.overwrite, suffixes=tuple(s for s in WRITERS if s != "/"))
    melody = melody_arg(args.melody)
    pipe = api.load(args.run_dir, device=args.device)
    if not isinstance(pipe, MusicMaskedLM):
        raise UserError(f"{args.run_dir}: a {pipe.config.family} run does not harmonise; a masked LM (bert) trained "
                        f"on music does")
    score = pipe.harmonise(melody, prompt=args.prompt, voices=args.voices, seed=args.seed,
                           temperature=args.temperature)
    WRITERS[out.suffix.lower()](Path(out), score)
    print(f"wrote {len(score.pieces[0])} frames, {args.voices} voices under the melody, to {out}", file=sys.stderr)
    return 0
