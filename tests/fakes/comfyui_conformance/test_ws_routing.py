"""Who receives which frames: observers, duplicate clientIds, reconnects, Origin."""

from __future__ import annotations

import asyncio
from typing import Any

import aiohttp
import pytest

from tests.fakes.comfyui.config import FakeComfyConfig, Fault
from tests.fakes.comfyui_conformance.flow import connect, history, post_prompt
from tests.fakes.comfyui_conformance.support import WsRecorder, assert_frames, done, text

# Node 1 runs long enough to reconnect inside it; node 3 streams 256 progress steps.
LONG_JOB = FakeComfyConfig(
    node_seconds={"EmptyImage": 0.8},
    step_seconds={"SaveImageWebsocket": 0.004},
)
IDLE = {"exec_info": {"queue_remaining": 0}}


async def test_observer_sees_progress_of_anonymous_prompts_only(
    fx: Any, comfy_fake: Any, session: Any
) -> None:
    recording = fx("ws_observer")
    observer_id = recording["observer_ws_url"].split("clientId=")[1]
    observer = await connect(session, comfy_fake, observer_id)
    expected = []
    for case in ("case_a_prompt_without_client_id", "case_b_prompt_with_other_client_id"):
        start = len(observer.frames)
        await post_prompt(session, comfy_fake, recording[case]["post_request_body"])
        await observer.wait_for(text("status", status=IDLE), start=start)
        expected += recording[case]["frames"]
    await asyncio.sleep(0.1)  # nothing else may follow
    assert_frames(expected, observer.frames[1:])
    await observer.close()


async def test_only_the_newest_socket_of_a_client_id_gets_frames(
    fx: Any, comfy_fake: Any, session: Any
) -> None:
    recording = fx("ws_duplicate_client_id")
    first = await connect(session, comfy_fake, recording["client_id"])
    second = await connect(session, comfy_fake, recording["client_id"])
    answer = await post_prompt(session, comfy_fake, recording["post_request_body"])
    await second.wait_for(done(answer["prompt_id"]))
    assert_frames(recording["frames_socket_a_first"], first.frames)
    assert_frames(recording["frames_socket_b_second"], second.frames)
    assert not first.ws.closed
    await first.close()
    await second.close()


async def test_closing_an_old_duplicate_unregisters_the_client_id(
    fx: Any, comfy_fake: Any, session: Any
) -> None:
    # Not recorded: ComfyUI pops its socket table by clientId when any socket closes.
    client_id = fx("ws_duplicate_client_id")["client_id"]
    first = await connect(session, comfy_fake, client_id)
    second = await connect(session, comfy_fake, client_id)
    await first.close()
    await asyncio.sleep(0.05)
    await post_prompt(
        session, comfy_fake, fx("prompt_post_ok")["request"]["body"] | {"client_id": client_id}
    )
    await comfy_fake.wait_idle()
    await asyncio.sleep(0.1)
    assert len(second.frames) == 1
    await second.close()


async def test_reconnect_during_the_first_node_replays_executing(
    fx: Any, comfy_fake_factory: Any, session: Any
) -> None:
    case = fx("ws_reconnect_during_execution")["case_a_reconnect_during_node_1"]
    fake = await comfy_fake_factory(LONG_JOB)
    first = await connect(session, fake, case["client_id"])
    answer = await post_prompt(session, fake, case["post_request_body"])
    await first.wait_for(text("executing", node="1"))
    await first.close()
    await asyncio.sleep(0.2)
    second = await connect(session, fake, case["client_id"])
    await second.wait_for(done(answer["prompt_id"]), within_s=20)
    assert_frames(case["frames_first_socket"], first.frames)
    assert_frames(case["frames_second_socket"], second.frames)
    entry = (await history(session, fake, answer["prompt_id"]))[answer["prompt_id"]]
    assert entry["status"]["status_str"] == case["history_status_after"]
    await second.close()


async def test_reconnect_during_progress_gets_the_rest(
    fx: Any, comfy_fake_factory: Any, session: Any
) -> None:
    case = fx("ws_reconnect_during_execution")["case_b_reconnect_during_progress"]
    fake = await comfy_fake_factory(LONG_JOB)
    first = await connect(session, fake, case["client_id"])
    answer = await post_prompt(session, fake, case["post_request_body"])
    await first.wait_for(
        lambda f: text("progress")(f) and f["message"]["data"]["value"] >= 10, within_s=20
    )
    await first.close()
    await asyncio.sleep(0.2)
    second = await connect(session, fake, case["client_id"])
    await second.wait_for(done(answer["prompt_id"]), within_s=20)
    assert_frames(case["frames_first_socket"], first.frames, loose_tail=True)
    assert_frames(case["frames_second_socket"], second.frames)
    await second.close()


async def test_websocket_handshake_obeys_the_origin_check(
    fx: Any, comfy_fake: Any, session: Any
) -> None:
    recording = fx("origin_mismatch_ws")
    with pytest.raises(aiohttp.WSServerHandshakeError) as error:
        await session.ws_connect(comfy_fake.ws_url("x"), headers=recording["request"]["headers"])
    assert error.value.status == recording["handshake_result"]["status"]


async def test_socket_without_client_id_gets_a_generated_sid(comfy_fake: Any, session: Any) -> None:
    ws = await WsRecorder.connect(session, comfy_fake.ws_url())
    await ws.wait_for(text("status"))
    sid = ws.frames[0]["message"]["data"]["sid"]
    assert len(sid) == 32
    assert int(sid, 16) >= 0
    await ws.close()


async def test_interrupting_an_anonymous_prompt_tells_every_socket(
    comfy_fake_factory: Any, session: Any
) -> None:
    fault = Fault("hang", node_class="ImageInvert", interruptible=True)
    fake = await comfy_fake_factory(FakeComfyConfig(faults=[fault]))
    observer = await connect(session, fake, "observer")
    prompt = {
        "1": {
            "class_type": "EmptyImage",
            "inputs": {"width": 8, "height": 8, "batch_size": 1, "color": 1},
        },
        "2": {"class_type": "ImageInvert", "inputs": {"image": ["1", 0]}},
        "3": {"class_type": "PreviewImage", "inputs": {"images": ["2", 0]}},
    }
    await post_prompt(session, fake, {"prompt": prompt})
    await observer.wait_for(
        lambda f: text("progress_state")(f) and "2" in f["message"]["data"]["nodes"]
    )
    await session.post(fake.url + "/interrupt")
    end = await observer.wait_for(text("status", status=IDLE), start=1)
    kinds = [f["message"]["type"] for f in observer.frames[: end + 1]]
    assert "execution_interrupted" in kinds
    assert "executing" not in kinds
    await observer.close()
