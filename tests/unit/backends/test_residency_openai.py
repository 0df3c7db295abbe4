"""llama.cpp (router and one-model), vLLM and llama-cpp-python answers read as residency."""

from __future__ import annotations

from sparkplane.backends import openai_residency as oar
from sparkplane.backends.residency import LoadedModel

ROUTER = {
    "data": [
        {"id": "gemma", "status": {"value": "loaded", "args": ["llama-server"]}},
        {"id": "qwen", "status": {"value": "unloaded", "failed": True, "exit_code": 1}},
        {"id": "phi", "status": {"value": "sleeping"}},
    ]
}


def test_router_lists_only_loaded_models() -> None:
    assert oar.is_router_models(ROUTER)
    residency = oar.parse_router(ROUTER)
    assert residency.names() == {"gemma"}
    assert residency.detail["status"] == {"gemma": "loaded", "qwen": "unloaded", "phi": "sleeping"}
    assert not oar.is_router_models({"data": [{"id": "a", "object": "model"}]})


def test_one_model_llama_cpp_reports_props_slots_and_size() -> None:
    props = {
        "model_path": "m.gguf",
        "total_slots": 2,
        "default_generation_settings": {"n_ctx": 1024},
    }
    slots = [{"id": 0, "is_processing": True}, {"id": 1, "is_processing": False}]
    models = {"data": [{"id": "m", "meta": {"size": 4912898304}}]}
    assert oar.is_llama_props(props)
    residency = oar.parse_llama(props, slots, models)
    assert residency.loaded == (LoadedModel("m", bytes=4912898304),)
    assert (residency.detail["busy_slots"], residency.detail["n_ctx"]) == (1, 1024)
    assert oar.parse_llama({**props, "is_sleeping": True}, slots, models).loaded == ()


def test_vllm_kv_usage_from_metrics() -> None:
    text = '# TYPE x gauge\nvllm:gpu_cache_usage_perc{model_name="m"} 0.5\n'
    assert oar.vllm_kv_usage(text) == 0.5
    assert oar.vllm_kv_usage('vllm:kv_cache_usage_perc{engine="0"} 0.125\n' + text) == 0.125
    assert oar.vllm_kv_usage("other 1\n") is None


def test_llama_cpp_python_is_known_by_its_openapi_title() -> None:
    assert oar.is_llama_cpp_python({"info": {"title": "🦙 llama.cpp Python API"}})
    assert not oar.is_llama_cpp_python({"info": {"title": "vLLM API"}})
    assert not oar.is_llama_cpp_python(None)
