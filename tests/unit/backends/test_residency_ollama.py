"""Ollama's /api/ps answers and load/unload bodies, parsed and built without I/O."""

from __future__ import annotations

import pytest

from sparkplane.backends.ollama_residency import (
    check_done,
    control_body,
    full_name,
    keep_alive_value,
    kept_for_years,
    parse_ps,
)
from sparkplane.backends.residency import LoadedModel

# The example of Ollama's docs/api.md ("List Running Models").
PS = {
    "models": [
        {
            "name": "mistral:latest",
            "model": "mistral:latest",
            "size": 5137025024,
            "digest": "2ae6f6dd7a3dd734790bbbf58b8909a606e0e7e97e94b7604e0aa7ae4490e6d8",
            "details": {
                "parent_model": "",
                "format": "gguf",
                "family": "llama",
                "families": ["llama"],
                "parameter_size": "7.2B",
                "quantization_level": "Q4_0",
            },
            "expires_at": "2024-06-04T14:38:31.83753-07:00",
            "size_vram": 5137025024,
            "context_length": 4096,
        },
        {"name": "llava:7b", "size": 6_000_000_000, "size_vram": 4_000_000_000},
    ]
}


def test_ps_lists_each_model_with_its_bytes_and_expiry() -> None:
    residency = parse_ps(PS)
    assert residency.loaded == (
        LoadedModel(
            "mistral:latest",
            bytes=5137025024,
            device_bytes=5137025024,
            expires_at="2024-06-04T14:38:31.83753-07:00",
        ),
        LoadedModel("llava:7b", bytes=6_000_000_000, device_bytes=4_000_000_000),
    )
    assert residency.names() == {"mistral:latest", "llava:7b"}
    assert residency.detail["context_length"] == {"mistral:latest": 4096}
    # Ollama reports no device totals: the planner's estimate stands in.
    assert residency.total_bytes is None
    assert residency.free_bytes is None


def test_ps_with_nothing_loaded_is_empty() -> None:
    assert parse_ps({"models": []}).loaded == ()


@pytest.mark.parametrize("data", [None, [], {"models": None}, {"error": "x"}])
def test_ps_without_a_models_list_is_refused(data: object) -> None:
    with pytest.raises(ValueError, match="models"):
        parse_ps(data)


def test_ps_skips_entries_without_a_name_and_ignores_bad_figures() -> None:
    residency = parse_ps(
        {"models": [{"size": 3}, "x", {"name": "a", "size": -1, "size_vram": "7"}]}
    )
    assert residency.loaded == (LoadedModel("a"),)


@pytest.mark.parametrize(
    ("given", "sent"),
    [("-1", -1), (-1, -1), ("0", 0), ("300", 300), ("1.5", 1.5), ("10m", "10m"), (" 1h ", "1h")],
)
def test_keep_alive_numbers_go_as_numbers(given: str | float, sent: str | float) -> None:
    # Ollama reads a JSON string as a Go duration, which needs a unit: "-1" would be a 400.
    value = keep_alive_value(given)
    assert value == sent
    assert type(value) is type(sent)


def test_control_bodies_name_only_the_model_and_keep_alive() -> None:
    assert control_body("llama3.2", "-1") == {"model": "llama3.2", "keep_alive": -1}
    assert control_body("llama3.2", 0) == {"model": "llama3.2", "keep_alive": 0}


def test_full_names_default_the_tag_to_latest() -> None:
    assert full_name("llama3.2") == "llama3.2:latest"
    assert full_name("llama3.2:1b") == "llama3.2:1b"
    assert full_name("registry.local:5000/team/model") == "registry.local:5000/team/model:latest"


def test_done_reason_must_be_the_expected_one() -> None:
    check_done({"done": True, "done_reason": "load"}, "load")
    check_done({"done": True}, "unload")  # older servers send no reason
    with pytest.raises(ValueError, match="unload"):
        check_done({"done": True, "done_reason": "load"}, "unload")
    with pytest.raises(ValueError, match="finished"):
        check_done({"done": False}, "load")


def test_a_model_kept_for_centuries_counts_as_pinned() -> None:
    assert kept_for_years(LoadedModel("a", expires_at="2318-08-25T10:00:00Z"))
    assert not kept_for_years(LoadedModel("a", expires_at="2024-06-04T14:38:31.83753-07:00"))
    assert not kept_for_years(LoadedModel("a"))
