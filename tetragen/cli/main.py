"""`tetragen VERB ...`: argument parsing and the one place user errors become one-line messages."""
from __future__ import annotations

import argparse
import sys

from ..errors import Interrupted, TrainingError, UserError
from ..registry import get_modality, list_modalities
from . import eval as eval_cmd
from . import (bench, classify, data, export, fill_mask, finetune, generate, ls, quickstart, reconstruct, sample,
               serve, tokenizer, train)

VERBS = [train, finetune, generate, sample, reconstruct, fill_mask, classify, eval_cmd, export, serve, ls, quickstart,
         bench, tokenizer, data]


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # argparse's own errors, also as one line with exit status 2
        self.exit(2, f"tetragen: error: {message} (see `{self.prog} --help`)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="tetragen", description="Train, evaluate and sample GANs, VAEs, transformers and hybrids.")
    sub = parser.add_subparsers(dest="verb", required=True, parser_class=_Parser)
    for verb in VERBS:
        verb.add_parser(sub)
    for kind in list_modalities():  # the verbs of one kind of content alone
        for verb in get_modality(kind).verbs:
            verb.add_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    # key=value overrides may come anywhere after the verb, between flags too
    args, extra = parser.parse_known_args(argv)
    if extra:
        if not hasattr(args, "overrides") or any(e.startswith("-") or "=" not in e for e in extra):
            parser.error(f"unrecognized arguments: {' '.join(extra)}")
        args.overrides = [*args.overrides, *extra]
    try:
        return args.run(args) or 0
    except UserError as e:
        print(f"tetragen: error: {_one_line(e)}", file=sys.stderr)
        return 2
    except TrainingError as e:
        print(f"tetragen: training stopped: {_one_line(e)}", file=sys.stderr)
        return 1
    except Interrupted as e:
        print(f"tetragen: {_one_line(e)}", file=sys.stderr)
        return 128 + e.signum
    except KeyboardInterrupt:
        print("tetragen: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return 0


def _one_line(e: Exception) -> str:
    """The message on a single line, whatever text (a file's, a library's) it quotes."""
    return " ".join(str(e).splitlines())
