"""`tetragen data shakespeare-tasks --out DIR`: corpora and a labelled task built offline from the complete works.

Writes DIR/pretrain.txt (the complete works minus the held-out works), DIR/heldout/NAME.txt (each held-out work) and
DIR/genre.csv (passages labelled comedy/history/tragedy/poetry, split by work: the test rows come from the held-out
works only), with DIR/tasks.json describing them. See tetragen/data/shakespeare_tasks.py.
"""
from __future__ import annotations

import sys

from ..data import shakespeare_tasks as tasks


def add_parser(sub) -> None:
    p = sub.add_parser("data", help="build datasets: corpora and labelled tasks from the complete works")
    actions = p.add_subparsers(dest="action", required=True)
    t = actions.add_parser("shakespeare-tasks",
                           help="pre-training corpus, held-out works and a genre classification task")
    t.add_argument("--out", required=True, help="folder to write into")
    t.add_argument("--hold-out", default=",".join(tasks.HELD_OUT),
                   help="comma-separated works kept out of pretrain.txt and the genre training rows, at least one "
                        f"of each genre (default: {','.join(tasks.HELD_OUT)})")
    t.add_argument("--passage-chars", type=int, default=tasks.PASSAGE_CHARS,
                   help=f"characters per genre passage (default {tasks.PASSAGE_CHARS})")
    t.add_argument("--train-per-genre", type=int, default=tasks.TRAIN_PER_GENRE,
                   help=f"training passages per genre at most (default {tasks.TRAIN_PER_GENRE}; 0: all)")
    t.add_argument("--test-per-genre", type=int, default=tasks.TEST_PER_GENRE,
                   help=f"test passages per genre at most (default {tasks.TEST_PER_GENRE}; 0: all)")
    t.add_argument("--seed", type=int, default=0, help="seed of the passage draw (default 0)")
    t.add_argument("--overwrite", action="store_true", help="replace the files of an earlier run in --out")
    t.set_defaults(run=run)


def run(args) -> int:
    held_out = tuple(w.strip() for w in args.hold_out.split(",") if w.strip())
    m = tasks.write_tasks(args.out, held_out=held_out, passage_chars=args.passage_chars,
                          train_per_genre=args.train_per_genre, test_per_genre=args.test_per_genre, seed=args.seed,
                          overwrite=args.overwrite)
    rows = "; ".join(f"{split} " + ", ".join(f"{n} {g}" for g, n in counts.items())
                     for split, counts in m["genre_rows"].items())
    print(f"wrote {args.out}: pretrain.txt ({m['pretrain_chars']:,} characters), heldout/ ({', '.join(held_out)}), "
          f"genre.csv ({rows}), tasks.json", file=sys.stderr)
    return 0
