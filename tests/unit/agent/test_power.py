"""Which watts a device's usage is priced with: its node's measured power, else
its set figure, else its planner profile's."""

from __future__ import annotations

from sparkplane.planner import builtin_profiles
from sparkplane.runtime import device_power
from sparkplane.usage.meter import Power
from tests.fakes.fleet import FakeFleet, record


def test_measured_power_comes_first_then_the_set_figure_then_the_profile() -> None:
    fake = FakeFleet()
    fake.fleet.sync(
        [
            record("node-dep", extra={"measured_power_w": 61.1, "power_w": 240}),
            record("set", extra={"power_w": 240, "profile": "dgx-spark"}),
            record("profiled", extra={"profile": "dgx-spark"}),
            record("bare"),
            record("odd", extra={"profile": "no-such-profile"}),
        ]
    )
    profiles = builtin_profiles()
    power_of = device_power(fake.fleet, profiles)
    spark_w = profiles["dgx-spark"].power_w
    assert power_of("node-dep") == Power(61.1, "measured")
    assert power_of("set") == Power(240.0, "configured")
    assert power_of("profiled") == Power(spark_w, "planner")
    assert power_of("bare") is None
    assert power_of("odd") is None
    assert power_of("unknown-device") is None
