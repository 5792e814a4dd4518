"""Request bodies of the image routes, as pydantic models: OpenAI's image generations and edits (shapes from
https://platform.openai.com/docs/api-reference/images) and tetragen's interpolations, with the sampling settings of
a model that chooses them at sampling time. What every request body shares (strict types, the seed range) is
tetragen/serve/schemas.py's.
"""
from __future__ import annotations

from typing import Literal, Optional

from pydantic import Field

from ...serve.schemas import MAX_SEED, Body, Steering, Text


class ImageRequest(Steering):
    """POST /v1/images/generations."""
    model: str = Field(min_length=1, max_length=256)
    prompt: Text = ""
    n: int = Field(1, ge=1)                                # upper end: Limits.max_images
    response_format: Optional[Literal["b64_json", "url"]] = None  # only b64_json is served
    size: Optional[str] = Field(None, max_length=32)        # None, "auto" or the model's own "WxH"
    output_format: Optional[Literal["png"]] = None
    seed: Optional[int] = Field(None, ge=0, le=MAX_SEED)
    quality: Optional[str] = None                          # accepted and ignored, as the model has one quality
    style: Optional[str] = None


class ImageEditRequest(Steering):
    """POST /v1/images/edits: the form fields of a multipart body (its files, `image` and `mask`, apart)."""
    model: str = Field(min_length=1, max_length=256)
    prompt: Text = ""
    n: int = Field(1, ge=1)                                # upper end: Limits.max_images
    response_format: Optional[Literal["b64_json", "url"]] = None  # only b64_json is served
    size: Optional[str] = Field(None, max_length=32)        # None, "auto" or the model's own "WxH"
    output_format: Optional[Literal["png"]] = None
    seed: Optional[int] = Field(None, ge=0, le=MAX_SEED)
    strength: Optional[float] = Field(None, ge=0, le=1)    # None: the model's default (1 with a mask)
    quality: Optional[str] = None
    background: Optional[str] = None
    input_fidelity: Optional[str] = None


class ImageInterpolationRequest(Steering):
    """POST /v1/images/interpolations (tetragen's own, in the shape of generations): `n` images walking from the
    starting noise of `seed` to that of `seed2`, in one class or prompt."""
    model: str = Field(min_length=1, max_length=256)
    prompt: Text = ""
    n: int = Field(8, ge=2)                                # the walk's images, both ends included; upper end:
    seed: Optional[int] = Field(None, ge=0, le=MAX_SEED)   # Limits.max_images
    seed2: Optional[int] = Field(None, ge=0, le=MAX_SEED)  # default: seed + 1
    response_format: Optional[Literal["b64_json", "url"]] = None  # only b64_json is served
