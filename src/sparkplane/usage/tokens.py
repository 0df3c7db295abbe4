"""Token counts from OpenAI-format answers, cheaply.

A plain answer carries `usage` (prompt_tokens, completion_tokens; embeddings
only prompt_tokens). A stream carries it only when the engine sends a usage
chunk (OpenAI's `stream_options.include_usage`, vLLM, llama.cpp): otherwise
each content-bearing event counts as one completion token and the prompt is
estimated from the request's size (~4 bytes a token), and the count is marked
estimated. Nothing here parses a whole answer: the usage object is found by a
byte search from its key, so a large embedding answer costs a scan, not a parse.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import orjson

BYTES_PER_TOKEN = 4
DEFAULT_COMPLETION_ESTIMATE = 256  # when a request sets no max_tokens

# A usage object, not `"usage": null` (sent on every chunk by some engines).
_USAGE = re.compile(rb'"usage"\s*:\s*\{')
_PROMPT = re.compile(rb'"prompt_tokens"\s*:\s*(\d+)')
_COMPLETION = re.compile(rb'"completion_tokens"\s*:\s*(\d+)')
# An event carrying generated text: chat `content`/`reasoning_content`, completion `text`.
_CONTENT = re.compile(rb'"(?:content|reasoning_content|text)"\s*:\s*"(?!")')
_EVENT_END = b"\n\n"
_MAX_CARRY = 1 << 20  # an event split over chunks is kept until it ends, up to this


@dataclass(frozen=True, slots=True)
class TokenCount:
    """Tokens in and out of one request; `estimated` when the engine did not say."""

    tokens_in: int
    tokens_out: int
    estimated: bool

    @property
    def total(self) -> int:
        """In and out together (what token limits and quotas count)."""
        return self.tokens_in + self.tokens_out


def estimate_prompt(request_bytes: int) -> int:
    """Prompt tokens guessed from a request body's size."""
    return max(1, request_bytes // BYTES_PER_TOKEN)


def admission_estimate(request_bytes: int, max_tokens: int | None) -> int:
    """The token estimate to admit a request with: prompt guess + the most it may generate."""
    completion = DEFAULT_COMPLETION_ESTIMATE if max_tokens is None else max_tokens
    return estimate_prompt(request_bytes) + completion


def _usage_in(data: bytes, start: int = 0, end: int | None = None) -> tuple[int, int] | None:
    """The last usage object's (prompt, completion) in data[start:end], if any."""
    stop = len(data) if end is None else end
    # From the end: the usage object closes an answer, so a big body is barely scanned.
    pos = data.rfind(b'"usage"', start, stop)
    found = None
    while pos >= 0 and found is None:
        found = _USAGE.match(data, pos, stop)
        pos = data.rfind(b'"usage"', start, pos)
    if found is None:
        return None
    tail = data.find(_EVENT_END, found.end(), stop)
    tail = stop if tail < 0 else tail
    prompt = _PROMPT.search(data, found.end(), tail)
    completion = _COMPLETION.search(data, found.end(), tail)
    if prompt is None and completion is None:
        return None
    return (
        int(prompt.group(1)) if prompt else 0,
        int(completion.group(1)) if completion else 0,
    )


def count_body(body: bytes, request_bytes: int) -> TokenCount:
    """Tokens of a non-streaming answer (chat, completion or embeddings)."""
    usage = _usage_in(body)
    if usage is not None:
        return TokenCount(usage[0], usage[1], estimated=False)
    # The engine did not say (rare): guess from the generated text's length.
    return TokenCount(estimate_prompt(request_bytes), _text_tokens(body), estimated=True)


def _text_tokens(body: bytes) -> int:
    try:
        doc = orjson.loads(body)
    except orjson.JSONDecodeError:
        return 0
    choices = doc.get("choices") if isinstance(doc, dict) else None
    chars = 0
    for choice in choices if isinstance(choices, list) else ():
        if not isinstance(choice, dict):
            continue
        message = choice.get("message")
        text = message.get("content") if isinstance(message, dict) else choice.get("text")
        if isinstance(text, str):
            chars += len(text.encode())
    return -(-chars // BYTES_PER_TOKEN)


class StreamTally:
    """Counts a stream's tokens as its chunks pass, doing little per chunk.

    Feed every chunk relayed to the client (raw SSE bytes, split anywhere);
    `result()` gives the engine's usage if any chunk carried it, else an
    estimate (one token per content-bearing event).
    """

    __slots__ = ("_carry", "_events", "_request_bytes", "_usage")

    def __init__(self, request_bytes: int) -> None:
        self._request_bytes = request_bytes
        self._events = 0
        self._usage: tuple[int, int] | None = None
        self._carry = b""

    def feed(self, chunk: bytes) -> None:
        """Take one chunk in."""
        end = chunk.rfind(_EVENT_END)
        if end < 0:
            if len(self._carry) < _MAX_CARRY:
                self._carry += chunk
            return
        if self._carry:
            data, stop = self._carry + chunk[:end], None
        else:
            data, stop = chunk, end
        self._carry = chunk[end + len(_EVENT_END) :]
        self._count(data, stop)

    def _count(self, data: bytes, stop: int | None) -> None:
        end = len(data) if stop is None else stop
        self._events += len(_CONTENT.findall(data, 0, end))
        if b'"usage"' in data:
            usage = _usage_in(data, 0, end)
            if usage is not None:
                self._usage = usage

    def result(self) -> TokenCount:
        """The stream's tokens so far (call at its end)."""
        if self._carry:
            self._count(self._carry, None)
            self._carry = b""
        if self._usage is not None:
            return TokenCount(self._usage[0], self._usage[1], estimated=False)
        return TokenCount(estimate_prompt(self._request_bytes), self._events, estimated=True)
