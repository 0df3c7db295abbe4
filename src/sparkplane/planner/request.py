"""What a user asks the planner, in one place: :class:`PlanRequest`.

The CLI, the HTTP API and Python callers all describe a plan with the same
fields; :func:`resolve_request` checks them and fills in the defaults that
depend on the model (context limit, diffusion resolution, engine).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, fields

from .engines import parse_engine
from .errors import InvalidRequestError
from .kv import parse_kv_dtype
from .precision import Quant, parse_quant
from .specs import ModelSpec
from .training import parse_method

DEFAULT_CONTEXT = 8192
# How single-stream decode is benchmarked (llama-bench's tg128 after a short
# prompt, Ollama's eval rate on a chat turn): a 512-token prompt, 128 out.
DEFAULT_PROMPT_TOKENS = 512
DEFAULT_OUTPUT_TOKENS = 128


@dataclass(frozen=True)
class PlanRequest:
    """A plan's parameters as a user gives them; ``None`` means "the default".

    ``context`` is the window reserved in memory per sequence; ``prompt_tokens``
    and ``output_tokens`` are what a request actually uses, which sets the
    decode speed reported (the window's speed is shown beside it).
    """

    devices: str | Sequence[str] | None = None
    quant: str | None = None
    engine: str | None = None
    context: int | None = None
    prompt_tokens: int | None = None
    output_tokens: int | None = None
    sequences: int | None = None
    kv_dtype: str | None = None
    train: str | None = None
    lora_rank: int | None = None
    width: int | None = None
    height: int | None = None
    batch: int | None = None
    steps: int | None = None


REQUEST_FIELDS = tuple(f.name for f in fields(PlanRequest))


@dataclass(frozen=True)
class Resolved:
    """A checked request with every default filled in."""

    quant: Quant | None
    engine: str
    engine_explicit: bool
    context: int
    prompt_tokens: int
    output_tokens: int
    sequences: int
    kv_dtype: str
    train: str | None
    lora_rank: int
    width: int
    height: int
    batch: int
    steps: int

    @property
    def decode_context(self) -> int:
        """Tokens in the cache, on average, while the output is generated.

        Step time is linear in the cached tokens, so the mean over the output
        (prompt + output / 2) gives the output's average speed exactly; it
        never exceeds the reserved window.
        """
        return max(min(self.prompt_tokens + self.output_tokens // 2, self.context), 0)


def _check(name: str, value: int, lo: int, hi: int) -> int:
    if not lo <= value <= hi:
        raise InvalidRequestError(f"{name} must be between {lo} and {hi}", param=name)
    return value


def _or(value: int | None, default: int) -> int:
    return default if value is None else int(value)


def default_engine(spec: ModelSpec, quant: Quant | None) -> str:
    """llama.cpp for GGUF files and GGUF precisions, vLLM otherwise."""
    if spec.source == "gguf" or (quant is not None and quant.gguf):
        return "llama.cpp"
    return "vllm"


def resolve_request(spec: ModelSpec, req: PlanRequest) -> Resolved:
    """``req`` checked against ``spec``, defaults filled in; raises on bad input."""
    quant = parse_quant(req.quant) if req.quant else None
    engine = parse_engine(req.engine) if req.engine else default_engine(spec, quant)
    a = spec.arch
    limit = a.max_context if a else DEFAULT_CONTEXT
    if a and a.encoder:
        default_ctx = min(limit, 512)
    elif req.train:
        default_ctx = 2048
    else:
        default_ctx = min(limit, DEFAULT_CONTEXT)
    context = _check("context", _or(req.context, default_ctx), 1, 10_000_000)
    prompt = _check(
        "prompt_tokens", _or(req.prompt_tokens, min(DEFAULT_PROMPT_TOKENS, context)), 0, context
    )
    output = _check("output_tokens", _or(req.output_tokens, DEFAULT_OUTPUT_TOKENS), 1, 10_000_000)
    d = spec.diffusion
    res = d.default_resolution if d else 1024
    return Resolved(
        quant=quant,
        engine=engine,
        engine_explicit=bool(req.engine),
        context=context,
        prompt_tokens=prompt,
        output_tokens=output,
        sequences=_check("sequences", _or(req.sequences, 1), 1, 65_536),
        kv_dtype=parse_kv_dtype(req.kv_dtype),
        train=parse_method(req.train) if req.train else None,
        lora_rank=_check("lora_rank", _or(req.lora_rank, 16), 1, 4096),
        width=_check("width", _or(req.width, res), 64, 8192),
        height=_check("height", _or(req.height, res), 64, 8192),
        batch=_check("batch", _or(req.batch, 1), 1, 256),
        steps=_check("steps", _or(req.steps, d.default_steps if d else 30), 1, 1000),
    )
