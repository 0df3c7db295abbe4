"""One entry point, :func:`plan`: a model on a set of devices, with the work shown.

It returns plain dataclasses; :func:`plan_to_dict` turns them into JSON-ready
dicts for the CLI's ``--json`` and the HTTP API.
"""

from __future__ import annotations

import dataclasses
import enum
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from .devices import DeviceProfile, builtin_profiles, find_device
from .diffusion import DiffusionSpeed, diffusion_memory, diffusion_speed
from .engines import Efficiency, efficiency
from .errors import InvalidRequestError
from .fit import GroupFit, Load, fit_together, max_context, max_sequences
from .memory import MemoryBreakdown, gb, llm_memory
from .precision import QUANTS, Quant
from .quantize import describe_formats, quantize_spec
from .request import PlanRequest, Resolved, default_engine, resolve_request
from .specs import ModelKind, ModelSpec
from .speed import (
    DecodeEstimate,
    PrefillEstimate,
    WindowPoint,
    active_params,
    decode,
    decode_window,
    kv_bytes_per_token,
)
from .speed import prefill as prefill_speed
from .training import TrainingSpeed, training_memory, training_speed

DIFFUSION_ENGINE = "comfyui"


@dataclass(frozen=True)
class ModelSummary:
    """The model as planned: its size, precision and KV cost."""

    name: str
    kind: str
    source: str
    quant: str
    params_total: int
    params_active: int
    weight_bytes: int
    weights_by_format: dict[str, int]
    layers: int
    kv_bytes_per_token: float
    max_context: int | None
    assumed: tuple[str, ...]


@dataclass(frozen=True)
class DevicePlan:
    """The answer for one device."""

    device: str
    device_name: str
    engine: str
    engine_supported: bool
    fits: bool
    usable_bytes: int
    headroom_bytes: int
    memory: MemoryBreakdown
    max_context: int | None
    max_sequences: int | None
    prefill: PrefillEstimate | None
    decode: DecodeEstimate | None
    diffusion: DiffusionSpeed | None
    training: TrainingSpeed | None
    efficiency: Efficiency
    notes: tuple[str, ...]
    # Decode speed with the cache at 0%, 50% and 100% of the reserved window.
    decode_window: tuple[WindowPoint, ...] = ()


@dataclass(frozen=True)
class Plan:
    """A model planned across devices."""

    model: ModelSummary
    mode: str  # "inference", "training" or "diffusion"
    engine: str
    context: int
    sequences: int
    kv_dtype: str
    image: dict[str, int] | None
    training: str | None
    devices: tuple[DevicePlan, ...]
    together: tuple[GroupFit, ...] = ()
    prompt_tokens: int = 0
    output_tokens: int = 0
    decode_context: int = 0  # tokens in the cache at which decode is reported


def prepare(spec: ModelSpec, quant: Quant | None, engine: str) -> ModelSpec:
    """The model's weights as ``engine`` would load them at ``quant``."""
    if quant is None and spec.source == "catalog" and spec.native_quant:
        quant = QUANTS[spec.native_quant]  # re-resolve: llama.cpp loads MXFP4 as MXFP4_MOE
    return quantize_spec(spec, quant, engine) if quant is not None else spec


def _notes(spec: ModelSpec, device: DeviceProfile, engine: str, mem: MemoryBreakdown) -> list[str]:
    notes: list[str] = []
    if engine != DIFFUSION_ENGINE and engine not in device.engines:
        notes.append(f"{engine} does not run on {device.id}")
    if mem.total > device.usable_bytes:
        notes.append(f"does not fit: needs {gb(mem.total)}, has {gb(device.usable_bytes)}")
    elif engine in {"vllm", "sglang"}:
        share = mem.total / device.memory_bytes
        flag = "--gpu-memory-utilization" if engine == "vllm" else "--mem-fraction-static"
        notes.append(f"{engine} claims memory up front: set {flag} to at least {share:.2f}")
    if spec.assumed:
        notes.append("assumed: " + ", ".join(spec.assumed))
    return notes


def device_engine(device: DeviceProfile, r: Resolved) -> str:
    """The engine planned on ``device``: the requested one, or the device's first
    engine when none was requested and the default does not run there."""
    if r.engine_explicit or r.engine in device.engines or not device.engines:
        return r.engine
    return device.engines[0]


def _device_plan(spec: ModelSpec, device: DeviceProfile, r: Resolved, engine: str) -> DevicePlan:
    kind = spec.kind
    r = dataclasses.replace(r, engine=engine)
    engine = DIFFUSION_ENGINE if kind is ModelKind.DIFFUSION else engine
    eff = efficiency("*" if engine == DIFFUSION_ENGINE else engine, device.kind)
    pre = dec = None
    diff: DiffusionSpeed | None = None
    train: TrainingSpeed | None = None
    max_ctx = max_seq = None
    window: tuple[WindowPoint, ...] = ()
    if kind is ModelKind.DIFFUSION:
        mem = diffusion_memory(spec, r.quant, r.width, r.height, r.batch)
    elif r.train:
        spec, mem = training_memory(spec, r.train, r.context, r.sequences, r.lora_rank)
    else:
        mem = llm_memory(spec, r.engine, r.context, r.sequences, r.kv_dtype)
    fits = mem.total <= device.usable_bytes
    supported = engine == DIFFUSION_ENGINE or engine in device.engines
    if kind is ModelKind.DIFFUSION:
        if fits:
            diff = diffusion_speed(spec, device, eff, r.quant, r.width, r.height, r.batch, r.steps)
    elif r.train:
        if fits:
            train = training_speed(spec, r.train, device, eff)
    else:
        if kind is ModelKind.LLM:
            max_ctx = max_context(spec, device, r.engine, r.kv_dtype, r.sequences)
            max_seq = max_sequences(spec, device, r.engine, r.kv_dtype, r.context)
        if fits and supported:
            pre = prefill_speed(spec, device, eff, max(r.prompt_tokens, 1), r.engine)
            if kind is ModelKind.LLM:
                args = (spec, device, eff)
                dec = decode(*args, r.decode_context, r.sequences, r.kv_dtype, r.engine)
                window = decode_window(*args, r.context, r.sequences, r.kv_dtype, r.engine)
    return DevicePlan(
        device=device.id,
        device_name=device.name,
        engine=engine,
        engine_supported=supported,
        fits=fits,
        usable_bytes=device.usable_bytes,
        headroom_bytes=device.usable_bytes - mem.total,
        memory=mem,
        max_context=max_ctx,
        max_sequences=max_seq,
        prefill=pre,
        decode=dec,
        diffusion=diff,
        training=train,
        efficiency=eff,
        notes=tuple(_notes(spec, device, engine, mem)),
        decode_window=window,
    )


def _summary(spec: ModelSpec, kv_dtype: str) -> ModelSummary:
    a = spec.arch
    diffusion = spec.kind is ModelKind.DIFFUSION
    return ModelSummary(
        name=spec.name,
        kind=spec.kind.value,
        source=spec.source,
        quant=spec.quant_label,
        params_total=spec.params_total,
        params_active=spec.params_total if diffusion else active_params(spec),
        weight_bytes=spec.weight_bytes,
        weights_by_format=describe_formats(spec.tensors),
        layers=spec.layers,
        kv_bytes_per_token=kv_bytes_per_token(spec, kv_dtype),
        max_context=a.max_context if a and not a.encoder else None,
        assumed=spec.assumed,
    )


def _select(
    profiles: Mapping[str, DeviceProfile], devices: str | Sequence[str] | None
) -> list[DeviceProfile]:
    if devices is None:
        return list(profiles.values())
    ids = [devices] if isinstance(devices, str) else list(devices)
    out: list[DeviceProfile] = []
    for ident in ids:
        for part in ident.split(","):
            if part.strip():
                out.append(find_device(profiles, part))
    return out


def plan(
    spec: ModelSpec,
    request: PlanRequest | None = None,
    *,
    profiles: Mapping[str, DeviceProfile] | None = None,
    together: Sequence[ModelSpec] = (),
    **fields: Any,
) -> Plan:
    """Plan ``spec`` on the request's devices (ids or aliases; default: every profile).

    The request is a :class:`PlanRequest`, or its fields as keywords
    (``plan(spec, devices="dgx-spark", quant="q4_k_m")``): ``quant`` is any
    precision or GGUF type (default: as the model ships); ``engine`` one of
    llama.cpp, ollama, vllm, sglang, trt-llm; ``context`` (the window reserved)
    and ``sequences`` size the KV cache; ``prompt_tokens`` and ``output_tokens``
    (default 512 and 128) set the context decode speed is reported at;
    ``train`` (full, lora, qlora) plans a fine-tune of ``sequences`` x
    ``context`` tokens per step instead; ``width``, ``height``, ``batch`` and
    ``steps`` apply to diffusion models. ``together`` lists models (at their
    defaults) that must stay resident alongside.
    Raises a :class:`~sparkplane.planner.errors.PlannerError` on bad input.
    """
    profiles = profiles if profiles is not None else builtin_profiles()
    if request is None:
        try:
            request = PlanRequest(**fields)
        except TypeError as exc:
            raise InvalidRequestError(str(exc)) from None
    elif fields:
        request = dataclasses.replace(request, **fields)
    r = resolve_request(spec, request)
    devices = request.devices
    if r.train and spec.kind is not ModelKind.LLM:
        raise InvalidRequestError("training plans need a language model", param="train")
    prepared: dict[str, ModelSpec] = {}

    def model_for(engine: str) -> ModelSpec:
        if engine not in prepared:
            diffusion = spec.kind is ModelKind.DIFFUSION
            prepared[engine] = spec if diffusion else prepare(spec, r.quant, engine)
        return prepared[engine]

    model = model_for(r.engine)
    selected = _select(profiles, devices)
    plans = []
    for d in selected:
        engine = device_engine(d, r)
        plans.append(_device_plan(model_for(engine), d, r, engine))
    groups: tuple[GroupFit, ...] = ()
    if together:
        groups = tuple(_together(model, plans, list(together), d, r) for d in selected)
    mode = (
        "diffusion" if spec.kind is ModelKind.DIFFUSION else "training" if r.train else "inference"
    )
    image = None
    if spec.kind is ModelKind.DIFFUSION:
        image = {"width": r.width, "height": r.height, "batch": r.batch, "steps": r.steps}
    return Plan(
        model=_summary(model, r.kv_dtype),
        mode=mode,
        engine=DIFFUSION_ENGINE if spec.kind is ModelKind.DIFFUSION else r.engine,
        context=r.context,
        sequences=r.sequences,
        kv_dtype=r.kv_dtype,
        image=image,
        training=r.train,
        devices=tuple(plans),
        together=groups,
        prompt_tokens=r.prompt_tokens,
        output_tokens=r.output_tokens,
        decode_context=r.decode_context,
    )


def _load(spec: ModelSpec, r: Resolved) -> Load:
    if spec.kind is ModelKind.DIFFUSION:
        d = spec.diffusion
        assert d is not None
        res = d.default_resolution
        return Load(spec.name, diffusion_memory(spec, None, res, res, 1), shared_process=True)
    engine = default_engine(spec, None)
    model = prepare(spec, None, engine)
    ctx = min(r.context, model.arch.max_context) if model.arch else r.context
    return Load(spec.name, llm_memory(model, engine, ctx, r.sequences, r.kv_dtype))


def _together(
    model: ModelSpec,
    plans: list[DevicePlan],
    others: list[ModelSpec],
    device: DeviceProfile,
    r: Resolved,
) -> GroupFit:
    own = next(p for p in plans if p.device == device.id)
    first = Load(model.name, own.memory, shared_process=model.kind is ModelKind.DIFFUSION)
    return fit_together(device, [first, *(_load(o, r) for o in others)])


def _plain(obj: Any) -> Any:
    if isinstance(obj, MemoryBreakdown):
        return {"total": obj.total, "items": [_plain(i) for i in obj.items]}
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: _plain(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, enum.Enum):
        return obj.value
    if isinstance(obj, dict):
        return {str(k): _plain(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_plain(v) for v in obj]
    if isinstance(obj, float):
        return round(obj, 4)
    return obj


def plan_to_dict(p: Plan) -> dict[str, Any]:
    """``p`` as JSON-ready dicts and lists (bytes as integers, speeds as floats)."""
    out: dict[str, Any] = _plain(p)
    return out
