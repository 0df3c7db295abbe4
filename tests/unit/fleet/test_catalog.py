"""The model catalog: public names, aliases and the routes behind them."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from sparkplane.backends.registry import KINDS
from sparkplane.fleet.catalog import ModelCatalog
from sparkplane.fleet.device import Device
from tests.fakes.fleet import device


def build(devices: Sequence[Device], aliases: Mapping[str, Sequence[str]]) -> ModelCatalog:
    return ModelCatalog.build(devices, aliases, KINDS)


def served_by(catalog: ModelCatalog, name: str) -> set[tuple[str, str]]:
    routes = catalog.routes(name)
    assert routes is not None, name
    return {(r.device.name, r.model) for r in routes}


def listed(catalog: ModelCatalog) -> list[str]:
    return [e.name for e in catalog.listed()]


def test_raw_names_are_public_and_routed_to_every_device_that_has_them() -> None:
    a = device("a", ["llama", "qwen"])
    b = device("b", ["llama"])
    catalog = build([a, b], {})
    assert listed(catalog) == ["llama", "qwen"]
    assert served_by(catalog, "llama") == {("a", "llama"), ("b", "llama")}
    assert served_by(catalog, "qwen") == {("a", "qwen")}
    assert all(not e.alias for e in catalog.listed())


def test_unknown_name_has_no_routes() -> None:
    catalog = build([device("a", ["llama"])], {"chat": ["llama"]})
    assert catalog.routes("nope") is None


def test_plain_alias_target_matches_that_name_on_every_kind() -> None:
    vllm = device("vllm", ["meta-llama/Llama-3.1-8B-Instruct"])
    cloud = device("cloud", ["meta-llama/Llama-3.1-8B-Instruct"], off_prem=True)
    catalog = build([vllm, cloud], {"chat": ["meta-llama/Llama-3.1-8B-Instruct"]})
    assert served_by(catalog, "chat") == {
        ("vllm", "meta-llama/Llama-3.1-8B-Instruct"),
        ("cloud", "meta-llama/Llama-3.1-8B-Instruct"),
    }


def test_alias_maps_one_public_name_to_different_engine_names() -> None:
    ollama = device("ollama", ["llama3.1:8b"], kind="ollama")
    vllm = device("vllm", ["meta-llama/Llama-3.1-8B-Instruct"])
    aliases = {"llama-8b": ["ollama:llama3.1:8b", "meta-llama/Llama-3.1-8B-Instruct"]}
    catalog = build([ollama, vllm], aliases)
    assert served_by(catalog, "llama-8b") == {
        ("ollama", "llama3.1:8b"),
        ("vllm", "meta-llama/Llama-3.1-8B-Instruct"),
    }
    entry = next(e for e in catalog.listed() if e.name == "llama-8b")
    assert entry.alias


def test_kind_prefixed_target_matches_only_devices_of_that_kind() -> None:
    ollama = device("ollama", ["llama3.1:8b"], kind="ollama")
    other = device("openai-box", ["llama3.1:8b"], kind="openai")
    catalog = build([ollama, other], {"llama": ["ollama:llama3.1:8b"]})
    assert served_by(catalog, "llama") == {("ollama", "llama3.1:8b")}


def test_a_colon_in_a_model_name_is_not_mistaken_for_a_kind() -> None:
    # "llama3.1" is no engine kind, so the whole target is a model name.
    box = device("box", ["llama3.1:8b"], kind="ollama")
    catalog = build([box], {"llama": ["llama3.1:8b"]})
    assert served_by(catalog, "llama") == {("box", "llama3.1:8b")}


def test_raw_name_claimed_by_an_alias_is_unlisted_but_still_routable() -> None:
    box = device("box", ["llama3.1:8b", "qwen"], kind="ollama")
    catalog = build([box], {"llama": ["ollama:llama3.1:8b"]})
    assert listed(catalog) == ["llama", "qwen"]
    assert served_by(catalog, "llama3.1:8b") == {("box", "llama3.1:8b")}


def test_raw_name_stays_listed_while_some_device_serves_it_outside_the_alias() -> None:
    ollama = device("ollama", ["llama3.1:8b"], kind="ollama")
    other = device("other", ["llama3.1:8b"], kind="openai")
    catalog = build([ollama, other], {"llama": ["ollama:llama3.1:8b"]})
    assert listed(catalog) == ["llama", "llama3.1:8b"]
    assert served_by(catalog, "llama3.1:8b") == {
        ("ollama", "llama3.1:8b"),
        ("other", "llama3.1:8b"),
    }


def test_alias_with_no_serving_device_is_listed_with_no_routes() -> None:
    catalog = build([device("a", ["llama"])], {"ghost": ["not-there", "ollama:nor-this"]})
    assert catalog.routes("ghost") == ()
    assert "ghost" in listed(catalog)


def test_alias_named_like_a_raw_model_takes_the_name_over() -> None:
    a = device("a", ["gpt-4o"])
    cloud = device("cloud", ["gpt-4o-2024-08-06"], off_prem=True)
    catalog = build([a, cloud], {"gpt-4o": ["gpt-4o-2024-08-06"]})
    assert served_by(catalog, "gpt-4o") == {("cloud", "gpt-4o-2024-08-06")}


def test_a_device_matched_by_two_targets_appears_once() -> None:
    box = device("box", ["llama3.1:8b"], kind="ollama")
    catalog = build([box], {"llama": ["ollama:llama3.1:8b", "llama3.1:8b"]})
    routes = catalog.routes("llama")
    assert routes is not None
    assert len(routes) == 1


def test_listing_is_sorted_by_name() -> None:
    catalog = build([device("a", ["zeta", "alpha"]), device("b", ["mid"])], {"beta": ["mid"]})
    assert listed(catalog) == sorted(listed(catalog))
    assert set(listed(catalog)) == {"alpha", "beta", "zeta"}
