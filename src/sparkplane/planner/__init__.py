"""sparkplane's capacity planner: will this model fit on that device, in how much memory, how fast.

Pure code: it reads only the model files it is given (GGUF headers, safetensors
headers, config.json) and its own data files. Typical use::

    from sparkplane.planner import load_model, plan, plan_to_dict

    p = plan(load_model("llama-3.1-70b"), devices=["dgx-spark", "rtx-4090"], quant="nvfp4")
    for d in p.devices:
        print(d.device, d.fits, d.memory.total, d.decode and d.decode.tokens_per_s)
"""

from .catalog import Catalog, CatalogEntry, load_catalog
from .devices import DeviceProfile, builtin_profiles, find_device, profiles_with
from .diffusion import DiffusionSpeed
from .engines import ENGINE_PROFILES, Efficiency, EngineProfile, efficiency, parse_engine
from .errors import (
    InvalidRequestError,
    PlannerError,
    SpecError,
    UnknownDeviceError,
    UnknownModelError,
)
from .fit import GroupFit, Load, fit_together, max_context, max_sequences
from .gguf_reader import GGUFHeader, read_gguf_header
from .gguf_spec import spec_from_gguf
from .hf_folder import spec_from_hf_folder
from .kv import kv_cache_bytes
from .memory import MemoryBreakdown, MemoryItem, llm_memory
from .plan import DevicePlan, ModelSummary, Plan, plan, plan_to_dict, prepare
from .precision import FORMATS, QUANTS, Format, Quant, parse_quant
from .quantize import quantize_spec
from .request import PlanRequest
from .resolve import load_model, spec_from_numbers
from .safetensors_reader import SafetensorsHeader, read_safetensors_header
from .specs import Architecture, ModelKind, ModelSpec
from .speed import DecodeEstimate, PrefillEstimate, WindowPoint, active_params, decode, prefill
from .training import TrainingSpeed, training_memory

__all__ = [
    "ENGINE_PROFILES",
    "FORMATS",
    "QUANTS",
    "Architecture",
    "Catalog",
    "CatalogEntry",
    "DecodeEstimate",
    "DevicePlan",
    "DeviceProfile",
    "DiffusionSpeed",
    "Efficiency",
    "EngineProfile",
    "Format",
    "GGUFHeader",
    "GroupFit",
    "InvalidRequestError",
    "Load",
    "MemoryBreakdown",
    "MemoryItem",
    "ModelKind",
    "ModelSpec",
    "ModelSummary",
    "Plan",
    "PlanRequest",
    "PlannerError",
    "PrefillEstimate",
    "Quant",
    "SafetensorsHeader",
    "SpecError",
    "TrainingSpeed",
    "UnknownDeviceError",
    "UnknownModelError",
    "WindowPoint",
    "active_params",
    "builtin_profiles",
    "decode",
    "efficiency",
    "find_device",
    "fit_together",
    "kv_cache_bytes",
    "llm_memory",
    "load_catalog",
    "load_model",
    "max_context",
    "max_sequences",
    "parse_engine",
    "parse_quant",
    "plan",
    "plan_to_dict",
    "prefill",
    "prepare",
    "profiles_with",
    "quantize_spec",
    "read_gguf_header",
    "read_safetensors_header",
    "spec_from_gguf",
    "spec_from_hf_folder",
    "spec_from_numbers",
    "training_memory",
]
