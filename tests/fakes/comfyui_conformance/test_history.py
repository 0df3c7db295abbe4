"""History paging, delete and clear, after the prompts the recordings ran."""

from __future__ import annotations

from typing import Any

from tests.fakes.comfyui.config import FakeComfyConfig
from tests.fakes.comfyui_conformance.flow import post_prompt
from tests.fakes.comfyui_conformance.support import assert_matches, canon


async def test_history_paging_delete_and_clear_match_recordings(
    fx: Any, comfy_fake: Any, session: Any
) -> None:
    reconnect = fx("ws_reconnect_during_execution")["case_b_reconnect_during_progress"]
    bodies = [
        fx("prompt_post_ok")["request"]["body"],
        fx("prompt_post_cached")["request"]["body"],
        fx("prompt_post_with_prompt_id")["request"]["body"],
        reconnect["post_request_body"],
        fx("ws_duplicate_client_id")["post_request_body"],
    ]
    recorded_answers = [
        fx("prompt_post_ok")["response"]["body"],
        fx("prompt_post_cached")["response"]["body"],
        fx("prompt_post_with_prompt_id")["response"]["body"],
        reconnect["post_response"],
        fx("ws_duplicate_client_id")["post_response"],
    ]
    answers = []
    for body in bodies:
        answers.append(await post_prompt(session, comfy_fake, body))
        await comfy_fake.wait_idle()
    rec_ids = {a["prompt_id"]: f"<prompt {i}>" for i, a in enumerate(recorded_answers)}
    fake_ids = {a["prompt_id"]: f"<prompt {i}>" for i, a in enumerate(answers)}
    rec_numbers = {a["number"]: f"<n {i}>" for i, a in enumerate(recorded_answers)}
    fake_numbers = {a["number"]: f"<n {i}>" for i, a in enumerate(answers)}

    def same(body: Any) -> Any:
        ours = any(pid in body for pid in fake_ids)
        return canon(body, *((fake_ids, fake_numbers) if ours else (rec_ids, rec_numbers)))

    for name in ("history_max_items", "history_max_items_offset"):
        recording = fx(name)
        response = await session.get(
            comfy_fake.url + "/history", params=recording["request"]["query"]
        )
        await assert_matches(response, recording, fix=same)

    first = answers[0]["prompt_id"]
    response = await session.post(comfy_fake.url + "/history", json={"delete": [first]})
    await assert_matches(response, fx("history_delete"))
    await assert_matches(
        await session.get(f"{comfy_fake.url}/history/{first}"), fx("history_after_delete")
    )
    remaining = await (await session.get(comfy_fake.url + "/history")).json()
    assert list(remaining) == [a["prompt_id"] for a in answers[1:]]
    response = await session.post(
        comfy_fake.url + "/history", json=fx("history_clear")["request"]["body"]
    )
    await assert_matches(response, fx("history_clear"))
    await assert_matches(await session.get(comfy_fake.url + "/history"), fx("history_after_clear"))


async def test_running_prompt_has_no_history_yet(
    fx: Any, comfy_fake_factory: Any, session: Any
) -> None:
    fake = await comfy_fake_factory(FakeComfyConfig(node_seconds={"EmptyImage": 0.3}))
    answer = await post_prompt(session, fake, fx("prompt_post_ok")["request"]["body"])
    running = await (await session.get(f"{fake.url}/history/{answer['prompt_id']}")).json()
    await fake.wait_idle()
    finished = await (await session.get(f"{fake.url}/history/{answer['prompt_id']}")).json()
    assert running == {}
    assert finished[answer["prompt_id"]]["status"]["completed"] is True
