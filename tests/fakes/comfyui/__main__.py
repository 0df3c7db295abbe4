"""Run a fake ComfyUI standalone: python -m tests.fakes.comfyui --port 8188."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
from pathlib import Path

from tests.fakes.comfyui.config import FakeComfyConfig
from tests.fakes.comfyui.server import FakeComfyUI
from tests.fakes.comfyui.synthetic import with_models


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Command-line options."""
    parser = argparse.ArgumentParser(prog="python -m tests.fakes.comfyui", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8188)
    parser.add_argument("--base-dir", type=Path, help="folder for input/ output/ temp/")
    parser.add_argument("--speed", type=float, default=1.0, help="divides every duration")
    parser.add_argument(
        "--node-seconds",
        action="append",
        default=[],
        metavar="CLASS=SECONDS",
        help="work time of a node class (repeatable)",
    )
    parser.add_argument(
        "--step-seconds",
        action="append",
        default=[],
        metavar="CLASS=SECONDS",
        help="time per progress step of a node class (repeatable)",
    )
    parser.add_argument("--checkpoint", action="append", default=[], help="adds txt2img nodes")
    parser.add_argument("--lora", action="append", default=[])
    parser.add_argument("--frame-latency", type=float, default=0.0)
    parser.add_argument("--gc-pause", type=float, default=0.0)
    return parser.parse_args(argv)


def _pairs(items: list[str]) -> dict[str, float]:
    return {name: float(value) for name, _, value in (item.partition("=") for item in items)}


def build_config(args: argparse.Namespace) -> FakeComfyConfig:
    """A config from the command line."""
    config = FakeComfyConfig(
        host=args.host,
        port=args.port,
        base_dir=args.base_dir,
        speed=args.speed,
        node_seconds=_pairs(args.node_seconds),
        step_seconds=_pairs(args.step_seconds),
        frame_latency_s=args.frame_latency,
        gc_pause_s=args.gc_pause,
    )
    if args.checkpoint:
        config = with_models(config, args.checkpoint, args.lora)
    return config


async def serve(config: FakeComfyConfig) -> None:
    """Serve until cancelled."""
    async with FakeComfyUI(config) as fake:
        print(f"fake ComfyUI listening on {fake.url} (files in {fake.folders.base})", flush=True)
        await asyncio.Event().wait()


def main(argv: list[str] | None = None) -> None:
    """Entry point."""
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve(build_config(parse_args(argv))))


if __name__ == "__main__":
    main()
