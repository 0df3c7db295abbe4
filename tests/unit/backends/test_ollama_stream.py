"""Ollama's NDJSON streams translated to OpenAI SSE chunks (pure)."""

from __future__ import annotations

from itertools import pairwise

from hypothesis import given
from hypothesis import strategies as st
from openai.types import Completion
from openai.types.chat import ChatCompletionChunk

from sparkplane.backends.base import Operation
from sparkplane.backends.ollama_stream import StreamTranslator
from tests.unit.backends.ollama_samples import (
    WHEN,
    WHEN_EPOCH,
    chat_done,
    chat_line,
    events,
    ndjson,
    reply,
)

CHAT_STREAM = ndjson(chat_line("The"), chat_line(" sky"), chat_line(" is blue."), chat_done())


def test_chat_stream_becomes_valid_chunks_then_done() -> None:
    translator = StreamTranslator(reply(Operation.CHAT))
    out = events(translator.feed(CHAT_STREAM))
    assert out[-1] == "[DONE]"
    chunks = [ChatCompletionChunk.model_validate(e) for e in out[:-1]]
    assert chunks[0].choices[0].delta.role == "assistant"
    assert all(c.choices[0].delta.role is None for c in chunks[1:])
    assert "".join(c.choices[0].delta.content or "" for c in chunks) == "The sky is blue."
    assert [c.choices[0].finish_reason for c in chunks][-1] == "stop"
    assert all(c.choices[0].finish_reason is None for c in chunks[:-1])
    assert {(c.id, c.model, c.created) for c in chunks} == {
        ("chatcmpl-t0k", "client-name", WHEN_EPOCH)
    }
    assert translator.finished
    assert not translator.failed


def test_usage_chunk_only_when_asked() -> None:
    asked = events(StreamTranslator(reply(Operation.CHAT, include_usage=True)).feed(CHAT_STREAM))
    usage = ChatCompletionChunk.model_validate(asked[-2])
    assert usage.choices == []
    assert usage.usage is not None
    assert (usage.usage.prompt_tokens, usage.usage.completion_tokens) == (26, 4)
    plain = events(StreamTranslator(reply(Operation.CHAT)).feed(CHAT_STREAM))
    assert all(e == "[DONE]" or "usage" not in e for e in plain)


def test_lines_split_byte_by_byte_give_the_same_stream() -> None:
    whole = StreamTranslator(reply(Operation.CHAT)).feed(CHAT_STREAM)
    translator = StreamTranslator(reply(Operation.CHAT))
    pieces = b"".join(translator.feed(CHAT_STREAM[i : i + 1]) for i in range(len(CHAT_STREAM)))
    assert pieces == whole


@given(st.lists(st.integers(min_value=0, max_value=len(CHAT_STREAM)), max_size=12))
def test_lines_split_anywhere_give_the_same_stream(cuts: list[int]) -> None:
    whole = StreamTranslator(reply(Operation.CHAT)).feed(CHAT_STREAM)
    bounds = [0, *sorted(cuts), len(CHAT_STREAM)]
    translator = StreamTranslator(reply(Operation.CHAT))
    pieces = b"".join(translator.feed(CHAT_STREAM[a:b]) for a, b in pairwise(bounds))
    assert pieces == whole


def test_a_last_line_without_newline_is_read_at_the_end() -> None:
    translator = StreamTranslator(reply(Operation.CHAT))
    data = CHAT_STREAM.rstrip(b"\n")
    out = translator.feed(data) + translator.end()
    assert events(out)[-1] == "[DONE]"
    assert translator.finished


def test_an_error_line_ends_the_stream_with_an_openai_error_event() -> None:
    translator = StreamTranslator(reply(Operation.CHAT))
    data = ndjson(chat_line("The"), {"error": "an error was encountered while running the model"})
    out = events(translator.feed(data))
    assert out[-1] == "[DONE]"
    assert out[-2] == {
        "error": {
            "message": "an error was encountered while running the model",
            "type": "upstream_error",
            "param": None,
            "code": "upstream_error",
        }
    }
    assert translator.finished
    assert translator.failed
    assert translator.feed(ndjson(chat_line("more"))) == b""


def test_a_line_that_is_not_json_ends_the_stream_with_an_error() -> None:
    translator = StreamTranslator(reply(Operation.CHAT))
    out = events(translator.feed(b"<html>proxy error</html>\n"))
    assert "error" in out[0]
    assert out[-1] == "[DONE]"
    assert translator.failed


def test_streamed_tool_calls_get_indices_ids_and_finish_reason() -> None:
    calls_a = [{"function": {"name": "a", "arguments": {"x": 1}}}]
    calls_b = [{"function": {"name": "b", "arguments": {}}}]
    data = ndjson(
        chat_line(message={"tool_calls": calls_a}),
        chat_line(message={"tool_calls": calls_b}),
        chat_done(),
    )
    chunks = [
        ChatCompletionChunk.model_validate(e)
        for e in events(StreamTranslator(reply(Operation.CHAT)).feed(data))[:-1]
    ]
    deltas = [c for chunk in chunks for c in chunk.choices[0].delta.tool_calls or []]
    assert [(d.index, d.function.name, d.function.arguments) for d in deltas] == [
        (0, "a", '{"x":1}'),
        (1, "b", "{}"),
    ]
    assert len({d.id for d in deltas}) == 2
    assert chunks[-1].choices[0].finish_reason == "tool_calls"


def test_thinking_streams_as_reasoning_content() -> None:
    data = ndjson(chat_line(message={"thinking": "hmm"}), chat_line("ok"), chat_done())
    out = events(StreamTranslator(reply(Operation.CHAT)).feed(data))
    assert out[0]["choices"][0]["delta"] == {"role": "assistant", "reasoning_content": "hmm"}


def test_generate_stream_becomes_text_completion_chunks() -> None:
    lines = [{"created_at": WHEN, "response": w, "done": False} for w in ["Once", " upon"]]
    done = {
        "created_at": WHEN,
        "response": "",
        "done": True,
        "done_reason": "length",
        "eval_count": 2,
    }
    translator = StreamTranslator(reply(Operation.COMPLETION, echo="Tell: ", include_usage=True))
    out = events(translator.feed(ndjson(*lines, done)))
    assert out[-1] == "[DONE]"
    assert [e["choices"][0]["text"] for e in out[:-3]] == ["Tell: Once", " upon"]
    final = Completion.model_validate(out[-3])
    assert final.choices[0].finish_reason == "length"
    assert final.object == "text_completion"
    assert final.id == "cmpl-t0k"
    assert out[-2]["usage"]["completion_tokens"] == 2
