"""A minimal OpenAI-compatible upstream for benchmarks: answers
`GET /v1/models` and any POST with a fixed chat completion, as fast as a raw
asyncio protocol on uvloop can, so the benchmark measures the gateway, not it.

Run: python bench/upstream.py PORT
"""

from __future__ import annotations

import asyncio
import sys

import uvloop

CHAT = (
    b'{"id":"chatcmpl-bench","object":"chat.completion","created":1,"model":"bench-model",'
    b'"choices":[{"index":0,"message":{"role":"assistant","content":"ok"},'
    b'"finish_reason":"stop"}],"usage":{"prompt_tokens":5,"completion_tokens":1,'
    b'"total_tokens":6}}'
)
MODELS = b'{"object":"list","data":[{"id":"bench-model","object":"model","created":0}]}'


def _response(body: bytes) -> bytes:
    head = (
        f"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {len(body)}\r\n\r\n"
    )
    return head.encode() + body


CHAT_RESPONSE = _response(CHAT)
MODELS_RESPONSE = _response(MODELS)


class Upstream(asyncio.Protocol):
    """HTTP/1.1 with keep-alive, just enough for POST with content-length and GET."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport: asyncio.Transport = transport  # type: ignore[assignment]
        self.buffer = b""

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        while True:
            end = self.buffer.find(b"\r\n\r\n")
            if end < 0:
                return
            head = self.buffer[:end].lower()
            length = 0
            for line in head.split(b"\r\n"):
                if line.startswith(b"content-length:"):
                    length = int(line[15:])
            if len(self.buffer) < end + 4 + length:
                return
            self.buffer = self.buffer[end + 4 + length :]
            self.transport.write(MODELS_RESPONSE if head.startswith(b"get") else CHAT_RESPONSE)


async def main(port: int) -> None:
    server = await asyncio.get_running_loop().create_server(Upstream, "127.0.0.1", port)
    print(f"upstream listening on {port}", flush=True)
    await server.serve_forever()


if __name__ == "__main__":
    uvloop.run(main(int(sys.argv[1])))
