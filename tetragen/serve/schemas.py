"""Request bodies of `tetragen serve`, as pydantic models: types, defaults and the allowed range of every field.

The shapes follow OpenAI's API reference (https://platform.openai.com/docs/api-reference) for completions, chat
completions and image generation, plus tetragen's own sampling options (`top_k`, `min_p`, `repetition_penalty`,
the same as `tetragen generate`'s) and two routes of its own (fill-mask, classify). Types are strict (a string is
not a number, `true` is not 1); fields a client may send that tetragen has no use for (`user`, `logit_bias`, ...)
are ignored, and the ones whose meaning it cannot honour (`logprobs`, `suffix`, penalties other than
`repetition_penalty`, tools) are refused by name rather than silently dropped.

Limits that are the server's to choose (the most tokens, choices and images per request) are `Limits` in app.py and
are checked there with the same message.
"""
from __future__ import annotations

from typing import Annotated, Literal, Optional, Union

import annotated_types
from pydantic import BaseModel, ConfigDict, Field

MAX_SEED = (1 << 64) - 1   # torch.Generator.manual_seed takes 64-bit seeds
MAX_STOPS = 4              # as OpenAI
MAX_STOP_CHARS = 256
MAX_TEXT_CHARS = 100_000   # any one prompt, message or text; the context limit in tokens is checked per model
COMPLETION_MAX_TOKENS = 16  # OpenAI's default max_tokens of a completion

Text = Annotated[str, Field(max_length=MAX_TEXT_CHARS)]
Stop = Annotated[str, Field(min_length=1, max_length=MAX_STOP_CHARS)]


class _Body(BaseModel):
    model_config = ConfigDict(strict=True, extra="ignore")


class StreamOptions(_Body):
    include_usage: bool = False


class _Sampling(_Body):
    """What completions and chat completions share."""
    model: str = Field(min_length=1, max_length=256)
    max_tokens: Optional[int] = Field(None, ge=0)          # upper end: Limits.max_tokens
    temperature: float = Field(1.0, ge=0, le=2)            # 0: greedy
    top_p: float = Field(1.0, gt=0, le=1)
    top_k: int = Field(0, ge=0, le=1_000_000)              # 0: off
    min_p: float = Field(0.0, ge=0, lt=1)                  # 0: off
    repetition_penalty: float = Field(1.0, gt=0, le=10)    # 1: off
    stop: Union[Stop, Annotated[list[Stop], Field(max_length=MAX_STOPS)], None] = None
    seed: Optional[int] = Field(None, ge=0, le=MAX_SEED)
    n: int = Field(1, ge=1)                                # upper end: Limits.max_n
    stream: bool = False
    stream_options: Optional[StreamOptions] = None
    # OpenAI fields with no tetragen meaning: refused unless left at their defaults (see `unsupported`)
    logprobs: Union[int, bool, None] = None
    top_logprobs: Optional[int] = None
    frequency_penalty: Optional[float] = None
    presence_penalty: Optional[float] = None
    best_of: Optional[int] = None
    tools: Optional[list] = None
    suffix: Optional[str] = None

    def stops(self) -> list[str]:
        """`stop` as a list (at most MAX_STOPS non-empty strings)."""
        return [self.stop] if isinstance(self.stop, str) else list(self.stop or [])

    def unsupported(self) -> tuple[str, str] | None:
        """(field, message) for the first field set to something tetragen cannot do, else None."""
        if self.logprobs not in (None, False, 0) or self.top_logprobs:
            return "logprobs", "logprobs: not supported by tetragen serve; leave it out"
        for name in ("frequency_penalty", "presence_penalty"):
            if getattr(self, name):
                return name, (f"{name}: not supported by tetragen serve; use repetition_penalty (> 1 discourages "
                              f"repeats) instead")
        if self.best_of not in (None, 1):
            return "best_of", "best_of: not supported by tetragen serve; ask for n choices and pick one"
        if self.tools:
            return "tools", "tools: not supported by tetragen serve (its models are base language models)"
        if self.suffix:
            return "suffix", "suffix: not supported by tetragen serve (its models only continue text)"
        return None


class CompletionRequest(_Sampling):
    """POST /v1/completions."""
    prompt: Union[Text, list[Text]]                        # a list: at most Limits.max_prompts
    max_tokens: Optional[int] = Field(COMPLETION_MAX_TOKENS, ge=0)
    echo: bool = False

    def prompts(self) -> list[str]:
        return [self.prompt] if isinstance(self.prompt, str) else list(self.prompt)

    def max_new_tokens(self) -> int:
        """`max_tokens`; an explicit null means the default, as it does for OpenAI's completions."""
        return COMPLETION_MAX_TOKENS if self.max_tokens is None else self.max_tokens


class TextPart(_Body):
    type: Literal["text"]
    text: Text


class ChatMessage(_Body):
    role: Literal["system", "developer", "user", "assistant"]
    content: Union[Text, list[TextPart], None] = None
    name: Optional[str] = None

    def text(self) -> str:
        if isinstance(self.content, list):
            return "".join(part.text for part in self.content)
        return self.content or ""


class ChatRequest(_Sampling):
    """POST /v1/chat/completions."""
    messages: list[ChatMessage] = Field(min_length=1, max_length=1024)
    max_completion_tokens: Optional[int] = Field(None, ge=0)  # OpenAI's newer name for max_tokens


class _Steering(_Body):
    """Sampling settings of a model that chooses them at sampling time (a diffusion model's); their upper ends and
    the samplers are the model's own (its card's `sampling`), checked by its pipeline."""
    steps: Optional[int] = Field(None, ge=1)
    guidance_scale: Optional[float] = Field(None, ge=0)
    sampler: Optional[str] = Field(None, min_length=1, max_length=32)

    def steering(self) -> dict:
        """The settings the request gives."""
        given = {"steps": self.steps, "guidance_scale": self.guidance_scale, "sampler": self.sampler}
        return {k: v for k, v in given.items() if v is not None}


class ImageRequest(_Steering):
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


class ImageEditRequest(_Steering):
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


class FillMaskRequest(_Body):
    """POST /v1/fill-mask: candidates for each [MASK] of each text."""
    model: str = Field(min_length=1, max_length=256)
    text: Union[Text, list[Text]]                          # a list: at most Limits.max_prompts
    top_k: int = Field(5, ge=1, le=1000)

    def texts(self) -> list[str]:
        return [self.text] if isinstance(self.text, str) else list(self.text)


class ClassifyRequest(_Body):
    """POST /v1/classify: the probability of each label for each text."""
    model: str = Field(min_length=1, max_length=256)
    text: Union[Text, list[Text]]                          # a list: at most Limits.max_prompts

    def texts(self) -> list[str]:
        return [self.text] if isinstance(self.text, str) else list(self.text)


# ----------------------------------------------------------------------------------------------------------------
# chat template

CHAT_ROLES = {"system": "SYSTEM", "developer": "SYSTEM", "user": "USER", "assistant": "ASSISTANT"}
CHAT_STOP = "\n\n"


def render_chat(messages: list[ChatMessage]) -> str:
    """The plain template that turns chat messages into a prompt for a base (not instruction-tuned) model.

    Each message becomes its speaker's name in capitals, a colon, a newline, its text and a blank line, the way a
    play's script reads (tetragen's shipped corpora are plays), and the prompt ends with the assistant's name:

        SYSTEM:
        You are terse.

        USER:
        Hello

        ASSISTANT:
        <the model writes here>

    `developer` reads as SYSTEM. The reply ends at the first blank line (`CHAT_STOP`, the end of a speech), at one of
    the request's `stop` strings, or at `max_tokens`."""
    parts = [f"{CHAT_ROLES[m.role]}:\n{m.text()}\n\n" for m in messages]
    return "".join(parts) + "ASSISTANT:\n"


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
