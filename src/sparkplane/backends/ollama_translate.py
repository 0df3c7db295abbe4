"""OpenAI requests in Ollama's native API (/api/chat, /api/generate, /api/embed).

Pure functions, no I/O: `to_ollama()` maps a client's OpenAI body to the path
and body Ollama expects, and raises `Unsupported` (a 400) for what Ollama
cannot do. The way back, answers and streams, is in `ollama_reply.py`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson

from sparkplane.backends.base import Operation
from sparkplane.errors import BadRequest

PATHS = {
    Operation.CHAT: "/api/chat",
    Operation.COMPLETION: "/api/generate",
    Operation.EMBEDDING: "/api/embed",
}

# OpenAI (and common engine-specific) sampling fields that Ollama takes in `options`
# under the same name.
_SAME_NAME_OPTIONS = (
    "temperature",
    "top_p",
    "seed",
    "presence_penalty",
    "frequency_penalty",
    "top_k",
    "min_p",
    "repeat_penalty",
)
# Ollama has no developer role; system is what those instructions mean to it.
_ROLES = {"developer": "system", "function": "tool"}


class Unsupported(BadRequest):
    """The request asks for something Ollama cannot do (answered as a 400)."""

    code = "unsupported_by_engine"

    def __init__(self, message: str, param: str) -> None:
        super().__init__(message, param=param)


@dataclass(frozen=True, slots=True)
class OllamaCall:
    """What to send to Ollama: the path under its root and the JSON body."""

    path: str
    body: dict[str, Any]


def to_ollama(op: Operation, payload: dict[str, Any], model: str, *, stream: bool) -> OllamaCall:
    """Translate an OpenAI request body for `model` (the device's own name).

    Raises `Unsupported` with the offending `param` when Ollama cannot serve it.
    """
    if op is Operation.CHAT:
        body = chat_body(payload, model, stream=stream)
    elif op is Operation.COMPLETION:
        body = generate_body(payload, model, stream=stream)
    else:
        body = embed_body(payload, model)
    return OllamaCall(PATHS[op], body)


def chat_body(payload: dict[str, Any], model: str, *, stream: bool) -> dict[str, Any]:
    """`POST /api/chat` body for an OpenAI chat completion request."""
    _check_single_choice(payload)
    # Ollama streams unless told otherwise: always say which.
    body: dict[str, Any] = {"model": model, "messages": messages(payload.get("messages"))}
    body["stream"] = stream
    tools = payload.get("tools")
    if tools and payload.get("tool_choice") != "none":
        body["tools"] = tools
    fmt = response_format(payload.get("response_format"))
    if fmt is not None:
        body["format"] = fmt
    _common(payload, body)
    return body


def generate_body(payload: dict[str, Any], model: str, *, stream: bool) -> dict[str, Any]:
    """`POST /api/generate` body for an OpenAI (legacy) completion request."""
    _check_single_choice(payload)
    body: dict[str, Any] = {"model": model, "prompt": prompt_text(payload.get("prompt"))}
    body["stream"] = stream
    if payload.get("suffix") is not None:
        body["suffix"] = payload["suffix"]
    # Ollama applies the model's prompt template unless raw; say it explicitly.
    body["raw"] = False
    _common(payload, body)
    return body


def embed_body(payload: dict[str, Any], model: str) -> dict[str, Any]:
    """`POST /api/embed` body for an OpenAI embeddings request."""
    value = payload.get("input")
    if not (isinstance(value, str) or _all_strings(value)):
        raise Unsupported("Ollama embeds text only: send a string or a list of strings", "input")
    encoding = payload.get("encoding_format")
    if encoding not in (None, "float", "base64"):
        raise Unsupported(f"encoding_format {encoding!r} is not supported", "encoding_format")
    body: dict[str, Any] = {"model": model, "input": value, "truncate": True}
    # Older Ollama versions ignore unknown fields, so this is safe to send always.
    if payload.get("dimensions") is not None:
        body["dimensions"] = payload["dimensions"]
    if payload.get("keep_alive") is not None:
        body["keep_alive"] = payload["keep_alive"]
    return body


def options(payload: dict[str, Any]) -> dict[str, Any]:
    """Ollama's `options` from OpenAI's sampling fields (an `options` object the
    client sent, Ollama's own spelling, is the base the OpenAI fields override)."""
    given = payload.get("options")
    result: dict[str, Any] = dict(given) if isinstance(given, dict) else {}
    for name in _SAME_NAME_OPTIONS:
        if payload.get(name) is not None:
            result[name] = payload[name]
    limit = payload.get("max_completion_tokens")
    if limit is None:
        limit = payload.get("max_tokens")
    if limit is not None:
        result["num_predict"] = limit
    stop = payload.get("stop")
    if isinstance(stop, str):
        result["stop"] = [stop]
    elif isinstance(stop, list) and stop:
        result["stop"] = list(stop)
    return result


def response_format(value: object) -> str | dict[str, Any] | None:
    """Ollama's `format`: "json" for JSON mode, the schema itself for a JSON schema."""
    if not isinstance(value, dict):
        return None
    kind = value.get("type")
    if kind == "json_object":
        return "json"
    if kind == "json_schema":
        spec = value.get("json_schema")
        schema = spec.get("schema") if isinstance(spec, dict) else None
        if not isinstance(schema, dict):
            raise Unsupported("json_schema needs a schema object", "response_format")
        return schema
    return None


def messages(value: object) -> list[dict[str, Any]]:
    """OpenAI chat messages as Ollama messages.

    Text parts are joined with newlines, base64 image parts become `images`,
    assistant tool calls carry their arguments as objects, and a tool result
    names its function (`tool_name`), found through its `tool_call_id`.
    """
    if not isinstance(value, list):
        raise Unsupported("messages must be a list", "messages")
    names: dict[str, str] = {}
    out: list[dict[str, Any]] = []
    for i, message in enumerate(value):
        where = f"messages[{i}]"
        if not isinstance(message, dict):
            raise Unsupported("each message must be an object", where)
        role = str(message.get("role"))
        role = _ROLES.get(role, role)
        text, images = content(message.get("content"), f"{where}.content")
        item: dict[str, Any] = {"role": role, "content": text}
        if images:
            item["images"] = images
        calls = message.get("tool_calls")
        if isinstance(calls, list) and calls:
            item["tool_calls"] = [
                _tool_call(c, f"{where}.tool_calls[{j}]", names) for j, c in enumerate(calls)
            ]
        if role == "tool":
            name = names.get(str(message.get("tool_call_id"))) or message.get("name")
            if name:
                item["tool_name"] = name
        out.append(item)
    return out


def content(value: object, where: str) -> tuple[str, list[str]]:
    """A message's content as Ollama's text and list of base64 images."""
    if value is None:
        return "", []
    if isinstance(value, str):
        return value, []
    if not isinstance(value, list):
        raise Unsupported("content must be a string or a list of parts", where)
    texts: list[str] = []
    images: list[str] = []
    for k, part in enumerate(value):
        kind = part.get("type") if isinstance(part, dict) else None
        if kind == "text" and isinstance(part, dict):
            texts.append(str(part.get("text", "")))
        elif kind == "image_url" and isinstance(part, dict):
            images.append(image_data(part.get("image_url"), f"{where}[{k}].image_url"))
        else:
            raise Unsupported(f"content parts of type {kind!r} are not supported by Ollama", where)
    return "\n".join(texts), images


def image_data(value: object, where: str) -> str:
    """The base64 payload of a `data:` image URL (Ollama cannot fetch URLs)."""
    url = value.get("url") if isinstance(value, dict) else value
    if isinstance(url, str) and url.startswith("data:"):
        head, sep, data = url.partition(",")
        if sep and head.endswith(";base64") and data:
            return data
    raise Unsupported("Ollama takes images only as base64 data URLs (data:...;base64,...)", where)


def prompt_text(value: object) -> str:
    """A completion prompt as the one string Ollama's /api/generate takes."""
    if isinstance(value, str):
        return value
    if isinstance(value, list) and len(value) == 1 and isinstance(value[0], str):
        return value[0]
    if _all_strings(value):
        raise Unsupported("Ollama completes one prompt per request", "prompt")
    raise Unsupported("Ollama takes text prompts only, not token ids", "prompt")


def _tool_call(value: object, where: str, names: dict[str, str]) -> dict[str, Any]:
    function = value.get("function") if isinstance(value, dict) else None
    if not isinstance(value, dict) or not isinstance(function, dict):
        raise Unsupported("a tool call needs a function", where)
    name = str(function.get("name", ""))
    arguments = function.get("arguments")
    if isinstance(arguments, str):
        try:
            arguments = orjson.loads(arguments) if arguments.strip() else {}
        except orjson.JSONDecodeError:
            arguments = None
    if not isinstance(arguments, dict):
        raise Unsupported("tool call arguments must be a JSON object", f"{where}.function")
    if value.get("id"):
        names[str(value["id"])] = name
    return {"function": {"name": name, "arguments": arguments}}


def _common(payload: dict[str, Any], body: dict[str, Any]) -> None:
    opts = options(payload)
    if opts:
        body["options"] = opts
    for name in ("keep_alive", "think"):
        if payload.get(name) is not None:
            body[name] = payload[name]


def _check_single_choice(payload: dict[str, Any]) -> None:
    n = payload.get("n")
    if n is not None and n != 1:
        raise Unsupported("Ollama returns one choice per request (n must be 1)", "n")


def _all_strings(value: object) -> bool:
    return isinstance(value, list) and bool(value) and all(isinstance(v, str) for v in value)
