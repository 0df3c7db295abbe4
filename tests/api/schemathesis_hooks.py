"""Schemathesis hooks for tests/api/test_schemathesis.py, loaded by the `st run`
subprocess through SCHEMATHESIS_HOOKS.

Random strings almost never name a model or device that exists, so most
inference requests would end in 404 before reaching an engine. For about half
of the schema-valid cases hypothesis generates, these hooks put the registered
model, device or engine URL in place of the random one, so those requests
really go through to the engine. Schema-invalid cases are left alone: steering
them could make them valid. And the registered device is kept out of reach of
PATCH and DELETE (the stateful phase learns its name from the device list),
so inference for its model keeps a device to go to.
"""

from __future__ import annotations

import os
import zlib

import hypothesis.strategies as st
import schemathesis
from schemathesis import GenerationMode

MODEL = "fake-model"
DEVICE = "fake1"
ENGINE_URL_ENV = "SP_TEST_ENGINE_URL"
PROTECTED_STAND_IN = "not-" + DEVICE
DEVICE_NAMES = st.from_regex(r"[a-z][a-z0-9-]{0,30}", fullmatch=True)
# Device operations that leave the device as it was: the registered device
# must stay enabled, or inference for its model would (rightly) answer 503.
READ_ONLY_DEVICE_OPERATIONS = frozenset(
    {("GET", "/api/devices/{name}"), ("POST", "/api/devices/{name}/probe")}
)


def _steer(case: schemathesis.Case, name: str) -> schemathesis.Case:
    body = case.body
    if isinstance(body, dict):
        engine_url = os.environ.get(ENGINE_URL_ENV)
        if "model" in body:
            case.body = {**body, "model": MODEL}
        elif "url" in body and engine_url:  # device registration: the engine itself
            case.body = {**body, "url": engine_url, "name": name}
    params = case.path_parameters
    if isinstance(params, dict):
        operation = (case.operation.method.upper(), case.operation.path)
        if "model" in params:
            case.path_parameters = {**params, "model": MODEL}
        elif "name" in params and operation in READ_ONLY_DEVICE_OPERATIONS:
            case.path_parameters = {**params, "name": DEVICE}
    return case


def _positive_in(case: schemathesis.Case, phase: str) -> bool:
    meta = case.meta
    return (
        meta is not None
        and meta.generation.mode is GenerationMode.POSITIVE
        and meta.phase.name == phase
    )


@schemathesis.hook
def flatmap_case(
    context: schemathesis.HookContext, case: schemathesis.Case
) -> st.SearchStrategy[schemathesis.Case]:
    """Half the positive fuzzing cases name the real model, device or engine.

    Only fuzzing: stateful links would carry the real device on to PATCH and DELETE.
    """
    if not _positive_in(case, "fuzzing"):
        return st.just(case)
    return st.tuples(st.booleans(), DEVICE_NAMES).map(
        lambda drawn: _steer(case, drawn[1]) if drawn[0] else case
    )


@schemathesis.hook
def map_case(context: schemathesis.HookContext, case: schemathesis.Case) -> schemathesis.Case:
    """Half the positive coverage cases (boundary values) name the real model or engine.

    The coverage phase is deterministic, so the half is picked by a checksum.
    """
    if not _positive_in(case, "coverage"):
        return case
    digest = zlib.crc32(repr((case.method, case.path_parameters, case.body)).encode())
    return _steer(case, f"cov-{digest:x}") if digest % 2 == 0 else case


@schemathesis.hook
def before_call(
    context: schemathesis.HookContext, case: schemathesis.Case, kwargs: dict[str, object]
) -> None:
    """PATCH and DELETE never reach the registered device; they get a stand-in name."""
    params = case.path_parameters
    if (
        case.method.upper() in ("PATCH", "DELETE")
        and isinstance(params, dict)
        and params.get("name") == DEVICE
    ):
        case.path_parameters = {**params, "name": PROTECTED_STAND_IN}
