"""The main recorded flows: a fresh run, the cached rerun, previews, /view, history."""

from __future__ import annotations

import json
import re
from typing import Any

from tests.fakes.comfyui.images import png_texts
from tests.fakes.comfyui_conformance.flow import connect, history, post_prompt, run
from tests.fakes.comfyui_conformance.support import (
    assert_frames,
    canon,
    image_summary,
    text,
    tokens,
)


async def test_fresh_run_frames_history_and_view_match(
    fx: Any, comfy_fake: Any, session: Any
) -> None:
    sequence = fx("ws_sequence")
    ws = await connect(session, comfy_fake, sequence["client_id"])
    assert ws.frames[0]["message"] == fx("ws_connect")["frames"][0]["message"]
    answer, frames = await run(session, comfy_fake, ws, sequence["post_request_body"])
    rec_ids, fake_ids = tokens(
        [sequence["post_response"]["body"]["prompt_id"]], [answer["prompt_id"]]
    )
    assert canon(answer, fake_ids) == canon(sequence["post_response"]["body"], rec_ids)
    assert_frames(sequence["frames"], frames)
    # Beyond the shape: every value of this short sequence matches once ids and
    # timestamps are replaced (progress values 0.0/1.0 included).
    assert [canon(f["message"], fake_ids) for f in frames] == [
        canon(f["message"], rec_ids) for f in sequence["frames"]
    ]

    recorded_history = fx("history_prompt")
    got = await history(session, comfy_fake, answer["prompt_id"])
    assert canon(got, fake_ids) == canon(recorded_history["response"]["body"], rec_ids)

    view = fx("view_image")
    response = await session.get(
        comfy_fake.url + view["request"]["path"], params=view["request"]["query"]
    )
    data = await response.read()
    expected_headers = view["response"]["headers"]
    assert response.status == 200
    for header in ("Content-Type", "Content-Disposition"):
        assert response.headers[header] == expected_headers[header]
    assert {"Etag", "Last-Modified", "Accept-Ranges"} <= set(response.headers)
    summary = image_summary(data)
    expected_png = view["response"]["body_summary"]["png"]
    assert summary["head_hex"] == view["response"]["body_summary"]["head_hex"]
    for key in ("width", "height", "bit_depth", "color_type", "chunk_types"):
        assert summary["png"][key] == expected_png[key]
    assert summary["png"]["text_keys"] == [c["key"] for c in expected_png["text_chunks"]]
    assert json.loads(png_texts(data)["prompt"]) == sequence["post_request_body"]["prompt"]

    preview = fx("view_image_preview_jpeg")
    response = await session.get(comfy_fake.url + "/view", params=preview["request"]["query"])
    data = await response.read()
    assert response.status == 200
    assert response.headers["Content-Type"] == "image/jpeg"
    assert (
        response.headers["Content-Disposition"]
        == preview["response"]["headers"]["Content-Disposition"]
    )
    assert data[:16].hex() == preview["response"]["body_summary"]["head_hex"]
    await ws.close()


async def test_identical_rerun_is_served_from_cache(fx: Any, comfy_fake: Any, session: Any) -> None:
    first, cached = fx("ws_sequence"), fx("ws_sequence_cached")
    ws = await connect(session, comfy_fake, cached["client_id"])
    one, _ = await run(session, comfy_fake, ws, first["post_request_body"])
    two, frames = await run(session, comfy_fake, ws, cached["post_request_body"])
    assert two["number"] == one["number"] + 1
    rec_ids, fake_ids = tokens(
        [first["post_response"]["body"]["prompt_id"], cached["post_response"]["body"]["prompt_id"]],
        [one["prompt_id"], two["prompt_id"]],
    )
    assert [canon(f["message"], fake_ids) for f in frames] == [
        canon(f["message"], rec_ids) for f in cached["frames"]
    ]
    got = await history(session, comfy_fake, two["prompt_id"])
    numbers = {1: "<n>"}
    recorded = fx("history_prompt_cached")["response"]["body"]
    assert canon(got, fake_ids, {two["number"]: "<n>"}) == canon(recorded, rec_ids, numbers)
    assert sorted(p.name for p in comfy_fake.folders.output.iterdir()) == [
        "sparkplane_fixture_00001_.png"
    ]
    await ws.close()


async def test_client_chosen_prompt_id_is_echoed_and_extra_data_kept(
    fx: Any, comfy_fake: Any, session: Any
) -> None:
    recording = fx("prompt_post_with_prompt_id")
    body = recording["request"]["body"]
    ws = await connect(session, comfy_fake, body["client_id"])
    answer, frames = await run(session, comfy_fake, ws, body)
    assert answer == recording["response"]["body"] | {"number": answer["number"]}
    assert frames[-1]["message"]["data"]["prompt_id"] == body["prompt_id"]
    entry = (await history(session, comfy_fake, body["prompt_id"]))[body["prompt_id"]]
    assert entry["prompt"][3] == {**body["extra_data"], "client_id": body["client_id"]}
    saved = comfy_fake.folders.output / entry["outputs"]["3"]["images"][0]["filename"]
    texts = png_texts(saved.read_bytes())
    assert json.loads(texts["workflow"]) == body["extra_data"]["extra_pnginfo"]["workflow"]
    await ws.close()


async def test_front_makes_the_number_negative(fx: Any, comfy_fake: Any, session: Any) -> None:
    ok = fx("prompt_post_ok")["request"]["body"]
    front = fx("prompt_post_front")
    first = await post_prompt(session, comfy_fake, ok)
    second = await post_prompt(session, comfy_fake, front["request"]["body"])
    assert first["number"] == 0
    assert second["number"] == -1
    assert front["response"]["body"]["number"] < 0
    assert set(second) == set(front["response"]["body"])


async def test_every_post_counts_toward_number_even_invalid_ones(
    fx: Any, comfy_fake: Any, session: Any
) -> None:
    invalid = fx("prompt_error_missing_input")["request"]["body"]
    await session.post(comfy_fake.url + "/prompt", json=invalid)
    answer = await post_prompt(session, comfy_fake, fx("prompt_post_ok")["request"]["body"])
    assert answer["number"] == 1
    assert comfy_fake.stats.prompt_bodies[0] == invalid
    assert comfy_fake.stats.accepted == [answer["prompt_id"]]


async def test_partial_errors_run_only_the_valid_branch(
    fx: Any, comfy_fake: Any, session: Any
) -> None:
    recording = fx("prompt_post_partial_errors")
    body = recording["request"]["body"]
    ws = await connect(session, comfy_fake, body["client_id"])
    answer, frames = await run(session, comfy_fake, ws, body)
    expected = recording["response"]["body"]
    assert answer["node_errors"] == expected["node_errors"]
    executing = [f["message"]["data"]["node"] for f in frames if text("executing")(f)]
    assert executing == ["1", "2", None]
    entry = (await history(session, comfy_fake, answer["prompt_id"]))[answer["prompt_id"]]
    assert entry["prompt"][4] == ["2"]
    assert list(entry["outputs"]) == ["2"]
    await ws.close()


async def test_progress_and_legacy_previews_match(fx: Any, comfy_fake: Any, session: Any) -> None:
    sequence = fx("ws_sequence_progress_binary_legacy")
    ws = await connect(session, comfy_fake, sequence["client_id"])
    _, frames = await run(session, comfy_fake, ws, sequence["post_request_body"])
    assert_frames(sequence["frames"], frames)
    binaries = [f for f in frames if f["frame"] == "binary"]
    assert all(f["image"]["head_hex"] == "89504e470d0a1a0a0000000d49484452" for f in binaries)
    progress = [f["message"]["data"] for f in frames if text("progress")(f)]
    assert [(p["value"], p["max"]) for p in progress] == [(0, 3), (1, 3), (2, 3)]
    await ws.close()


async def test_feature_flags_negotiation_and_metadata_previews_match(
    fx: Any, comfy_fake: Any, session: Any
) -> None:
    flags, sequence = fx("ws_feature_flags"), fx("ws_sequence_progress_binary_metadata")
    ws = await connect(session, comfy_fake, sequence["client_id"])
    await ws.send_json(flags["client_sent"][0]["message"])
    await ws.wait_for(text("feature_flags"))
    assert [f["message"] for f in ws.frames] == [f["message"] for f in flags["frames"]]
    # Only the first message negotiates: a second one gets no answer.
    await ws.send_json(flags["client_sent"][0]["message"])
    _, frames = await run(session, comfy_fake, ws, sequence["post_request_body"])
    assert_frames(sequence["frames"], frames)
    binaries = [f for f in frames if f["frame"] == "binary"]
    recorded_binary = next(f for f in sequence["frames"] if f["frame"] == "binary")
    assert {f["metadata_length"] for f in binaries} == {recorded_binary["metadata_length"]}
    assert not any(text("feature_flags")(f) for f in ws.frames[2:])
    await ws.close()


async def test_preview_image_writes_a_temp_file(fx: Any, comfy_fake: Any, session: Any) -> None:
    sequence = fx("ws_sequence_preview_image")
    source = comfy_fake.folders.input / "sparkplane"
    source.mkdir()
    (source / "sparkplane_upload_cf3cda94.png").write_bytes(
        (comfy_fake.folders.input / "example.png").read_bytes()
    )
    ws = await connect(session, comfy_fake, sequence["client_id"])
    _, frames = await run(session, comfy_fake, ws, sequence["post_request_body"])
    assert_frames(sequence["frames"], frames)
    image = next(f for f in frames if text("executed")(f))["message"]["data"]["output"]["images"][0]
    assert re.fullmatch(r"ComfyUI_temp_[a-z]{5}_00001_\.png", image["filename"])
    assert (comfy_fake.folders.temp / image["filename"]).is_file()
    await ws.close()
