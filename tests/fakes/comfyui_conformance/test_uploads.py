"""The recorded upload sequence, then prompts that load the uploads."""

from __future__ import annotations

from typing import Any

import aiohttp

from tests.fakes.comfyui.images import Frame
from tests.fakes.comfyui_conformance.flow import connect, history, run
from tests.fakes.comfyui_conformance.support import (
    assert_frames,
    assert_matches,
    canon,
    tokens,
    unpath,
)

UPLOADS = [
    "upload_image",
    "upload_image_duplicate",
    "upload_image_renamed",
    "upload_image_overwrite",
    "upload_image_subfolder",
    "upload_image_not_an_image",
    "upload_image_missing_field",
]


def png_of_size(color: tuple[int, int, int], size: int) -> bytes:
    """A valid PNG padded after IEND to the recorded byte size."""
    data = Frame.solid(4, 4, color).png()
    assert len(data) <= size
    return data + b"\0" * (size - len(data))


def form_for(request: dict[str, Any]) -> aiohttp.FormData:
    """The multipart body a recorded upload describes (contents made to its sizes)."""
    form = aiohttp.FormData()
    for name, value in request["form"].items():
        if isinstance(value, dict):
            if value["byte_size"] < 40:
                content = b"this is not an image\n\0\0"[: value["byte_size"]]
            else:
                content = png_of_size((value["byte_size"], 10, 10), value["byte_size"])
            form.add_field(
                name, content, filename=value["filename"], content_type=value["content_type"]
            )
        else:
            form.add_field(name, value)
    return form


async def upload_all(fx: Any, fake: Any, session: Any) -> None:
    for name in UPLOADS:
        recording = fx(name)
        response = await session.post(
            fake.url + "/upload/image", data=form_for(recording["request"])
        )
        await assert_matches(response, recording)


async def test_upload_sequence_matches_recordings(fx: Any, comfy_fake: Any, session: Any) -> None:
    await upload_all(fx, comfy_fake, session)
    written = [(u.name, u.subfolder, u.written) for u in comfy_fake.stats.uploads]
    assert written == [
        ("sparkplane_upload_cf3cda94.png", "", True),
        ("sparkplane_upload_cf3cda94.png", "", False),
        ("sparkplane_upload_cf3cda94 (1).png", "", True),
        ("sparkplane_upload_cf3cda94.png", "", True),
        ("sparkplane_upload_cf3cda94.png", "sparkplane", True),
        ("sparkplane_not_an_image_dcf48c31.png", "", True),
    ]
    folder = comfy_fake.folders.input
    assert (folder / "sparkplane_upload_cf3cda94.png").read_bytes() == (
        folder / "sparkplane_upload_cf3cda94 (1).png"
    ).read_bytes()
    info = await (await session.get(comfy_fake.url + "/object_info/LoadImage")).json()
    assert info["LoadImage"]["input"]["required"]["image"][0] == [
        "example.png",
        "sparkplane_not_an_image_dcf48c31.png",
        "sparkplane_upload_cf3cda94 (1).png",
        "sparkplane_upload_cf3cda94.png",
    ]


async def test_loading_uploads_matches_recordings(fx: Any, comfy_fake: Any, session: Any) -> None:
    await upload_all(fx, comfy_fake, session)
    client_id = fx("ws_sequence_execution_error")["client_id"]
    ws = await connect(session, comfy_fake, client_id)

    loaded = fx("prompt_post_loadimage")
    answer, _ = await run(session, comfy_fake, ws, loaded["request"]["body"])
    rec_ids, fake_ids = tokens([loaded["response"]["body"]["prompt_id"]], [answer["prompt_id"]])
    numbers = ({loaded["response"]["body"]["number"]: "<n>"}, {answer["number"]: "<n>"})
    got = await history(session, comfy_fake, answer["prompt_id"])
    recorded = fx("history_loadimage")["response"]["body"]
    assert canon(got, fake_ids, numbers[1]) == canon(recorded, rec_ids, numbers[0])

    preview = fx("prompt_post_loadimage_subfolder")
    answer, frames = await run(session, comfy_fake, ws, preview["request"]["body"])
    assert answer.keys() == preview["response"]["body"].keys()
    assert_frames(fx("ws_sequence_preview_image")["frames"], frames)

    failing = fx("ws_sequence_execution_error")
    answer, frames = await run(session, comfy_fake, ws, failing["post_request_body"])
    assert answer["node_errors"] == {}
    assert_frames(failing["frames"], frames)
    rec_ids, fake_ids = tokens(
        [failing["post_response"]["body"]["prompt_id"]], [answer["prompt_id"]]
    )
    error = unpath(canon(frames[-3]["message"], fake_ids), comfy_fake)
    assert error == unpath(canon(failing["frames"][-3]["message"], rec_ids), comfy_fake)
    got = unpath(await history(session, comfy_fake, answer["prompt_id"]), comfy_fake)
    recorded = unpath(fx("history_execution_error")["response"]["body"], comfy_fake)
    numbers = ({failing["post_response"]["body"]["number"]: "<n>"}, {answer["number"]: "<n>"})
    assert canon(got, fake_ids, numbers[1]) == canon(recorded, rec_ids, numbers[0])
    await ws.close()


async def test_upload_edge_cases(comfy_fake: Any, session: Any) -> None:
    url = comfy_fake.url + "/upload/image"
    escaping = aiohttp.FormData()
    escaping.add_field("image", b"x", filename="a.png")
    escaping.add_field("subfolder", "../outside")
    assert (await session.post(url, data=escaping)).status == 400
    bad_type = aiohttp.FormData()
    bad_type.add_field("image", b"x", filename="a.png")
    bad_type.add_field("type", "models")
    assert (await session.post(url, data=bad_type)).status == 500
    to_output = aiohttp.FormData()
    to_output.add_field("image", b"x", filename="a.png")
    to_output.add_field("type", "output")
    response = await session.post(url, data=to_output)
    assert await response.json() == {"name": "a.png", "subfolder": "", "type": "output"}
    assert (comfy_fake.folders.output / "a.png").read_bytes() == b"x"
