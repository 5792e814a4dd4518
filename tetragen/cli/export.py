"""`tetragen export RUN_DIR --format NAME --out DIR`: a trained run in another library's format.

The formats are the family's `exporters` (gpt: `hf`, a Hugging Face GPT-2 folder that loads offline with
`transformers.GPT2LMHeadModel.from_pretrained(DIR)` and `AutoTokenizer.from_pretrained(DIR)`). The folder is written
under a temporary name and moved into place; `--overwrite` replaces only an earlier export.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

from .. import api
from ..errors import UserError
from ..files import is_run_dir, write_folder_atomically
from ..registry import get_family, list_families

MARKER = ".tetragen-export.json"  # written into every export folder: what --overwrite may replace


def add_parser(sub) -> None:
    p = sub.add_parser("export", help="write a trained run in another library's format (hf: GPT-2 for transformers)")
    p.add_argument("run_dir", help="the trained run to export")
    p.add_argument("--format", default="hf", help="the format, one of the family's exporters (default hf)")
    p.add_argument("--out", required=True, help="folder to write")
    p.add_argument("--overwrite", action="store_true", help="replace an earlier export in --out")
    p.set_defaults(run=run)


def run(args) -> int:
    out = Path(args.out)
    pipe = api.load(args.run_dir)
    family = get_family(pipe.config.family)
    write = family.exporters.get(args.format)
    if write is None:
        have = ", ".join(sorted(family.exporters)) or "none"
        takers = [f"{n} ({', '.join(sorted(get_family(n).exporters))})" for n in list_families()
                  if args.format in get_family(n).exporters]
        raise UserError(f"--format {args.format}: a {family.name} run exports to: {have}"
                        + (f"; {args.format} is for {', '.join(takers)} runs" if takers else ""))
    check_out(out, overwrite=args.overwrite)

    def write_all(folder: Path) -> None:
        write(pipe, folder)
        (folder / MARKER).write_text(json.dumps({"run": str(Path(args.run_dir).resolve()),
                                                 "format": args.format}), encoding="utf-8")
    if out.is_dir() and not any(out.iterdir()):
        out.rmdir()
    write_folder_atomically(out, write_all)
    print(f"done: {out}  ({args.format} export of {args.run_dir})", file=sys.stderr)
    return 0


def check_out(out: Path, *, overwrite: bool) -> None:
    """An export goes into a new or empty folder, or with --overwrite over an earlier export; never over anything
    else."""
    if not out.exists():
        return
    if not out.is_dir():
        raise UserError(f"--out {out}: exists and is not a folder; choose another --out")
    if not any(out.iterdir()):
        return
    if not overwrite:
        raise UserError(f"--out {out}: already exists and is not empty; pass --overwrite to replace an earlier "
                        f"export, or choose another folder")
    if is_run_dir(out):
        raise UserError(f"--out {out}: holds a tetragen run; --overwrite replaces export folders only")
    if not (out / MARKER).is_file():
        raise UserError(f"--out {out}: was not written by `tetragen export`, so --overwrite leaves it alone; choose "
                        f"another folder")


