"""The image modality's route: `POST /v1/images/generations` in OpenAI's shape, PNGs as b64_json.

A model that draws from text gets the prompt; a class-conditional one reads the prompt as a class name
(case-insensitive; an empty prompt cycles through the classes); an unconditional one ignores it and says so in the
response's `warnings`. Image `i` of a request with `seed` s is drawn with seed s + i (without a seed, from a fresh
random one).

The images of concurrent requests to one model are drawn together (`ModelWorker.rows`): each image is a row with its
own seed and condition, in forward passes of a fixed number of rows, so a seeded request gets the same images
whatever else is drawn beside it. A warning raised while drawing a merged batch (a prompt cut to the model's text
context) goes to every request of that batch.
"""
from __future__ import annotations

import base64
import io
import secrets
import time

import numpy as np
from fastapi import Request

from ...errors import UserError
from ...pipeline import require
from ...serve import schemas as S
from ...serve.app import APIError, at_most, await_rows, parse, user_error, with_warnings


def add_routes(app) -> None:
    @app.post("/v1/images/generations")
    async def images(request: Request):
        started = time.monotonic()
        server = request.app.state.server
        body = await parse(request, S.ImageRequest)
        pipe, worker = server.model(body.model, "prompt", "sample", kind="image")
        at_most("n", body.n, server.limits.max_images, 1)
        if body.response_format == "url":
            raise APIError(400, "response_format: 'url' is not served (tetragen keeps no image store); use "
                                "'b64_json'", param="response_format", code="unsupported")
        seed = body.seed if body.seed is not None else secrets.randbits(63)
        seeds = [(seed + i) % (S.MAX_SEED + 1) for i in range(body.n)]
        notes = []
        try:
            if "prompt" in pipe.capabilities:
                conditions, used = [body.prompt] * body.n, [body.prompt] * body.n
            else:
                require(pipe, "sample", f"model {body.model!r}")  # the Samples Protocol: classes, conditional
                if not pipe.conditional:
                    conditions, used = [None] * body.n, [""] * body.n
                    if body.prompt:
                        notes.append(f"model {body.model!r} is an unconditional {pipe.config.family} model: the "
                                     f"prompt was ignored")
                elif body.prompt.strip():
                    k = pipe.class_index(body.prompt.strip())
                    conditions, used = [k] * body.n, [pipe.classes[k]] * body.n
                else:  # every class in turn
                    conditions = [int(k) for k in pipe.labels_for(body.n)]
                    used = [pipe.classes[k] for k in conditions]
            images, drawn_notes = await await_rows(request, worker, list(zip(seeds, conditions)), draw,
                                                   started + server.limits.timeout_s)
        except UserError as e:
            raise user_error(e, {"class": "prompt", "prompt": "prompt", "n": "n"}) from None
        notes += drawn_notes
        images = np.stack(images)
        h, w = images.shape[1:3]
        if body.size not in (None, "auto", f"{w}x{h}"):
            raise APIError(400, f"size: {body.size!r}; model {body.model!r} draws {w}x{h} images only (or leave "
                                f"size out)", param="size", code="invalid_value")
        out = {"created": int(time.time()), "model": body.model, "output_format": "png",
               "data": [{"b64_json": png_b64(im), "revised_prompt": u} for im, u in zip(images, used)]}
        if notes:
            out["warnings"] = notes
        return out


def draw(pipe, rows: list, block: int) -> tuple[list, list[str]]:
    """Rows (seed, condition) of one or more requests -> (one uint8 (H, W, C) image per row, warnings), in forward
    passes of exactly `block` rows. The condition is a prompt (a prompted model), a class index, or None."""
    pipe.batch_size = block  # the fixed shape of every forward pass: a row's image depends on that row alone
    seeds = [seed for seed, _ in rows]
    conditions = [c for _, c in rows]
    if "prompt" in pipe.capabilities:
        images, notes = with_warnings(lambda: pipe.sample(seeds=seeds, prompts=conditions))
    elif pipe.conditional:
        images, notes = pipe.sample(seeds=seeds, labels=conditions), []
    else:
        images, notes = pipe.sample(seeds=seeds), []
    return list(images), list(dict.fromkeys(notes))


def png_b64(image: np.ndarray) -> str:
    """uint8 (H, W, C) -> base64 of a PNG (grey when C is 1)."""
    from PIL import Image
    buf = io.BytesIO()
    Image.fromarray(image[..., 0] if image.shape[-1] == 1 else image).save(buf, format="PNG")
    return base64.b64encode(buf.getvalue()).decode("ascii")
