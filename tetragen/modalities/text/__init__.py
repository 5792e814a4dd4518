"""Text: what language models make and what prompt-to-content models read.

Its datasets are text corpora (tetragen/data/text.py), its headline is bits per character on the validation split,
its report block is the generated text (or a masked text's candidates), and its routes are OpenAI's completions and
chat (`generate`), with fill-mask and classify beside them.
"""
from pathlib import Path

from ...registry import Modality, register_modality
from .show import commands, datasets, example, html, show, write_txt


def add_routes(app) -> None:
    from .serve import add_routes  # the server's own imports (FastAPI) only when a server starts
    add_routes(app)


register_modality(Modality(
    name="text",
    description="text: a corpus in, text out (language models, masked LMs, classifiers)",
    headline=("val_bpc", "val_loss"),
    columns={"bits/char": ("val_bpc", "{:.4f}"), "val loss": ("val_loss", "{:.4f}"),
             "masked acc": ("val_accuracy", "{:.3f}")},
    note="bits per character on the validation split (lower is better)",
    datasets=datasets,
    example=example,
    writers={".txt": write_txt},
    show=show,
    html=html,
    commands=commands,
    routes={"generate": ("/v1/completions", "/v1/chat/completions"), "fill_mask": ("/v1/fill-mask",),
            "classify": ("/v1/classify",)},
    add_routes=add_routes,
    playground=str(Path(__file__).with_name("playground.js")),
    data_help="text=corpus.txt",
))
