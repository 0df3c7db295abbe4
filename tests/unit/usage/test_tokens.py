"""Token counts from OpenAI-format answers as engines really send them."""

from __future__ import annotations

import orjson
from hypothesis import given
from hypothesis import strategies as st

from sparkplane.usage.tokens import (
    DEFAULT_COMPLETION_ESTIMATE,
    StreamTally,
    TokenCount,
    admission_estimate,
    count_body,
    estimate_prompt,
)

CHAT = orjson.dumps(
    {
        "id": "chatcmpl-B9MBs8CjcvOU2jLn4n570S5qMJKcT",
        "object": "chat.completion",
        "created": 1741569952,
        "model": "gpt-4.1-2025-04-14",
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": "Hello! How can I help?"},
                "logprobs": None,
                "finish_reason": "stop",
            }
        ],
        "usage": {
            "prompt_tokens": 19,
            "completion_tokens": 10,
            "total_tokens": 29,
            "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
            "completion_tokens_details": {"reasoning_tokens": 0, "accepted_prediction_tokens": 0},
        },
        "service_tier": "default",
    }
)
EMBEDDINGS = orjson.dumps(
    {
        "object": "list",
        "data": [
            {"object": "embedding", "index": i, "embedding": [0.0023064255] * 384}
            for i in range(20)
        ],
        "model": "text-embedding-3-small",
        "usage": {"prompt_tokens": 64, "total_tokens": 64},
    }
)


def sse(*events: dict[str, object], done: bool = True) -> bytes:
    body = b"".join(b"data: " + orjson.dumps(e) + b"\n\n" for e in events)
    return body + (b"data: [DONE]\n\n" if done else b"")


def chunk(
    delta: dict[str, object], finish: str | None = None, **extra: object
) -> dict[str, object]:
    return {
        "id": "chatcmpl-123",
        "object": "chat.completion.chunk",
        "created": 1694268190,
        "model": "m",
        "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}],
        **extra,
    }


WORDS = ["Hel", "lo", "!", " How", " can", " I", " help", "?"]
PLAIN_STREAM = sse(
    chunk({"role": "assistant", "content": ""}),
    *(chunk({"content": w}) for w in WORDS),
    chunk({}, "stop"),
)
# stream_options.include_usage: usage null on every chunk, then a usage-only chunk.
USAGE_STREAM = sse(
    chunk({"role": "assistant", "content": ""}, usage=None),
    *(chunk({"content": w}, usage=None) for w in WORDS),
    chunk({}, "stop", usage=None),
    {
        "id": "chatcmpl-123",
        "object": "chat.completion.chunk",
        "created": 1694268190,
        "model": "m",
        "choices": [],
        "usage": {"prompt_tokens": 12, "completion_tokens": 8, "total_tokens": 20},
    },
)


def tally(stream: bytes, parts: list[int] | None = None, request_bytes: int = 400) -> TokenCount:
    t = StreamTally(request_bytes)
    cuts = sorted(set(parts or []))
    start = 0
    for cut in [*cuts, len(stream)]:
        if cut > start:
            t.feed(stream[start:cut])
            start = cut
    return t.result()


def test_chat_answer_reports_its_usage() -> None:
    assert count_body(CHAT, 500) == TokenCount(19, 10, estimated=False)


def test_embeddings_report_prompt_tokens_only() -> None:
    assert count_body(EMBEDDINGS, 500) == TokenCount(64, 0, estimated=False)


def test_text_completion_usage() -> None:
    body = orjson.dumps(
        {
            "object": "text_completion",
            "choices": [{"text": " world", "index": 0, "finish_reason": "length"}],
            "usage": {"prompt_tokens": 5, "completion_tokens": 7, "total_tokens": 12},
        }
    )
    assert count_body(body, 100) == TokenCount(5, 7, estimated=False)


def test_answer_without_usage_is_estimated_from_sizes() -> None:
    body = orjson.dumps({"choices": [{"message": {"role": "assistant", "content": "x" * 40}}]})
    assert count_body(body, 400) == TokenCount(100, 10, estimated=True)


def test_null_usage_is_no_usage() -> None:
    body = orjson.dumps({"choices": [{"text": "abcd"}], "usage": None})
    assert count_body(body, 8) == TokenCount(2, 1, estimated=True)


def test_stream_with_a_usage_chunk_uses_it() -> None:
    assert tally(USAGE_STREAM) == TokenCount(12, 8, estimated=False)


def test_stream_without_usage_counts_content_events() -> None:
    assert tally(PLAIN_STREAM, request_bytes=400) == TokenCount(100, len(WORDS), estimated=True)


def test_pretty_printed_and_completion_streams_are_counted() -> None:
    events = [{"choices": [{"text": w, "index": 0}]} for w in WORDS]
    pretty = b"".join(
        b"data: " + orjson.dumps(e, option=orjson.OPT_INDENT_2) + b"\n\n" for e in events
    )
    assert tally(pretty).tokens_out == len(WORDS)


def test_cumulative_usage_on_every_chunk_takes_the_last() -> None:
    # vLLM's continuous usage stats: every chunk carries the running totals.
    events = [
        chunk({"content": w}, usage={"prompt_tokens": 9, "completion_tokens": i + 1})
        for i, w in enumerate(WORDS)
    ]
    assert tally(sse(*events)) == TokenCount(9, len(WORDS), estimated=False)


@given(st.lists(st.integers(min_value=0, max_value=len(USAGE_STREAM)), max_size=40))
def test_chunk_boundaries_do_not_change_the_count(cuts: list[int]) -> None:
    assert tally(USAGE_STREAM, cuts) == TokenCount(12, 8, estimated=False)
    assert tally(PLAIN_STREAM, cuts) == TokenCount(100, len(WORDS), estimated=True)


def test_admission_estimate() -> None:
    assert estimate_prompt(0) == 1
    assert admission_estimate(4000, 50) == 1050
    assert admission_estimate(4000, None) == 1000 + DEFAULT_COMPLETION_ESTIMATE
