"""Fleet files, traces and the public trace formats: parsed right, refused clearly."""

from __future__ import annotations

from pathlib import Path

import pytest

from sparkplane.sim.fleetfile import FleetFileError, parse_fleet
from sparkplane.sim.profiles import FigureTable
from sparkplane.sim.trace import Mix, TraceError, load_jsonl, save_jsonl, synthesize
from sparkplane.sim.traces_public import load_azure, load_burstgpt
from sparkplane.sim.world import build_world

FLEET = """
[[device]]
name = "spark"
profile = "dgx-spark"
count = 2

[[device]]
name = "gpu"
profile = "4090"

[[model]]
name = "gpt-oss-120b"

[[model]]
name = "llama-3.1-8b"
quant = "q4_k_m"
tpot_s = 0.1
"""


def test_fleet_file_builds_devices_and_slots_from_planner_profiles() -> None:
    fleet = parse_fleet(FLEET)
    world = build_world(fleet, FigureTable())
    assert [d.name for d in world.devices] == ["spark-1", "spark-2", "gpu"]
    # The 120B MoE fits a DGX Spark, not a 24 GB RTX 4090.
    assert {s.device.name for s in world.snapshot.routes["gpt-oss-120b"]} == {"spark-1", "spark-2"}
    fast = world.snapshot.routes["llama-3.1-8b"][0]
    assert fast.device.name == "gpu"
    assert fast.decode_tps
    assert fast.load_s > 2.0
    assert world.models["llama-3.1-8b"].tpot_s == 0.1


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[[device]\n", "not valid TOML"),
        (FLEET.replace('"dgx-spark"', '"dgx-sparkle"'), "unknown device profile 'dgx-sparkle'"),
        (FLEET + "\n[[tenant]]\nname = 'a'\ncolour = 'red'\n", "tenant.0.colour"),
        ("[[model]]\nname = 'llama-3.1-8b'\n", "device"),
        (FLEET.replace('name = "llama-3.1-8b"', 'name = "no-such-model"'), "no-such-model"),
    ],
)
def test_bad_fleet_files_are_refused_with_a_message_naming_the_problem(
    text: str, message: str
) -> None:
    with pytest.raises(FleetFileError, match=message):
        build_world(parse_fleet(text), FigureTable())


def test_jsonl_round_trip_and_a_bad_line_is_named(tmp_path: Path) -> None:
    trace = synthesize(
        Mix(models=["a", "b"], rate=2.0, duration_s=50, image_models=["img"], image_share=0.2)
    )
    path = tmp_path / "t.jsonl"
    save_jsonl(trace, path)
    back = load_jsonl(path)
    assert back.model == trace.model
    assert back.output == trace.output
    assert back.images == trace.images
    assert "img" in back.model
    assert set(back.model) <= {"a", "b", "img"}
    path.write_text('{"t": 0, "model": "a"}\n{"t": -1, "model": "a"}\n', encoding="utf-8")
    with pytest.raises(TraceError, match=r"t.jsonl:2: t must be seconds >= 0"):
        load_jsonl(path)


def test_synthetic_mix_is_zipf_popular_and_bursty() -> None:
    mix = Mix(
        models=["hot", "warm", "cold"],
        rate=5.0,
        duration_s=2000,
        burst=3.0,
        burst_s=60,
        burst_every_s=300,
    )
    trace = synthesize(mix)
    counts = [trace.model.count(m) for m in mix.models]
    assert counts[0] > counts[1] > counts[2]
    per_minute = [0] * 34
    for t in trace.t:
        per_minute[int(t // 60)] += 1
    assert max(per_minute) > 2 * sorted(per_minute)[len(per_minute) // 2]
    assert synthesize(mix).t == trace.t  # reproducible


def test_azure_trace_loads_timestamps_and_token_counts(tmp_path: Path) -> None:
    path = tmp_path / "AzureLLMInferenceTrace_conv.csv"
    path.write_text(
        "TIMESTAMP,ContextTokens,GeneratedTokens\n"
        "2023-11-16 18:15:46.6805900,374,44\n"
        "2023-11-16 18:15:50.9951690,396,109\n"
        "2023-11-16 18:15:47.0000000,879,20\n",
        encoding="utf-8",
    )
    trace = load_azure(path, ["m1", "m2"])
    assert trace.t == pytest.approx([0.0, 0.31941, 4.314579])
    assert trace.prompt == [374, 879, 396]
    assert trace.output == [44, 20, 109]
    assert trace.model == ["m1", "m1", "m2"]  # given in turn, in file order


def test_burstgpt_trace_maps_models_and_tenants_and_skips_failures(tmp_path: Path) -> None:
    path = tmp_path / "BurstGPT_1.csv"
    path.write_text(
        "Timestamp,Model,Request tokens,Response tokens,Total tokens,Log Type\n"
        "5,ChatGPT,472,18,490,Conversation log\n"
        "45,GPT-4,1087,0,1087,API log\n"
        "118,GPT-4,417,453,870,API log\n",
        encoding="utf-8",
    )
    trace = load_burstgpt(path, ["small"], {"GPT-4": "big"})
    assert trace.t == [0.0, 113.0]
    assert trace.model == ["small", "big"]
    assert trace.tenant == ["Conversation log", "API log"]
    assert trace.prompt == [472, 417]
    assert trace.output == [18, 453]


def test_a_csv_of_another_format_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "x.csv"
    path.write_text("a,b\n1,2\n", encoding="utf-8")
    with pytest.raises(TraceError, match="missing column"):
        load_burstgpt(path, ["m"])
    with pytest.raises(TraceError, match="TIMESTAMP"):
        load_azure(path, ["m"])
