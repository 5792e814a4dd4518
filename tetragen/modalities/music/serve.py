"""The music modality's routes: `POST /v1/music/generations` (a causal LM's scores from a prompt) and
`POST /v1/music/harmonisations` (a masked LM's voices under a melody), scores as JSON.

Request: `model`, `prompt` (a style and key, "bach chorale in g minor"; empty: the model chooses), `n` pieces (1 to
8), `seed` (piece i from seed + i), `max_frames` (quarter-note frames of each piece at most), `temperature`,
`top_k`, `top_p`, `audio` (render each piece to WAV with fluidsynth; where it is missing the pieces come without
and a warning says why), `primer_midi` (a .mid file in base64: every piece starts with its frames and continues
them; a primer longer than half the context keeps its last frames, with a warning). Response: `{"model", "seed",
"data": [{"prompt", "frames", "tokens", "midi", "wav"}], "warnings"}` with `midi` and `wav` base64 (standard
alphabet). Bad requests are 4xx JSON errors in OpenAI's shape.

A harmonisation takes `melody` (one MIDI pitch per quarter-note frame, null for a rest), `prompt`, `voices` under
it (1 to 5), `seed`, `temperature` and `audio`, and answers in the same shape.

Rows of concurrent generation requests are drawn together (`ModelWorker.rows`), one row per piece with its own
seed, so a seeded piece is the same whatever else is drawn beside it.
"""
from __future__ import annotations

import base64
import binascii
import secrets
import time
from typing import Optional

from fastapi import Request
from pydantic import BaseModel, ConfigDict, Field

from ...errors import UserError
from ...serve import schemas as S
from ...serve.app import APIError, await_job, await_rows, parse, user_error
from .midi import midi_bytes, midi_bytes_notes
from .tokens import metre_word, words_of
from .pipeline import MAX_FRAMES
from .show import render_wav

MAX_PIECES = 8
MAX_REQUEST_FRAMES = 512
MAX_PRIMER_B64 = 1 << 20            # characters of a base64 primer MIDI (768 KiB of MIDI)


class MusicRequest(BaseModel):
    """POST /v1/music/generations."""
    model_config = ConfigDict(strict=True, extra="forbid")
    model: str = Field(min_length=1, max_length=256)
    prompt: str = Field("", max_length=1000)
    n: int = Field(1, ge=1, le=MAX_PIECES)
    seed: Optional[int] = Field(None, ge=0, le=S.MAX_SEED - MAX_PIECES)
    max_frames: int = Field(MAX_FRAMES, ge=1, le=MAX_REQUEST_FRAMES)
    temperature: float = Field(1.0, ge=0.0, le=5.0)
    top_k: int = Field(0, ge=0, le=1000)
    top_p: float = Field(1.0, gt=0.0, le=1.0)
    audio: bool = True
    primer_midi: Optional[str] = Field(None, max_length=MAX_PRIMER_B64)   # base64 .mid: the pieces' first frames


class HarmoniseRequest(BaseModel):
    """POST /v1/music/harmonisations."""
    model_config = ConfigDict(strict=True, extra="forbid")
    model: str = Field(min_length=1, max_length=256)
    melody: list[Optional[int]] = Field(min_length=1, max_length=MAX_REQUEST_FRAMES)
    prompt: str = Field("", max_length=1000)
    voices: int = Field(3, ge=1, le=5)
    seed: Optional[int] = Field(None, ge=0, le=S.MAX_SEED)
    temperature: float = Field(1.0, ge=0.0, le=5.0)
    audio: bool = True


def _piece(frames, prompt: str, text: str, audio: bool, warnings: list[str], notes=None) -> dict:
    midi = midi_bytes_notes([notes], metres=[metre_word(words_of(prompt))]) if notes is not None \
        else midi_bytes([frames])
    item = {"prompt": prompt, "frames": frames, "tokens": text, "midi": base64.b64encode(midi).decode(), "wav": None}
    if audio:
        try:
            item["wav"] = base64.b64encode(render_wav(midi)).decode()
        except UserError as e:
            warnings.append(str(e))
    return item


def add_routes(app) -> None:
    @app.post("/v1/music/harmonisations")
    async def harmonisations(request: Request):
        from .harmonise import MusicMaskedLM
        started = time.monotonic()
        server = request.app.state.server
        body = await parse(request, HarmoniseRequest)
        pipe, worker = server.model(body.model, "fill_mask", kind="music")
        if not isinstance(pipe, MusicMaskedLM):
            raise APIError(400, f"model {body.model!r} does not harmonise (a masked LM trained on music does)",
                           param="model", code="model_not_supported")
        seed = body.seed if body.seed is not None else secrets.randbits(62)
        try:
            score = await await_job(request, worker, lambda: pipe.harmonise(
                body.melody, prompt=body.prompt, voices=body.voices, seed=seed, temperature=body.temperature),
                started + server.limits.timeout_s)
        except UserError as e:
            raise user_error(e) from None
        warnings: list[str] = []
        data = [_piece(score.pieces[0], score.prompts[0], score.text[0], body.audio, warnings,
                       None if score.notes is None else score.notes[0])]
        return {"object": "music.harmonisation", "model": body.model, "seed": seed, "data": data,
                "warnings": list(dict.fromkeys(warnings))}

    @app.post("/v1/music/generations")
    async def generations(request: Request):
        started = time.monotonic()
        server = request.app.state.server
        body = await parse(request, MusicRequest)
        pipe, worker = server.model(body.model, "prompt", kind="music")
        seed = body.seed if body.seed is not None else secrets.randbits(62)
        primer = None
        if body.primer_midi is not None:
            try:
                primer = base64.b64decode(body.primer_midi, validate=True)
            except (binascii.Error, ValueError):
                raise APIError(400, "primer_midi: not base64; send a .mid file's bytes in base64",
                               param="primer_midi", code="invalid_value") from None
        settings = (body.prompt, body.max_frames, body.temperature, body.top_k, body.top_p, primer)
        rows = [(seed + i, settings) for i in range(body.n)]
        try:
            pieces, drawn = await await_rows(request, worker, rows, draw, started + server.limits.timeout_s)
        except UserError as e:
            raise user_error(e, {"primer": "primer_midi"}) from None
        warnings = list(drawn)
        data = [_piece(frames, prompt, text, body.audio, warnings, notes) for frames, prompt, text, notes in pieces]
        return {"object": "music.generation", "model": body.model, "seed": seed, "data": data,
                "warnings": list(dict.fromkeys(warnings))}


def draw(pipe, rows: list, block: int) -> tuple[list, list[str]]:
    """Rows (seed, (prompt, max_frames, temperature, top_k, top_p, primer)) of one or more requests -> (one (frames,
    prompt as completed, token text, notes or None) per row, warnings), the rows of each setting drawn in slots of
    `block` rows."""
    pipe.batch_size = block
    out: list = [None] * len(rows)
    warnings: list[str] = []
    groups: dict = {}
    for i, (seed, settings) in enumerate(rows):
        groups.setdefault(settings, []).append(i)
    for (prompt, max_frames, temperature, top_k, top_p, primer), idx in groups.items():
        score = pipe.sample(seeds=[rows[i][0] for i in idx], prompt=prompt, max_frames=max_frames,
                            temperature=temperature, top_k=top_k, top_p=top_p, primer=primer, warn=warnings.append)
        for j, i in enumerate(idx):
            out[i] = (score.pieces[j], score.prompts[j], score.text[j],
                      None if score.notes is None else score.notes[j])
    return out, warnings
