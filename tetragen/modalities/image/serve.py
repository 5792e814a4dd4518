"""The image modality's routes, in OpenAI's shape, PNGs as b64_json:

- `POST /v1/images/generations` (JSON): images from a prompt, a class or nothing; `steps`, `guidance_scale` and
  `sampler` for a model that chooses them at sampling time (the `steer` capability: its card's `sampling` gives
  their ranges), a 400 naming the field for any other.
- `POST /v1/images/edits` (multipart form, as OpenAI's): the file `image` redrawn `n` times, at `strength` (0: as
  given, 1: drawn anew), or only where the file `mask` says (white, or transparent with an alpha channel), with the
  prompt or class as for generations and the same sampling fields; for a model that edits (the `edit` capability).
  An image of another size or mode is converted, with a note in `warnings`; a mask is refused unless it is binary
  and of the model's size.

- `POST /v1/images/interpolations` (JSON, tetragen's own): `n` images (both ends included) walking from the starting
  noise of `seed` to that of `seed2` (default seed + 1), in the prompt's class or prompt, with the same sampling
  fields; for a model that samples from noise and has a latent space to walk (a token prior has none: a 400).

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
import email.parser
import email.policy
import io
import secrets
import time

import numpy as np
from fastapi import Request
from pydantic import ValidationError

from ...errors import UserError
from ...pipeline import require
from ...serve import schemas as S
from . import schemas as I
from ...serve.app import (APIError, BodyTooLarge, _validation_error, at_most, await_job, await_rows,
                          by_settings, drain, parse, setting_error, steering, user_error, with_warnings)

EDITED = (*S.SETTINGS, "strength", "mask", "image")  # the fields an edit's UserError may name


def add_routes(app) -> None:
    @app.post("/v1/images/generations")
    async def images(request: Request):
        started = time.monotonic()
        server = request.app.state.server
        body = await parse(request, I.ImageRequest)
        pipe, worker = server.model(body.model, "prompt", "sample", kind="image")
        at_most("n", body.n, server.limits.max_images, 1)
        refuse_url(body)
        settings = steering(pipe, body, body.model)
        seed = body.seed if body.seed is not None else secrets.randbits(63)
        seeds = [(seed + i) % (S.MAX_SEED + 1) for i in range(body.n)]
        try:
            conditions, used, notes = conditions_of(pipe, body.prompt, body.n, body.model)
            rows = [(s, c, settings) for s, c in zip(seeds, conditions)]
            images, drawn_notes = await await_rows(request, worker, rows, draw, started + server.limits.timeout_s)
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

    @app.post("/v1/images/edits")
    async def edits(request: Request):
        started = time.monotonic()
        server = request.app.state.server
        fields, files = await read_form(request)
        body = form_body(fields)
        pipe, worker = server.model(body.model, "edit", kind="image")
        require(pipe, "edit", f"model {body.model!r}")  # the Edits Protocol
        at_most("n", body.n, server.limits.max_images, 1)
        refuse_url(body)
        if "image" not in files:
            raise APIError(422, "image: required; send the image to edit as the file field `image`", param="image",
                           code="missing_field")
        settings = dict(steering(pipe, body, body.model))
        try:
            image, notes = with_warnings(lambda: pipe.read_edit_input(files["image"], name="image"))
        except UserError as e:
            raise APIError(400, str(e), param="image", code="invalid_value") from None
        mask = None
        if "mask" in files:
            try:
                mask = pipe.read_edit_input(files["mask"], mask=True, name="mask")
            except UserError as e:
                raise APIError(400, str(e), param="mask", code="invalid_value") from None
        h, w = image.shape[1:3]
        if body.size not in (None, "auto", f"{w}x{h}"):
            raise APIError(400, f"size: {body.size!r}; model {body.model!r} makes {w}x{h} images only (or leave "
                                f"size out)", param="size", code="invalid_value")
        seed = body.seed if body.seed is not None else secrets.randbits(63)
        seeds = [(seed + i) % (S.MAX_SEED + 1) for i in range(body.n)]
        try:
            conditions, used, more = conditions_of(pipe, body.prompt, body.n, body.model)
            condition = ({"prompt": conditions} if "prompt" in pipe.capabilities
                         else {"labels": conditions} if conditions[0] is not None else {})
            block = server.limits.max_rows

            def job():
                pipe.batch_size = block  # as every draw of this server: an image depends on its own row alone
                return with_warnings(lambda: pipe.edit(np.repeat(image, body.n, axis=0), strength=body.strength,
                                                       mask=mask, seeds=seeds, **condition, **settings))
            images, drawn = await await_job(request, worker, job, started + server.limits.timeout_s)
        except UserError as e:
            raise setting_error(e, EDITED) from None
        notes = list(dict.fromkeys(notes + more + drawn))
        out = {"created": int(time.time()), "model": body.model, "output_format": "png",
               "data": [{"b64_json": png_b64(im), "revised_prompt": u} for im, u in zip(images, used)]}
        if notes:
            out["warnings"] = notes
        return out

    @app.post("/v1/images/interpolations")
    async def interpolations(request: Request):
        started = time.monotonic()
        server = request.app.state.server
        body = await parse(request, I.ImageInterpolationRequest)
        pipe, worker = server.model(body.model, "sample", kind="image")
        require(pipe, "sample", f"model {body.model!r}")  # the Samples Protocol: interpolate
        at_most("n", body.n, server.limits.max_images, 2)
        refuse_url(body)
        settings = steering(pipe, body, body.model)
        seed = body.seed if body.seed is not None else secrets.randbits(62)
        seed2 = body.seed2 if body.seed2 is not None else (seed + 1) % (S.MAX_SEED + 1)
        try:
            images, used, notes = await await_job(request, worker, lambda: walk(pipe, body, settings, seed, seed2),
                                                  started + server.limits.timeout_s)
        except UserError as e:
            raise setting_error(e, EDITED) from None
        out = {"created": int(time.time()), "model": body.model, "output_format": "png", "seed": seed,
               "seed2": seed2, "data": [{"b64_json": png_b64(im), "revised_prompt": used} for im in images]}
        if notes:
            out["warnings"] = list(dict.fromkeys(notes))
        return out


def refuse_url(body) -> None:
    """Images come back as b64_json only: a request for URLs is a 400."""
    if body.response_format == "url":
        raise APIError(400, "response_format: 'url' is not served (tetragen keeps no image store); use 'b64_json'",
                       param="response_format", code="unsupported")


def walk(pipe, body, settings: tuple, seed: int, seed2: int) -> tuple[np.ndarray, str, list[str]]:
    """The images of an interpolation request, how the response names their condition, and notes."""
    conditions, used, notes = conditions_of(pipe, body.prompt, 1, body.model)
    if "prompt" in pipe.capabilities:  # a steered model walks in the prompt; one that is not refuses in one line
        condition = {"prompt": conditions[0]} if conditions[0].strip() else {}
    else:
        condition = {"label": conditions[0]}
    # the walk's length is `steps` of interpolate; the sampler's steps are its `sample_steps` (Steered)
    sampling = {("sample_steps" if k == "steps" else k): v for k, v in settings}
    images, said = with_warnings(lambda: pipe.interpolate(seed, seed2, body.n, **condition, **sampling))
    return images, used[0], notes + said


def conditions_of(pipe, prompt: str, n: int, model: str) -> tuple[list, list[str], list[str]]:
    """What each of n images is drawn from (a prompted model's prompt, a class index, or None), how the response
    names it, and notes."""
    if "prompt" in pipe.capabilities:
        return [prompt] * n, [prompt] * n, []
    require(pipe, "sample", f"model {model!r}")  # the Samples Protocol: classes, conditional
    if not pipe.conditional:
        notes = [f"model {model!r} is an unconditional {pipe.config.family} model: the prompt was ignored"] \
            if prompt else []
        return [None] * n, [""] * n, notes
    if prompt.strip():
        k = pipe.class_index(prompt.strip())
        return [k] * n, [pipe.classes[k]] * n, []
    conditions = [int(k) for k in pipe.labels_for(n)]  # every class in turn
    return conditions, [pipe.classes[k] for k in conditions], []


def draw(pipe, rows: list, block: int) -> tuple[list, list[str]]:
    """Rows (seed, condition, settings) of one or more requests -> (one uint8 (H, W, C) image per row, warnings),
    in forward passes of exactly `block` rows. The condition is a prompt (a prompted model), a class index, or None;
    settings are the sampling settings as (name, value) pairs (rows of each settings are drawn together)."""
    pipe.batch_size = block  # the fixed shape of every forward pass: a row's image depends on that row alone
    out, notes = [None] * len(rows), []
    for settings, index in by_settings(rows).items():
        seeds = [rows[i][0] for i in index]
        conditions = [rows[i][1] for i in index]
        if "prompt" in pipe.capabilities:
            images, said = with_warnings(lambda: pipe.sample(seeds=seeds, prompts=conditions, **dict(settings)))
        elif pipe.conditional:
            images, said = pipe.sample(seeds=seeds, labels=conditions, **dict(settings)), []
        else:
            images, said = pipe.sample(seeds=seeds, **dict(settings)), []
        notes += said
        for i, image in zip(index, images):
            out[i] = image
    return out, list(dict.fromkeys(notes))


async def read_form(request: Request) -> tuple[dict[str, str], dict[str, bytes]]:
    """A multipart/form-data body -> (its text fields, its files by field name); 413 over the server's cap, 400 not
    a form. `image[]` (OpenAI's name for several images) reads as `image`; of a field given twice, the first."""
    kind = request.headers.get("content-type", "")
    if not kind.lower().startswith("multipart/form-data"):
        raise APIError(400, f"the request body must be multipart/form-data (the image as a file field), not "
                            f"{kind.split(';')[0] or 'untyped'}", code="invalid_body")
    try:
        raw = await request.body()
    except BodyTooLarge as e:
        if e.more:
            await drain(request.scope["tetragen.receive"])
        raise APIError(413, f"the request body is over {request.app.state.server.limits.max_body_bytes} bytes; "
                            f"send a smaller image", code="body_too_large") from None
    message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(
        b"Content-Type: " + kind.encode("latin-1") + b"\r\n\r\n" + raw)
    if not message.is_multipart():
        raise APIError(400, "the request body is not a multipart form (no parts, or no boundary)",
                       code="invalid_body")
    fields, files = {}, {}
    for part in message.iter_parts():
        name = part.get_param("name", header="content-disposition")
        if not name:
            continue
        name = name[:-2] if name.endswith("[]") else name
        payload = part.get_payload(decode=True) or b""
        if part.get_filename() is not None:
            files.setdefault(name, payload)
        else:
            try:
                fields.setdefault(name, payload.decode("utf-8"))
            except UnicodeDecodeError:
                raise APIError(400, f"{name}: not UTF-8 text", param=name, code="invalid_value") from None
    return fields, files


def form_body(fields: dict[str, str]) -> I.ImageEditRequest:
    """The form's text fields as the edit request (numbers read from their text); 400/422 as for JSON bodies."""
    try:
        return I.ImageEditRequest.model_validate(fields, strict=False)
    except ValidationError as e:
        raise _validation_error(I.ImageEditRequest, e) from None


def png_b64(image: np.ndarray) -> str:
    """uint8 (H, W, C) -> base64 of a PNG (grey when C is 1)."""
    from PIL import Image
    buf = io.BytesIO()
    Image.fromarray(image[..., 0] if image.shape[-1] == 1 else image).save(buf, format="PNG")
    return base64.b64encode(buf.getvalue()).decode("ascii")
