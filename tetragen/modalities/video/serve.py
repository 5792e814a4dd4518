"""The video modality's route: `POST /v1/videos/generations`, clips as base64 GIFs.

The request has the shape of OpenAI's image generations (`model`, `prompt`, `n`, `seed`); each clip comes back as
`b64_json` holding a looping GIF, with the clip's frame count and rate. A class-conditional model reads the prompt as
a thing and its motion ("a sneaker moving left"; a prompt that names no motion it knows is a 400 listing them, from
a model that reads the prompt's text as well); an empty prompt cycles through the classes; an unconditional model
ignores the prompt and says so in `warnings`. `response_format` is `gif` (the default) or `mp4` (H.264, where
imageio-ffmpeg is installed); any other is a 400 naming what is served. `steps`, `guidance_scale` and `sampler` are
for a model that chooses them at sampling time (a diffusion model's; its card's `sampling` gives their ranges), a
400 naming the field for any other.

Clips of concurrent requests to one model are drawn together (`ModelWorker.rows`), one row per clip with its own
seed, in forward passes of a fixed number of rows (rows of the same sampling settings together), so a seeded request
gets the same clip whatever else is drawn.
"""
from __future__ import annotations

import base64
import secrets
import time
from typing import Optional

import numpy as np
from fastapi import Request
from pydantic import Field

from ...errors import UserError
from ...serve import schemas as S
from ...serve.app import APIError, at_most, await_rows, by_settings, parse, steering, user_error
from .folder import MOVIES_HOW, movie_codec
from .show import gif_bytes, mp4_bytes

ENCODERS = {"gif": gif_bytes, "mp4": mp4_bytes}


class VideoRequest(S.Steering):
    """POST /v1/videos/generations."""
    model: str = Field(min_length=1, max_length=256)
    prompt: str = Field("", max_length=4096)
    n: int = Field(1, ge=1)                                   # upper end: Limits.max_images
    response_format: str = Field("gif", max_length=32)        # checked below, so the 400 names what is served
    seed: Optional[int] = Field(None, ge=0, le=S.MAX_SEED)


def add_routes(app) -> None:
    @app.post("/v1/videos/generations")
    async def videos(request: Request):
        started = time.monotonic()
        server = request.app.state.server
        body = await parse(request, VideoRequest)
        pipe, worker = server.model(body.model, "prompt", "sample", kind="video")
        at_most("n", body.n, server.limits.max_images, 1)
        made = [f for f in ENCODERS if f != "mp4" or movie_codec()]
        if body.response_format not in made:
            why = f" (no MP4 encoder here: {MOVIES_HOW})" if body.response_format == "mp4" else ""
            raise APIError(400, f"response_format: {body.response_format!r} cannot be made here{why}; use one of: "
                                f"{', '.join(made)}", param="response_format", code="unsupported_value")
        encode = ENCODERS[body.response_format]
        settings = steering(pipe, body, body.model)
        seed = body.seed if body.seed is not None else secrets.randbits(63)
        seeds = [(seed + i) % (S.MAX_SEED + 1) for i in range(body.n)]
        notes = []
        try:
            if pipe.conditional and not pipe.reads_text and not body.prompt.strip():  # every class in turn
                conditions = [int(k) for k in pipe.labels_for(body.n)]
            else:
                conditions = [pipe.condition_of(body.prompt)] * body.n
                if conditions[0] is None and body.prompt:
                    notes.append(f"model {body.model!r} is unconditional: the prompt was ignored")
        except UserError as e:
            raise APIError(400, str(e), param="prompt", code="invalid_value") from None
        try:
            rows = [(s, c, settings) for s, c in zip(seeds, conditions)]
            clips, drawn = await await_rows(request, worker, rows, draw, started + server.limits.timeout_s)
        except UserError as e:
            raise user_error(e, {"prompt": "prompt", "n": "n"}) from None
        used = [pipe.classes[c] if isinstance(c, int) else (c or "") for c in conditions]
        out = {"created": int(time.time()), "model": body.model, "output_format": body.response_format,
               "frames": pipe.frames, "fps": pipe.fps, "seed": seed,
               "data": [{"b64_json": base64.b64encode(encode(f[None], pipe.fps)).decode("ascii"),
                         "revised_prompt": u} for f, u in zip(clips, used)]}
        if notes + drawn:
            out["warnings"] = list(dict.fromkeys(notes + drawn))
        return out


def draw(pipe, rows: list, block: int) -> tuple[list, list[str]]:
    """Rows (seed, condition, sampling settings as (name, value) pairs) of one or more requests -> (one uint8 clip
    (T, H, W) per row, warnings); the rows of each settings are drawn together."""
    out = [None] * len(rows)
    for settings, index in by_settings(rows).items():
        clips = pipe.sample_rows([rows[i][:2] for i in index], block, **dict(settings))
        for i, frames in zip(index, clips.frames):
            out[i] = np.asarray(frames)
    return out, []
