"""Request shapes of the OpenAI-compatible API. They validate what sparkplane
must understand and let every other field through to the engine untouched."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

ModelName = Annotated[str, Field(min_length=1, max_length=256)]
Probability = Annotated[float, Field(ge=0, le=2)]
StopSequences = str | Annotated[list[str], Field(max_length=16)] | None


class _Open(BaseModel):
    # Engines add their own parameters (top_k, min_p, grammar...): pass them on.
    model_config = ConfigDict(extra="allow")


class ChatMessage(_Open):
    """One message of a conversation."""

    role: Literal["system", "developer", "user", "assistant", "tool", "function"]
    content: str | list[dict[str, Any]] | None = None


class StreamOptions(_Open):
    """OpenAI's stream options."""

    include_usage: bool | None = None


class _Sampling(_Open):
    model: ModelName
    stream: bool = False
    stream_options: StreamOptions | None = None
    max_tokens: Annotated[int, Field(ge=1)] | None = None
    temperature: Probability | None = None
    top_p: Annotated[float, Field(ge=0, le=1)] | None = None
    n: Annotated[int, Field(ge=1, le=128)] | None = None
    stop: StopSequences = None
    seed: int | None = None
    presence_penalty: Annotated[float, Field(ge=-2, le=2)] | None = None
    frequency_penalty: Annotated[float, Field(ge=-2, le=2)] | None = None
    user: str | None = None


class ChatCompletionRequest(_Sampling):
    """`POST /v1/chat/completions`."""

    messages: Annotated[list[ChatMessage], Field(min_length=1)]
    max_completion_tokens: Annotated[int, Field(ge=1)] | None = None


class CompletionRequest(_Sampling):
    """`POST /v1/completions`."""

    prompt: str | list[str] | list[int] | list[list[int]]
    echo: bool | None = None
    suffix: str | None = None


class EmbeddingRequest(_Open):
    """`POST /v1/embeddings`."""

    model: ModelName
    input: str | Annotated[list[str], Field(min_length=1)] | list[int] | list[list[int]]
    encoding_format: Literal["float", "base64"] | None = None
    dimensions: Annotated[int, Field(ge=1)] | None = None
    user: str | None = None
