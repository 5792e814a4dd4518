"""Images: what GANs, VAEs, tokenizers and prompt-to-image priors make.

Its datasets are Fashion-MNIST and a user's folder of images (tetragen/data/images.py), its evaluator is the
shipped feature network (tetragen/eval/image.py: FID, KID, class accuracy, reference rows), its headline is FID
(reconstruction MSE for a tokenizer), its files are PNG grids and .npz arrays, its report block is a sample grid,
and its routes are OpenAI's `/v1/images/generations` and `/v1/images/edits`.
"""
from pathlib import Path

from ...data.images import claims, read_run_images
from ...registry import GridForm, Modality, register_modality
from .show import card, commands, datasets, example, html, show, write_npz_output, write_png_output


def add_routes(app) -> None:
    from .serve import add_routes  # the server's own imports (FastAPI) only when a server starts
    add_routes(app)


register_modality(Modality(
    name="image",
    description="images: a folder of images in (class sub-folders, captions), images out",
    headline=("fid", "recon_mse"),
    columns={"FID": ("fid", "{:.2f}"), "KID": ("kid", "{:.4f}"), "class/prompt acc": ("class_acc", "{:.3f}"),
             "NLL bound (nats/img)": ("neg_elbo", "{:.1f}"), "recon MSE": ("recon_mse", "{:.5f}"),
             "codebook use": ("codebook_usage", "{:.3f}")},
    note="FID/KID in tetragen's own image evaluator (lower is better; its scale references are under each family)",
    datasets=datasets,
    example=example,
    writers={".png": write_png_output, ".npz": write_npz_output},
    show=show,
    html=html,
    commands=commands,
    # interpolations: listed on the cards of the models that steer their sampling (diffusion); every model that
    # samples from noise answers it, a token prior (no latent space) with a 400
    routes={"prompt": ("/v1/images/generations",), "sample": ("/v1/images/generations",),
            "steer": ("/v1/images/interpolations",), "edit": ("/v1/images/edits",)},
    add_routes=add_routes,
    card=card,
    playground=str(Path(__file__).with_name("playground.js")),
    data_help="image=path/to/folder",
    grids=GridForm(claims=claims, read=read_run_images),
))
