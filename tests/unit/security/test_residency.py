"""Data residency as a property: over random fleets, failures and tenant policies,
no request ever reaches a device the policy forbids, and with no allowed device
left the answer is a refusal naming the policy, not a silent cloud call."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from hypothesis import given, settings
from hypothesis import strategies as st

from sparkplane.backends.base import DeviceUnreachable, InferenceRequest, Operation, Timeouts
from sparkplane.errors import NoHealthyDevice, PolicyForbids, SparkplaneError
from sparkplane.metrics import Metrics
from sparkplane.scheduler.budget import RetryBudget
from sparkplane.scheduler.dispatch import GatewayLimits
from sparkplane.scheduler.policy import Policy
from tests.fakes.backend import FakeBackend, FakeClock, Reply
from tests.fakes.fleet import FakeFleet, record
from tests.support import scheduling

LIMITS = GatewayLimits(
    max_attempts=6, timeouts=Timeouts(connect=1, first_byte=1, idle=1, response=1), total=None
)
REQUEST = InferenceRequest(op=Operation.CHAT, model="m", raw=b'{"model":"m"}', stream=False)


@dataclass(frozen=True)
class Box:
    name: str
    off_prem: bool
    healthy: bool  # breaker closed
    failure: str  # "ok", "5xx" or "down"
    priority: int


boxes = st.lists(
    st.builds(
        Box,
        name=st.sampled_from(["spark", "rtx4090", "h100", "mac", "cloud-a", "cloud-b"]),
        off_prem=st.booleans(),
        healthy=st.booleans(),
        failure=st.sampled_from(["ok", "5xx", "down"]),
        priority=st.integers(-2, 2),
    ),
    min_size=1,
    max_size=6,
    unique_by=lambda b: b.name,
)
policies = st.builds(
    Policy,
    allow_off_prem=st.booleans(),
    allowed_devices=st.one_of(
        st.none(),
        st.frozensets(st.sampled_from(["spark", "rtx4090", "h100", "mac", "cloud-a", "cloud-b"])),
    ),
    owner=st.just("tenant 'acme'"),
)


def _reply(failure: str) -> Reply:
    if failure == "5xx":
        return Reply(status=500, body=b'{"error": {"message": "boom"}}')
    if failure == "down":
        return Reply(raises=DeviceUnreachable("down"))
    return Reply()


async def _run(fleet_boxes: list[Box], policy: Policy) -> tuple[dict[str, int], str]:
    backends = {b.name: FakeBackend(replies=[_reply(b.failure)]) for b in fleet_boxes}
    clock = FakeClock()
    fake = FakeFleet(backends, threshold=1, cooldown_s=60)
    fake.fleet.sync(
        record(b.name, ("m",), priority=b.priority, off_prem=b.off_prem) for b in fleet_boxes
    )
    for b in fleet_boxes:
        if not b.healthy:
            fake.fleet.by_name(b.name).breaker.trip(clock())  # type: ignore[union-attr]
    dispatcher, *_ = scheduling.dispatcher(
        fake.fleet, LIMITS, RetryBudget(1.0, 10), Metrics(fake.fleet.devices), clock=clock
    )
    try:
        answer = await dispatcher.open(REQUEST, "m", policy)
        dispatcher.finish(answer)
        outcome = f"answered by {answer.device.name} ({answer.status})"
    except SparkplaneError as exc:
        outcome = exc.code
        if isinstance(exc, PolicyForbids) and "tenant 'acme'" not in exc.message:
            outcome = "refusal does not name the policy"
    return {name: len(b.sent) for name, b in backends.items()}, outcome


@settings(max_examples=300, deadline=None)
@given(fleet_boxes=boxes, policy=policies)
def test_no_request_reaches_a_forbidden_device(fleet_boxes: list[Box], policy: Policy) -> None:
    sent, outcome = asyncio.run(_run(fleet_boxes, policy))

    def permitted(b: Box) -> bool:
        return policy.allowed_devices is None or b.name in policy.allowed_devices

    local_available = [b for b in fleet_boxes if permitted(b) and b.healthy and not b.off_prem]
    for b in fleet_boxes:
        if not sent[b.name]:
            continue
        assert permitted(b), f"{b.name} is outside the allow-list but was sent {outcome}"
        assert b.healthy, f"{b.name} has an open breaker but was sent a request"
        if b.off_prem:
            assert policy.allow_off_prem, f"off-prem {b.name} used without allow_off_prem"
            assert not local_available, f"off-prem {b.name} used while a local device was free"

    usable = [b for b in fleet_boxes if permitted(b) and b.healthy]
    if policy.allow_off_prem is False:
        usable = [b for b in usable if not b.off_prem]
    if not usable:
        assert sum(sent.values()) == 0
        assert outcome in (PolicyForbids.code, NoHealthyDevice.code)
