"""An image batch split across devices, each part within its device's free memory."""

from __future__ import annotations

from typing import Any

from sparkplane.fleet.snapshot import GIB, DeviceState, FleetSnapshot, Slot, acquire
from sparkplane.scheduler.choose import Ask, Tuning, choose
from sparkplane.scheduler.policy import Policy, Refusal
from sparkplane.scheduler.split import split

TUNING = Tuning()


def image_slot(
    name: str, *, seconds: float, gib: float = 24, model_gib: float = 8, **kw: Any
) -> Slot:
    dev = DeviceState(name=name, memory_bytes=int(gib * GIB), can_load=True)
    s = Slot(device=dev, model="sdxl", bytes=int(model_gib * GIB), image_s=seconds, **kw)
    dev.slots["sdxl"] = s
    return s


def snap(*slots: Slot) -> FleetSnapshot:
    return FleetSnapshot.build((s.device for s in slots), {"sdxl": list(slots)})


def counts(ask: Ask, snapshot: FleetSnapshot) -> dict[str, int]:
    return {p.plan.device: p.images for p in split(ask, snapshot, Policy(), TUNING)}


def test_two_equal_idle_devices_take_half_each_and_finish_in_half_the_time() -> None:
    routes = snap(
        image_slot("a", seconds=6, resident=True), image_slot("b", seconds=6, resident=True)
    )
    ask = Ask("sdxl", images=8)
    parts = split(ask, routes, Policy(), TUNING)
    assert {p.plan.device: p.images for p in parts} == {"a": 4, "b": 4}
    whole = choose(ask, routes, Policy(), TUNING).best
    assert whole is not None
    assert max(p.eta_s for p in parts) == whole.eta_s / 2  # 24 s instead of 48 s


def test_a_faster_device_takes_more_of_the_batch() -> None:
    routes = snap(
        image_slot("4090", seconds=3, resident=True), image_slot("spark", seconds=6, resident=True)
    )
    assert counts(Ask("sdxl", images=9), routes) == {"4090": 6, "spark": 3}  # both done at 18 s


def test_each_part_fits_the_free_memory_of_its_device() -> None:
    # 1 GiB of activations per extra image: 10 GiB free on "small" holds a batch of 11,
    # 2 GiB free on "tight" a batch of 3, however fast it is.
    small = image_slot("small", seconds=6, gib=18, resident=True, image_bytes=GIB)
    tight = image_slot("tight", seconds=1, gib=10, resident=True, image_bytes=GIB)
    assert counts(Ask("sdxl", images=12), snap(small, tight)) == {"tight": 3, "small": 9}


def test_a_batch_too_big_even_spread_out_runs_whole_as_planned() -> None:
    a = image_slot("a", seconds=6, gib=10, resident=True, image_bytes=GIB)
    b = image_slot("b", seconds=6, gib=10, resident=True, image_bytes=GIB)
    assert split(Ask("sdxl", images=20), snap(a, b), Policy(), TUNING) == ()


def test_one_image_one_device_or_a_device_the_tenant_may_not_use_is_not_split() -> None:
    a, b = image_slot("a", seconds=6, resident=True), image_slot("b", seconds=6, resident=True)
    assert split(Ask("sdxl", images=1), snap(a, b), Policy(), TUNING) == ()
    assert split(Ask("sdxl", images=8), snap(a), Policy(), TUNING) == ()
    only_a = Policy(allowed_devices=frozenset({"a"}))
    assert split(Ask("sdxl", images=8), snap(a, b), only_a, TUNING) == ()


def test_a_cold_device_gets_images_only_if_its_load_pays_off() -> None:
    warm = image_slot("warm", seconds=6, resident=True)
    cold = image_slot("cold", seconds=6, load_s=30)
    assert split(Ask("sdxl", images=4), snap(warm, cold), Policy(), TUNING) == ()  # 24 s alone
    parts = counts(Ask("sdxl", images=20), snap(warm, cold))
    assert parts == {"warm": 13, "cold": 7}  # 78 s and 30 + 42 s instead of 120 s


def test_image_jobs_leave_half_the_places_of_a_device_that_also_serves_chat() -> None:
    shared = image_slot("spark", seconds=60, resident=True)
    shared.device.parallel = 4
    chat = Slot(device=shared.device, model="llama", decode_tps=40, resident=True)
    shared.device.slots["llama"] = chat
    routes = FleetSnapshot.build([shared.device], {"sdxl": [shared], "llama": [chat]})
    image = Ask("sdxl", images=1)
    acquire(shared, 60.0, 0.0)
    best = choose(image, routes, Policy(), TUNING).best
    assert best is not None
    assert best.device == "spark"
    acquire(shared, 60.0, 0.0)
    # Two images run: two of the four places are kept for chat, so a third image
    # waits for an image to end while a chat request still starts at once.
    assert choose(image, routes, Policy(), TUNING).refusal is Refusal.NO_ROOM
    plan = choose(Ask("llama"), routes, Policy(), TUNING).best
    assert plan is not None
    assert (plan.device, plan.start_s) == ("spark", 0.0)


def test_a_device_that_serves_only_images_gives_them_every_place() -> None:
    comfy = image_slot("comfy", seconds=60, resident=True)
    comfy.device.parallel = 4
    routes = snap(comfy)
    for _ in range(3):
        acquire(comfy, 60.0, 0.0)
    best = choose(Ask("sdxl", images=1), routes, Policy(), TUNING).best
    assert best is not None
    assert best.device == "comfy"
