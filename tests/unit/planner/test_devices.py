"""Device profiles: built-ins, OS reserve, user profiles merged over built-ins."""

from __future__ import annotations

import pytest

from sparkplane.planner import (
    InvalidRequestError,
    UnknownDeviceError,
    builtin_profiles,
    find_device,
    profiles_with,
)
from sparkplane.planner.devices import GIB

IDS = ["dgx-spark", "rtx-4090", "rtx-5090", "h100-80gb", "h200", "a100-80gb", "l40s"]
IDS += ["m2-ultra", "m3-ultra"]


def test_builtin_ids_and_fields() -> None:
    profiles = builtin_profiles()
    assert set(IDS) <= set(profiles)
    for p in profiles.values():
        assert p.memory_gib > 0
        assert p.bandwidth_gbs > 0
        assert p.power_w > 0
        assert p.tflops.get("bf16", 0) > 0


def test_unified_memory_keeps_an_os_reserve() -> None:
    spark = builtin_profiles()["dgx-spark"]
    assert spark.usable_bytes == int((spark.memory_gib - spark.os_reserve_gib) * GIB)
    assert spark.usable_bytes < spark.memory_bytes
    assert builtin_profiles()["rtx-4090"].usable_bytes == 24 * GIB


def test_user_profiles_override_and_add() -> None:
    merged = profiles_with(
        [
            {"id": "dgx-spark", "os_reserve_gib": 4},
            {"id": "my-3090", "name": "RTX 3090", "memory_gib": 24, "bandwidth_gbs": 936},
        ]
    )
    assert merged["dgx-spark"].os_reserve_gib == 4
    assert merged["dgx-spark"].bandwidth_gbs == 273  # untouched fields stay
    assert merged["my-3090"].memory_gib == 24
    assert "dgx-spark" in builtin_profiles()
    assert builtin_profiles()["dgx-spark"].os_reserve_gib != 4


@pytest.mark.parametrize(
    "bad",
    [
        {"name": "no id", "memory_gib": 1, "bandwidth_gbs": 1},
        {"id": "x", "memory_gib": -1, "bandwidth_gbs": 1},
        {"id": "x", "memory_gib": 8},
        {"id": "dgx-spark", "colour": "gold"},
    ],
)
def test_invalid_user_profiles(bad: dict[str, object]) -> None:
    with pytest.raises(InvalidRequestError):
        profiles_with([bad])


def test_find_device_by_alias_and_suggest() -> None:
    profiles = builtin_profiles()
    assert find_device(profiles, "mac_studio_m3_ultra").id == "m3-ultra"
    assert find_device(profiles, "DGX_Spark").id == "dgx-spark"
    with pytest.raises(UnknownDeviceError) as info:
        find_device(profiles, "rtx-4080")
    assert "rtx-4090" in info.value.suggestions


def test_missing_precisions_fall_back_to_wider_ones() -> None:
    p = builtin_profiles()
    assert p["rtx-4090"].compute("fp4") == ("fp8", 330.3)
    assert p["a100-80gb"].compute("fp8")[0] == "bf16"
    assert p["m3-ultra"].compute("int8")[0] == "bf16"
