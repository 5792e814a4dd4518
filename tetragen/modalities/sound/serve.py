"""The sound modality's route: `POST /v1/audio/speech` in OpenAI's shape, audio bytes back.

`input` is the prompt: a run that reads text gets it whole; a class-conditional run says the class the input names
("seven", "say seven"; an input that names none of its classes is a 400 listing them). `voice` is required by
OpenAI's client and accepted; a run trained without voices ignores it (the response's `X-Tetragen-Warning` header
says so). `response_format` is `wav` (16-bit PCM at the model's rate, an exact header) or `pcm` (raw 16-bit
little-endian mono at 24 kHz, as OpenAI's `pcm` is); any other is a 400 naming those two. `speed` is accepted at
1.0 only: the models make clips at the speed they learnt. `seed` (a tetragen extension) makes the clip repeatable.

Clips of concurrent requests to one model are drawn together (`ModelWorker.rows`), one row per request with its
own seed, in forward passes of a fixed number of rows, so a seeded request gets the same sound whatever else is
drawn beside it.
"""
from __future__ import annotations

import secrets
import time
from typing import Literal, Optional

import numpy as np
import torch
from fastapi import Request, Response
from pydantic import BaseModel, ConfigDict, Field

from ...errors import UserError
from ...serve import schemas as S
from ...serve.app import APIError, await_rows, parse, user_error
from .audio import pcm_bytes, resample, wav_bytes

FORMATS = ("wav", "pcm")
PCM_RATE = 24000                     # OpenAI's pcm: 24 kHz, 16-bit, mono, little-endian


class SpeechRequest(BaseModel):
    """POST /v1/audio/speech."""
    model_config = ConfigDict(strict=True, extra="ignore")
    model: str = Field(min_length=1, max_length=256)
    input: str = Field(min_length=1, max_length=4096)
    voice: Optional[str] = Field(None, max_length=256)
    instructions: Optional[str] = Field(None, max_length=4096)   # accepted; no model here follows instructions
    response_format: str = Field("wav", max_length=32)           # checked below, so the 400 names what is served
    speed: float = Field(1.0, ge=0.25, le=4.0)                   # OpenAI's range
    stream_format: Optional[Literal["audio"]] = None
    seed: Optional[int] = Field(None, ge=0, le=S.MAX_SEED)


def add_routes(app) -> None:
    @app.post("/v1/audio/speech")
    async def speech(request: Request):
        started = time.monotonic()
        server = request.app.state.server
        body = await parse(request, SpeechRequest)
        pipe, worker = server.model(body.model, "prompt", "sample", kind="sound")
        if body.response_format not in FORMATS:
            raise APIError(400, f"response_format: {body.response_format!r} cannot be made here; use one of: "
                                f"{', '.join(FORMATS)}", param="response_format", code="unsupported_value")
        if body.speed != 1.0:
            raise APIError(400, f"speed: {body.speed:g}; model {body.model!r} makes clips at the speed it learnt, so "
                                f"only 1.0 is served", param="speed", code="unsupported_value")
        seed = body.seed if body.seed is not None else secrets.randbits(63)
        notes = []
        try:
            condition = pipe.condition_of(body.input)
        except UserError as e:
            raise APIError(400, str(e), param="input", code="invalid_value") from None
        if condition is None:
            notes.append(f"model {body.model!r} is unconditional: the input was ignored")
        try:
            clips, drawn = await await_rows(request, worker, [(seed, condition)], draw,
                                            started + server.limits.timeout_s)
        except UserError as e:
            raise user_error(e, {"prompt": "input"}) from None
        if body.voice:
            notes.append(f"model {body.model!r} was trained without voices: voice {body.voice!r} was ignored")
        wave = clips[0]
        if body.response_format == "wav":
            data, media = wav_bytes(wave, pipe.sample_rate), "audio/wav"
        else:
            data = pcm_bytes(resample(torch.from_numpy(wave), pipe.sample_rate, PCM_RATE).numpy())
            media = "audio/pcm"
        headers = {"X-Tetragen-Seed": str(seed)}
        if notes + drawn:
            headers["X-Tetragen-Warning"] = "; ".join(dict.fromkeys(notes + drawn))[:1000]
        return Response(content=data, media_type=media, headers=headers)


def draw(pipe, rows: list, block: int) -> tuple[list, list[str]]:
    """Rows (seed, condition) of one or more requests -> (one float32 wave per row, warnings)."""
    return [np.asarray(w) for w in pipe.sample_rows(rows, block).waves], []
