"""`sparkplane simulate` as a user runs it: a table, JSON and a PNG; bad input exits non-zero."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from tests.support.cli import Cli

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "sim"


async def test_simulate_prints_a_table_and_writes_json_and_a_png(cli: Cli, tmp_path: Path) -> None:
    out, png = tmp_path / "out.json", tmp_path / "out.png"
    result = await cli(
        "simulate",
        "--fleet", str(EXAMPLES / "fleet.toml"),
        "--trace", str(EXAMPLES / "trace.jsonl"),
        "--policy", "sparkplane,least-busy,upper-bound",
        "--json", str(out),
        "--png", str(png),
        timeout=120,
    )  # fmt: skip
    assert result.code == 0, result
    assert "sparkplane" in result.stdout
    assert "least-busy" in result.stdout
    data = json.loads(out.read_text(encoding="utf-8"))
    assert set(data["policies"]) == {"sparkplane", "least-busy", "upper-bound"}
    ours = data["policies"]["sparkplane"]
    assert ours["nominal"]["requests"] == 150
    assert ours["nominal"]["oom"] == 0
    assert 0.0 <= ours["nominal"]["attainment"] <= 1.0
    assert ours["curve"]
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


async def test_bad_fleet_file_and_trace_give_a_message_and_exit_2(cli: Cli, tmp_path: Path) -> None:
    fleet = tmp_path / "fleet.toml"
    fleet.write_text('[[device]]\nname = "x"\nprofile = "nope"\n[[model]]\nname = "llama-3.1-8b"\n')
    result = await cli("simulate", "--fleet", str(fleet), "--trace", str(EXAMPLES / "trace.jsonl"))
    assert result.code == 2, result
    assert "unknown device profile 'nope'" in result.stderr, result
    shutil.copy(EXAMPLES / "fleet.toml", fleet)
    trace = tmp_path / "trace.jsonl"
    trace.write_text('{"t": 0, "model": "llama-3.1-8b"}\nnot json\n')
    result = await cli("simulate", "--fleet", str(fleet), "--trace", str(trace))
    assert result.code == 2, result
    assert "trace.jsonl:2: not JSON" in result.stderr, result
    result = await cli("simulate", "--fleet", str(tmp_path / "missing.toml"), "--trace", str(trace))
    assert result.code == 2, result
    assert "cannot read fleet file" in result.stderr, result
