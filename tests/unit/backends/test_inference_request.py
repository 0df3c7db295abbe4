"""InferenceRequest: the client's body forwarded as is, or with the model renamed."""

from __future__ import annotations

import orjson

from sparkplane.backends.base import InferenceRequest, Operation

# Odd spacing and key order on purpose: a re-serialisation would change them.
RAW = (
    b'{ "messages" : [{"role":"user","content":"caf\\u00e9 \xe2\x98\x95"}],'
    b'  "model":"chat", "top_k": 40,"stream":true }'
)


def request(raw: bytes = RAW) -> InferenceRequest:
    return InferenceRequest(op=Operation.CHAT, model="chat", raw=raw, stream=True)


def test_same_model_forwards_the_clients_bytes_untouched() -> None:
    req = request()
    assert req.body_for("chat") is RAW


def test_rename_changes_only_the_model() -> None:
    req = request()
    body = orjson.loads(req.body_for("llama3.1:8b"))
    original = orjson.loads(RAW)
    assert body["model"] == "llama3.1:8b"
    assert {k: v for k, v in body.items() if k != "model"} == {
        k: v for k, v in original.items() if k != "model"
    }
    assert body["messages"][0]["content"] == "café ☕"
    assert body["top_k"] == 40


def test_rename_leaves_the_request_itself_alone() -> None:
    req = request()
    req.body_for("other")
    assert req.raw is RAW
    assert req.payload["model"] == "chat"
    assert req.body_for("chat") is RAW


def test_payload_is_the_parsed_body() -> None:
    assert request().payload == orjson.loads(RAW)
