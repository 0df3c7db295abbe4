"""The recorded queue scenario: a long job, three more prompts, delete, clear, interrupt."""

from __future__ import annotations

from typing import Any

from tests.fakes.comfyui.config import FakeComfyConfig
from tests.fakes.comfyui_conformance.flow import connect, history, post_prompt
from tests.fakes.comfyui_conformance.support import assert_frames, assert_matches, canon, done, text

# SaveImageWebsocket works 1 s before its first progress step, which is when the
# recording queued, deleted and cleared the other prompts.
TIMING = FakeComfyConfig(
    node_seconds={"EmptyImage": 0.05, "SaveImageWebsocket": 1.0},
    step_seconds={"SaveImageWebsocket": 0.004},
)


async def test_queue_operations_and_interrupt_match_recordings(
    fx: Any, comfy_fake_factory: Any, session: Any
) -> None:
    fake = await comfy_fake_factory(TIMING)
    sequence = fx("ws_sequence_interrupted")
    busy = fx("queue_busy")["response"]["body"]
    client_id = sequence["client_id"]
    ws = await connect(session, fake, client_id)
    start = len(ws.frames)
    long_job = await post_prompt(session, fake, sequence["post_request_body"])
    await ws.wait_for(text("executing", node="3"), start=start)

    # Pending items were posted as 23, 24 and then -25 (front); /queue shows heap order.
    by_number = {item[0]: item for item in busy["queue_pending"]}
    posted = [long_job]
    for number in (23, 24):
        posted.append(
            await post_prompt(
                session, fake, {"prompt": by_number[number][2], "client_id": client_id}
            )
        )
    posted.append(await post_prompt(session, fake, fx("prompt_post_front")["request"]["body"]))
    recorded = [busy["queue_running"][0]] + [by_number[n] for n in (23, 24, -25)]
    rec_ids = {item[1]: f"<prompt {i}>" for i, item in enumerate(recorded)}
    rec_numbers = {item[0]: f"<n {i}>" for i, item in enumerate(recorded)}
    fake_ids = {answer["prompt_id"]: f"<prompt {i}>" for i, answer in enumerate(posted)}
    fake_numbers = {answer["number"]: f"<n {i}>" for i, answer in enumerate(posted)}
    assert [a["number"] for a in posted] == [0, 1, 2, -3]

    def same(body: Any) -> Any:
        ids, numbers = (
            (fake_ids, fake_numbers)
            if long_job["prompt_id"] in str(body)
            else (rec_ids, rec_numbers)
        )
        return canon(body, ids, numbers)

    await assert_matches(await session.get(fake.url + "/queue"), fx("queue_busy"), fix=same)
    await assert_matches(await session.get(fake.url + "/prompt"), fx("prompt_get_busy"))
    delete = fx("queue_delete")
    response = await session.post(fake.url + "/queue", json={"delete": [posted[1]["prompt_id"]]})
    await assert_matches(response, delete)
    await assert_matches(await session.get(fake.url + "/queue"), fx("queue_after_delete"), fix=same)
    response = await session.post(fake.url + "/queue", json={"delete": [long_job["prompt_id"]]})
    await assert_matches(response, fx("queue_delete_running"))
    response = await session.post(fake.url + "/queue", json=fx("queue_clear")["request"]["body"])
    await assert_matches(response, fx("queue_clear"))
    await assert_matches(await session.get(fake.url + "/queue"), fx("queue_after_clear"), fix=same)

    response = await session.post(
        fake.url + "/interrupt", json={"prompt_id": posted[1]["prompt_id"]}
    )
    await assert_matches(response, fx("interrupt_not_running"))
    await ws.wait_for(
        lambda f: text("progress")(f) and f["message"]["data"]["value"] >= 8, start=start
    )
    response = await session.post(
        fake.url + "/interrupt", json={"prompt_id": long_job["prompt_id"]}
    )
    await assert_matches(response, fx("interrupt"))
    end = await ws.wait_for(done(long_job["prompt_id"]), start=start)
    assert_frames(sequence["frames"], ws.frames[start : end + 1])

    got = await history(session, fake, long_job["prompt_id"])
    recorded_history = fx("history_interrupted")["response"]["body"]
    assert canon(got, fake_ids, fake_numbers) == canon(recorded_history, rec_ids, rec_numbers)
    assert [job.status_str for job in fake.stats.jobs] == ["error"]
    await ws.close()


async def test_deleting_the_last_pending_prompt_broadcasts_status_twice(
    fx: Any, comfy_fake_factory: Any, session: Any
) -> None:
    fake = await comfy_fake_factory(TIMING)
    sequence = fx("ws_sequence_interrupted")
    ws = await connect(session, fake, sequence["client_id"])
    long_job = await post_prompt(session, fake, sequence["post_request_body"])
    await ws.wait_for(text("executing", node="3"))
    pending = await post_prompt(session, fake, fx("prompt_post_ok")["request"]["body"])
    start = 1 + await ws.wait_for(text("status", status={"exec_info": {"queue_remaining": 2}}))
    await session.post(fake.url + "/queue", json={"delete": [pending["prompt_id"]]})
    await ws.wait_for(text("status"), start=start)
    second = await ws.wait_for(text("status"), start=start + 1)
    assert [f["message"]["data"]["status"]["exec_info"] for f in ws.frames[start : second + 1]] == [
        {"queue_remaining": 1},
        {"queue_remaining": 1},
    ]
    await session.post(fake.url + "/interrupt", json={"prompt_id": long_job["prompt_id"]})
    await ws.wait_for(done(long_job["prompt_id"]))
    await ws.close()
