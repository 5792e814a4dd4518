"""Video: short clips (16 grey frames of 32x32 or 64x64) made from a prompt ("a sneaker moving left") by any family
that learns grids.

Its datasets are `moving-fashion-mnist` and `moving-fashion-mnist-64` (moving.py: Fashion-MNIST garments gliding in
one of eight directions or bouncing off the walls, made here from a seed; test clips from the test garments),
`moving-fashion-mnist-pairs` (two garments moving apart or together) and `moving-fashion-mnist-mixed` (both kinds).
A clip is learnt as one grid with a channel per frame (data.py), so every grid family trains on clips unchanged. The
evaluator reads clips the same way and tells the garment and its motion: the evaluation reports class accuracy and,
apart, the garment and motion accuracies, with references that keep the garments and break the motion (frozen,
shuffled) or keep neither (each frame from another clip), and a temporal drift figure (how much a garment changes
from frame to frame). Files: .gif (every clip side by side, looping), .mp4 (the same, H.264, where imageio-ffmpeg is
installed), a folder (one .gif per clip), .png (each clip's frames in a row), .npz (frames, fps, labels). Route:
`/v1/videos/generations`.
"""
from pathlib import Path

from ...registry import GridForm, Modality, register_modality
from .data import claims, fit_video_shape, read_run_video
from .moving import DATASETS
from .pipeline import adapt
from .show import (card, commands, example, html, show, write_folder_output, write_gif_output, write_mp4_output,
                   write_npz_output, write_png_output)


def add_routes(app) -> None:
    from .serve import add_routes  # the server's own imports (FastAPI) only when a server starts
    add_routes(app)


register_modality(Modality(
    name="video",
    description="video: short grey clips out (16 frames), a thing and its motion from a prompt",
    headline=("fid",),
    columns={"FD (video)": ("fid", "{:.2f}"), "KID": ("kid", "{:.4f}"), "class acc": ("class_acc", "{:.3f}"),
             "garment acc": ("garment_acc", "{:.3f}"), "motion acc": ("motion_acc", "{:.3f}"),
             "frame FID": ("frame_fid", "{:.2f}"), "frame garment acc": ("frame_garment_acc", "{:.3f}"),
             "drift": ("drift", "{:.2f}")},
    note="Fréchet distance (FD) and KID in tetragen's video evaluator, a CNN over each clip's stacked frames (lower "
         "is better; the frozen-frame, shuffled-frame and mixed-clip references are under each family); drift: grey "
         "levels a centred frame changes from the previous one (the test clips' own is under each family)",
    datasets=lambda: list(DATASETS),
    example=example,
    writers={".gif": write_gif_output, ".mp4": write_mp4_output, "/": write_folder_output, ".png": write_png_output,
             ".npz": write_npz_output},
    show=show,
    html=html,
    commands=commands,
    routes={"prompt": ("/v1/videos/generations",), "sample": ("/v1/videos/generations",)},
    add_routes=add_routes,
    card=card,
    playground=str(Path(__file__).with_name("playground.js")),
    data_help="video=moving-fashion-mnist",
    grids=GridForm(claims=claims, read=read_run_video, adapt=adapt, shape=fit_video_shape),
))
