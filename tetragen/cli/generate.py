"""`tetragen generate RUN_DIR --prompt TEXT --max-new-tokens N [sampling options]`: text streamed to stdout."""
from __future__ import annotations

import sys

from .. import api, threads
from ..pipeline import require
from .options import add_device


def add_parser(sub) -> None:
    p = sub.add_parser("generate", help="write text from a prompt with a trained language model")
    p.add_argument("run_dir")
    p.add_argument("--prompt", default="", help="text to continue (default: a newline)")
    p.add_argument("--max-new-tokens", type=int, default=500)
    p.add_argument("--temperature", type=float, default=0.8, help="0: greedy")
    p.add_argument("--top-k", type=int, default=0, help="keep the k most likely tokens (0: off)")
    p.add_argument("--top-p", type=float, default=1.0, help="nucleus sampling mass (1: off)")
    p.add_argument("--min-p", type=float, default=0.0, help="drop tokens below min_p * p_max (0: off)")
    p.add_argument("--repetition-penalty", type=float, default=1.0, help="> 1 discourages repeats (1: off)")
    p.add_argument("--stop", default=None, help="stop when this text is produced (it is not printed)")
    p.add_argument("--seed", type=int, default=None, help="same seed, same text")
    p.add_argument("--no-cache", action="store_true", help="recompute the whole context every token")
    p.add_argument("--no-echo", action="store_true", help="do not print the prompt before the continuation")
    p.add_argument("--threads", type=int, default=None,
                   help="torch threads (default: $OMP_NUM_THREADS, else the cores that are idle, see "
                        "tetragen/threads.py)")
    add_device(p)
    p.set_defaults(run=run)


def run(args) -> int:
    if args.seed is not None and not -(1 << 63) <= args.seed < (1 << 64):
        from ..errors import UserError
        raise UserError(f"--seed: {args.seed} is out of range; use an integer from 0 to 2**64-1")
    if args.threads is not None and args.threads < 1:
        from ..errors import UserError
        raise UserError(f"--threads: {args.threads} must be at least 1")
    gen = api.load(args.run_dir, device=args.device)
    require(gen, "generate", args.run_dir)
    threads.apply(args.threads)
    unknown = gen.tokenizer.count_unknown(args.prompt)
    if unknown:
        print(f"tetragen: warning: {unknown} distinct character(s) of the prompt are not in the model's "
              f"vocabulary and are read as unknown", file=sys.stderr)
    stream = gen.stream(args.prompt, args.max_new_tokens, temperature=args.temperature, top_k=args.top_k,
                        top_p=args.top_p, min_p=args.min_p, repetition_penalty=args.repetition_penalty,
                        stop=args.stop, seed=args.seed, use_cache=not args.no_cache)
    first = next(stream, None)  # surfaces bad options before anything is printed
    if not args.no_echo:
        sys.stdout.write(args.prompt)
    for piece in ([first] if first is not None else []):
        sys.stdout.write(piece)
    sys.stdout.flush()
    for piece in stream:
        sys.stdout.write(piece)
        sys.stdout.flush()
    sys.stdout.write("\n")
    return 0
