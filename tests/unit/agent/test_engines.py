"""Engine command lines: templates split first, placeholders filled after."""

from __future__ import annotations

import sys

import pytest

from sparkplane.agent.engines import builtin_engines, command_line, environment, with_overrides
from sparkplane.agent.protocol import DeploymentSpec
from sparkplane.errors import BadRequest


def spec(**changes: object) -> DeploymentSpec:
    values: dict[str, object] = {
        "id": "ab12", "name": "tiny", "engine": "llamacpp",
        "model_path": "/models/my models/tiny.gguf", "served_name": "tiny",
    }  # fmt: skip
    values.update(changes)
    return DeploymentSpec.model_validate(values)


def test_a_model_path_with_spaces_stays_one_argument() -> None:
    engines = with_overrides(
        builtin_engines(), {"llamacpp": "llama-server -m {model} --port {port}"}
    )
    argv = command_line(engines["llamacpp"], spec(), "127.0.0.1", 9001)
    assert argv == ["llama-server", "-m", "/models/my models/tiny.gguf", "--port", "9001"]


def test_context_and_extra_arguments_are_passed() -> None:
    engine = builtin_engines()["vllm"]
    argv = command_line(
        engine, spec(engine="vllm", context=4096, args=["--dtype", "auto"]), "0.0.0.0", 8000
    )
    assert argv[:2] == ["vllm", "serve"]
    assert argv[-4:] == ["--max-model-len", "4096", "--dtype", "auto"]
    assert argv[argv.index("--host") : argv.index("--host") + 2] == ["--host", "0.0.0.0"]


def test_a_command_template() -> None:
    engine = builtin_engines()["command"]
    argv = command_line(
        engine, spec(engine="command", command="{python} srv.py -p {port} {name}"), "h", 7
    )
    assert argv == [sys.executable, "srv.py", "-p", "7", "tiny"]
    with pytest.raises(BadRequest, match="needs a command template"):
        command_line(engine, spec(engine="command"), "h", 7)
    with pytest.raises(BadRequest, match="bad command template"):
        command_line(engine, spec(engine="command", command="srv {nope}"), "h", 7)


def test_ollama_listens_where_it_is_told_through_its_environment() -> None:
    engine = builtin_engines()["ollama"]
    env = environment(
        engine, spec(engine="ollama", env={"OLLAMA_KEEP_ALIVE": "-1"}), "0.0.0.0", 11500
    )
    assert env == {"OLLAMA_HOST": "0.0.0.0:11500", "OLLAMA_KEEP_ALIVE": "-1"}


def test_an_unknown_engine_cannot_be_overridden() -> None:
    with pytest.raises(BadRequest, match="unknown engine"):
        with_overrides(builtin_engines(), {"tgi": "x"})
