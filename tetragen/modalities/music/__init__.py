"""Music: scores written from a prompt ("bach chorale in g minor") by any family that learns token sequences.

Its datasets are `jsb-chorales` (the benchmark's standard split, scored per quarter-note frame), the sets read from
music21's corpus (corpus.py: `bach-chorales`, `german-folk-songs`, `irish-tunes`, `palestrina`, and the four styles
together as `music21-styles`), any JSON file of the JSB shape and a user's folder of .mid / .musicxml files (class
sub-folders are styles). A run on several styles is also scored by a style classifier (styles.py). Models learn a
piece as tokens (tokens.py: per frame its pitches and an end-of-frame token), so a causal model's NLL per frame is
the piano roll's. Files: .mid, .wav (fluidsynth), .png (piano roll), .json (frames), a folder (one .mid per piece).
Routes: `POST /v1/music/generations` (causal LMs: a piece from a prompt, or continuing a primer) and `POST
/v1/music/harmonisations` (masked LMs: voices under a melody); the CLI verb `tetragen harmonise` does what the
second does.
"""
from pathlib import Path

from ...registry import Modality, TokenForm, register_modality
from . import cli
from .data import claims, named_datasets, read_run_music
from .harmonise import adapt
from .show import WRITERS, card, commands, example, html, show
from .tokens import read_tokenizer

ROUTE = "/v1/music/generations"
HARMONISE = "/v1/music/harmonisations"


def add_routes(app) -> None:
    from .serve import add_routes  # the server's own imports (FastAPI) only when a server starts
    add_routes(app)


register_modality(Modality(
    name="music",
    description="music: a folder of .mid/.musicxml (class sub-folders) or a JSB-shaped .json in, scores out",
    headline=("test_nll_frame", "val_nll_frame", "test_nll_note", "val_nll_note"),
    columns={"NLL/frame (test)": ("test_nll_frame", "{:.3f}"), "NLL/note": ("test_nll_note", "{:.3f}"),
             "pitch-class TV": ("sample_pc_distance", "{:.3f}"), "in key": ("sample_in_key", "{:.3f}"),
             "style acc": ("sample_style_acc", "{:.3f}")},
    note="negative log-likelihood of the test pieces in nats per quarter-note frame, each piece scored from its "
         "start (lower is better; on jsb-chorales it compares with the published JSB Chorales table); "
         "pitch-class TV: total variation between drawn and test pieces' pitch-class shares; style acc: the share "
         "of drawn pieces a style classifier hears in the style asked (runs on several styles)",
    datasets=named_datasets,
    example=example,
    writers=WRITERS,
    show=show,
    html=html,
    commands=commands,
    # a causal language model's run on music draws scores (prompt, sample: its family's own capability is to
    # generate); a masked one's harmonises melodies (its family's own capability: fill_mask)
    routes={"prompt": (ROUTE,), "sample": (ROUTE,), "generate": (ROUTE,), "fill_mask": (HARMONISE,)},
    add_routes=add_routes,
    card=card,
    verbs=(cli,),
    playground=str(Path(__file__).with_name("playground.js")),
    data_help="music=scores/ (a folder of .mid/.musicxml) or chorales.json",
    tokens=TokenForm(claims=claims, read=read_run_music, tokenizer=read_tokenizer, adapt=adapt),
))
