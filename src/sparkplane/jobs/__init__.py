"""Durable workflow jobs: the store, the workers that run them on ComfyUI devices,
the client websocket hub, and the artifact store."""
