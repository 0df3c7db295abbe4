"""The planner's public API, pinned (changing it should be deliberate)."""

from __future__ import annotations

import sparkplane.planner as planner


def test_public_names_exist_and_are_listed() -> None:
    for name in planner.__all__:
        assert hasattr(planner, name), name
    assert {
        "plan",
        "plan_to_dict",
        "load_model",
        "DeviceProfile",
        "profiles_with",
        "SpecError",
    } <= set(planner.__all__)


def test_errors_are_value_errors() -> None:
    assert issubclass(planner.SpecError, ValueError)
    assert issubclass(planner.UnknownModelError, planner.PlannerError)
