"""Request bodies of the text routes, as pydantic models: OpenAI's completions and chat completions (shapes from
https://platform.openai.com/docs/api-reference) with tetragen's own sampling options (`top_k`, `min_p`,
`repetition_penalty`, the same as `tetragen generate`'s), and tetragen's fill-mask and classify. Fields a client may
send that tetragen has no use for (`user`, `logit_bias`, ...) are ignored, and the ones whose meaning it cannot
honour (`logprobs`, `suffix`, penalties other than `repetition_penalty`, tools) are refused by name rather than
silently dropped. What every request body shares (strict types, the seed range) is tetragen/serve/schemas.py's.
"""
from __future__ import annotations

from typing import Annotated, Literal, Optional, Union

from pydantic import Field

from ...serve.schemas import MAX_SEED, Body, Text

MAX_STOPS = 4              # as OpenAI
MAX_STOP_CHARS = 256
COMPLETION_MAX_TOKENS = 16  # OpenAI's default max_tokens of a completion

Stop = Annotated[str, Field(min_length=1, max_length=MAX_STOP_CHARS)]


class StreamOptions(Body):
    include_usage: bool = False


class _Sampling(Body):
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


class TextPart(Body):
    type: Literal["text"]
    text: Text


class ChatMessage(Body):
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


class FillMaskRequest(Body):
    """POST /v1/fill-mask: candidates for each [MASK] of each text."""
    model: str = Field(min_length=1, max_length=256)
    text: Union[Text, list[Text]]                          # a list: at most Limits.max_prompts
    top_k: int = Field(5, ge=1, le=1000)

    def texts(self) -> list[str]:
        return [self.text] if isinstance(self.text, str) else list(self.text)


class ClassifyRequest(Body):
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
