"""How each engine is started: a command template, a health path and a device kind.

A template is split like a shell line first and its placeholders filled in
afterwards, so a model path with spaces stays one argument and nothing is ever
run through a shell. Placeholders: {python} (the agent's interpreter), {model},
{name} (the model name clients use), {host}, {port}, {context}.

llama.cpp: the `llama-server` binary when it is on PATH, else llama-cpp-python's
server module (`python -m llama_cpp.server`) when that is installed. An agent
can replace any template (`sparkplane agent --engine-command llamacpp=...`).
"""

from __future__ import annotations

import importlib.util
import shlex
import shutil
import sys
from collections.abc import Mapping
from dataclasses import dataclass

from sparkplane.agent.protocol import DeploymentSpec
from sparkplane.errors import BadRequest


@dataclass(frozen=True)
class Engine:
    """One engine: how to start it, how to tell it is up, what device it makes."""

    name: str
    template: str
    health_path: str
    device_kind: str
    context_args: str = ""
    env: tuple[tuple[str, str], ...] = ()


def _llamacpp_template() -> tuple[str, str]:
    if shutil.which("llama-server"):
        return "llama-server -m {model} --alias {name} --host {host} --port {port}", "-c {context}"
    if importlib.util.find_spec("llama_cpp") is not None:
        return (
            "{python} -m llama_cpp.server --model {model} --model_alias {name} "
            "--host {host} --port {port}",
            "--n_ctx {context}",
        )
    return "llama-server -m {model} --alias {name} --host {host} --port {port}", "-c {context}"


def builtin_engines() -> dict[str, Engine]:
    """The engines the agent knows, with the templates this machine supports."""
    llama, llama_ctx = _llamacpp_template()
    return {
        "llamacpp": Engine("llamacpp", llama, "/v1/models", "openai", llama_ctx),
        "vllm": Engine(
            "vllm",
            "vllm serve {model} --served-model-name {name} --host {host} --port {port}",
            "/v1/models",
            "openai",
            "--max-model-len {context}",
        ),
        "sglang": Engine(
            "sglang",
            "{python} -m sglang.launch_server --model-path {model} --served-model-name {name} "
            "--host {host} --port {port}",
            "/v1/models",
            "openai",
            "--context-length {context}",
        ),
        # Ollama serves the models it has pulled; OLLAMA_HOST sets where it listens.
        "ollama": Engine(
            "ollama",
            "ollama serve",
            "/api/version",
            "ollama",
            env=(("OLLAMA_HOST", "{host}:{port}"),),
        ),
        # The model path of a ComfyUI deployment is ComfyUI's own folder.
        "comfyui": Engine(
            "comfyui",
            "{python} {model}/main.py --listen {host} --port {port}",
            "/system_stats",
            "comfyui",
        ),
        "command": Engine("command", "", "/v1/models", "openai"),
    }


def with_overrides(
    engines: Mapping[str, Engine], overrides: Mapping[str, str]
) -> dict[str, Engine]:
    """`engines` with the templates named in `overrides` (engine -> template) replaced."""
    out = dict(engines)
    for name, template in overrides.items():
        if name not in out:
            raise BadRequest(f"unknown engine {name!r}; known: {', '.join(out)}", param="engine")
        base = out[name]
        out[name] = Engine(name, template, base.health_path, base.device_kind, "", base.env)
    return out


def command_line(engine: Engine, spec: DeploymentSpec, host: str, port: int) -> list[str]:
    """The argument vector that starts `spec` on `port`."""
    template = spec.command if engine.name == "command" else engine.template
    if not template:
        raise BadRequest("a command deployment needs a command template", param="command")
    values = {
        "python": sys.executable,
        "model": spec.model_path,
        "name": spec.served_name,
        "host": host,
        "port": str(port),
        "context": str(spec.context or ""),
    }
    try:
        argv = [part.format(**values) for part in shlex.split(template)]
        if spec.context and engine.context_args:
            argv += [part.format(**values) for part in shlex.split(engine.context_args)]
    except (KeyError, ValueError, IndexError) as exc:
        raise BadRequest(f"bad command template {template!r}: {exc}", param="command") from None
    return argv + list(spec.args)


def environment(engine: Engine, spec: DeploymentSpec, host: str, port: int) -> dict[str, str]:
    """Variables the engine needs, then the deployment's own."""
    values = {"host": host, "port": str(port)}
    return {k: v.format(**values) for k, v in engine.env} | dict(spec.env)
