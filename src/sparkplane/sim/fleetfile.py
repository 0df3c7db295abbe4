"""The simulator's fleet file (TOML): devices by planner profile, models, cloud, tenants.

Example::

    [slo]                    # defaults; a [[model]] may override each
    ttft_s = 2.0             # time to first token
    tpot_s = 0.2             # time per output token
    deadline_s = 60.0        # image jobs: seconds from arrival to the image
    timeout_s = 60.0         # a request not started by then is dropped (a miss)

    [[device]]
    name = "spark"           # count > 1 names them spark-1, spark-2, ...
    profile = "dgx-spark"    # a planner device profile
    count = 2
    parallel = 4             # requests served at once
    load_gbs = 2.5           # model load bandwidth, GB/s (NVMe)

    [[model]]
    name = "llama-3.1-8b"    # a planner catalog name
    quant = "q4_k_m"

    [[cloud]]
    name = "cloud"
    price_per_mtok = 0.6

    [[tenant]]
    name = "acme"
    allow_cloud = true

Invalid input raises `FleetFileError` with a message naming the problem.
"""

from __future__ import annotations

import tomllib
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

# Model load bandwidth when the fleet file names none: a PCIe 4.0 NVMe drive
# reads ~3-7 GB/s, but engines (GGUF mmap, safetensors to GPU) reach about 2.5.
DEFAULT_LOAD_GBS = 2.5
# Idle power as a share of the profile's power when the fleet file names none.
IDLE_SHARE = 0.15


class FleetFileError(ValueError):
    """The fleet file cannot be read or is not valid."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class SloSpec(_Strict):
    """Service-level objectives (defaults for every model) and the client timeout."""

    ttft_s: float = Field(default=2.0, gt=0)
    tpot_s: float = Field(default=0.2, gt=0)
    deadline_s: float = Field(default=60.0, gt=0)
    timeout_s: float = Field(default=60.0, gt=0)


class DeviceSpec(_Strict):
    """A group of identical devices."""

    name: str = Field(min_length=1)
    profile: str = Field(min_length=1)
    count: int = Field(default=1, ge=1, le=100_000)
    parallel: int = Field(default=4, ge=1, le=4096)
    load_gbs: float = Field(default=DEFAULT_LOAD_GBS, gt=0)
    idle_w: float | None = Field(default=None, ge=0)
    priority: int = 0

    def names(self) -> list[str]:
        """The device names of this group."""
        if self.count == 1:
            return [self.name]
        return [f"{self.name}-{i}" for i in range(1, self.count + 1)]


class ModelSpec(_Strict):
    """A model the fleet may serve, with its SLO where it differs from the default."""

    name: str = Field(min_length=1)
    quant: str | None = None
    context: int = Field(default=8192, ge=256)
    ttft_s: float | None = Field(default=None, gt=0)
    tpot_s: float | None = Field(default=None, gt=0)
    deadline_s: float | None = Field(default=None, gt=0)
    devices: list[str] | None = None  # device group names allowed (default: all)


class CloudSpec(_Strict):
    """A priced off-premises endpoint: no memory limit, every model resident."""

    name: str = Field(min_length=1)
    price_per_mtok: float = Field(default=0.6, ge=0)
    price_per_image: float = Field(default=0.04, ge=0)
    decode_tps: float = Field(default=80.0, gt=0)
    prefill_tps: float = Field(default=4000.0, gt=0)
    image_s: float = Field(default=6.0, gt=0)
    parallel: int = Field(default=1024, ge=1)
    models: list[str] | None = None  # default: every model


class TenantSpec(_Strict):
    """A tenant: whether it may use the cloud, and its fair-share weight."""

    name: str = Field(min_length=1)
    allow_cloud: bool = False
    weight: float = Field(default=1.0, gt=0)


class OutageSpec(_Strict):
    """A device unavailable from `at_s` for `for_s` seconds of simulated time."""

    device: str = Field(min_length=1)
    at_s: float = Field(ge=0)
    for_s: float = Field(gt=0)


class FleetFile(_Strict):
    """The whole fleet file."""

    slo: SloSpec = SloSpec()
    device: list[DeviceSpec] = Field(min_length=1)
    model: list[ModelSpec] = Field(min_length=1)
    cloud: list[CloudSpec] = []
    tenant: list[TenantSpec] = []
    outage: list[OutageSpec] = []

    @model_validator(mode="after")
    def _consistent(self) -> FleetFile:
        groups = [d.name for d in self.device] + [c.name for c in self.cloud]
        _unique("device", [n for d in self.device for n in d.names()] + groups[len(self.device) :])
        _unique("model", [m.name for m in self.model])
        _unique("tenant", [t.name for t in self.tenant])
        models = {m.name for m in self.model}
        for m in self.model:
            for g in m.devices or []:
                if g not in groups:
                    raise ValueError(f"model {m.name!r} names unknown device group {g!r}")
        for c in self.cloud:
            for name in c.models or []:
                if name not in models:
                    raise ValueError(f"cloud {c.name!r} names unknown model {name!r}")
        names = {n for d in self.device for n in d.names()}
        for o in self.outage:
            if o.device not in names:
                raise ValueError(f"outage names unknown device {o.device!r}")
        return self


def _unique(what: str, names: list[str]) -> None:
    seen: set[str] = set()
    for n in names:
        if n in seen:
            raise ValueError(f"{what} {n!r} is defined twice")
        seen.add(n)


def parse_fleet(text: str, source: str = "fleet file") -> FleetFile:
    """A fleet file from TOML text; `FleetFileError` when it is not valid."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise FleetFileError(f"{source}: not valid TOML: {e}") from e
    try:
        return FleetFile.model_validate(data)
    except ValidationError as e:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or 'file'}: {err['msg']}" for err in e.errors()
        )
        raise FleetFileError(f"{source}: {problems}") from e


def load_fleet(path: Path) -> FleetFile:
    """The fleet file at `path`; `FleetFileError` when it is missing or not valid."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as e:
        raise FleetFileError(f"cannot read fleet file {path}: {e.strerror or e}") from e
    return parse_fleet(text, str(path))
