"""What every request body of `tetragen serve` shares, as pydantic: strict types (a string is not a number, `true`
is not 1; fields a client may send that tetragen has no use for are ignored), the seed range, the longest text, and
the allowed range of a field as an error message says it. Each kind of content declares its own request bodies
beside its routes (tetragen/modalities/<kind>/schemas.py or serve.py).

Limits that are the server's to choose (the most tokens, choices and images per request) are `Limits` in app.py and
are checked there with the same message.
"""
from __future__ import annotations

from typing import Annotated, Optional

import annotated_types
from pydantic import BaseModel, ConfigDict, Field

MAX_SEED = (1 << 64) - 1   # torch.Generator.manual_seed takes 64-bit seeds
MAX_TEXT_CHARS = 100_000   # any one prompt, message or text; the context limit in tokens is checked per model

Text = Annotated[str, Field(max_length=MAX_TEXT_CHARS)]


class Body(BaseModel):
    """A request body: strict types, unknown fields ignored."""
    model_config = ConfigDict(strict=True, extra="ignore")


SETTINGS = ("steps", "guidance_scale", "sampler")  # a Steered model's sampling settings, as request fields


class Steering(Body):
    """Sampling settings of a model that chooses them at sampling time (a diffusion model's); their upper ends and
    the samplers are the model's own (its card's `sampling`), checked by its pipeline."""
    steps: Optional[int] = Field(None, ge=1)
    guidance_scale: Optional[float] = Field(None, ge=0)
    sampler: Optional[str] = Field(None, min_length=1, max_length=32)

    def steering(self) -> dict:
        """The settings the request gives."""
        return {k: getattr(self, k) for k in SETTINGS if getattr(self, k) is not None}


# ----------------------------------------------------------------------------------------------------------------
# ranges, for error messages

def allowed_range(model: type[BaseModel], field: str) -> str | None:
    """The allowed range of `model.field` as text ("0 to 2", "> 0 and <= 1", ">= 1"), from its Field constraints;
    None when it has none."""
    info = model.model_fields.get(field)
    if info is None:
        return None
    lo = hi = None
    for m in info.metadata:
        if isinstance(m, annotated_types.Ge):
            lo = (">=", m.ge)
        elif isinstance(m, annotated_types.Gt):
            lo = (">", m.gt)
        elif isinstance(m, annotated_types.Le):
            hi = ("<=", m.le)
        elif isinstance(m, annotated_types.Lt):
            hi = ("<", m.lt)
    return render_range(lo, hi)


def render_range(lo: tuple[str, float] | None, hi: tuple[str, float] | None) -> str | None:
    fmt = lambda v: f"{v:g}" if isinstance(v, float) else (  # noqa: E731
        "2**64-1" if v == MAX_SEED else str(v))
    if lo and hi:
        if lo[0] == ">=" and hi[0] == "<=":
            return f"{fmt(lo[1])} to {fmt(hi[1])}"
        return f"{lo[0]} {fmt(lo[1])} and {hi[0]} {fmt(hi[1])}"
    if lo or hi:
        op, v = lo or hi
        return f"{op} {fmt(v)}"
    return None
