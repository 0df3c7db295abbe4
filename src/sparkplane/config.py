"""Settings: the one place sparkplane reads its configuration.

Sources, strongest first: explicit arguments (CLI flags), `SPARKPLANE_*`
environment variables, the TOML file (`--config`, `SPARKPLANE_CONFIG`, or
`./sparkplane.toml` when present), then the defaults below. Every field is
documented in docs/configuration.md; a test keeps the two in step.
"""

from __future__ import annotations

import os
import tomllib
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, field_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

DEFAULT_CONFIG_FILE = Path("sparkplane.toml")
# Settings that may hold credentials can also be read from a file named by
# SPARKPLANE_<NAME>_FILE (container secrets), keeping them out of the environment.
SECRET_FIELDS = ("database_url", "redis_url", "audit_head_secret")
# Node classes from popular custom-node packs that evaluate code or read and write
# arbitrary paths (see docs/comfyui.md); ComfyUI's own nodes stay inside its folders.
DEFAULT_DENY_NODES = (
    "Image Save",
    "Image Load",
    "Load Image Batch",
    "Save Text File",
    "Load Text File",
    "Text Load Line From File",
    "Text File History Loader",
    "Load Cache",
    "Cache Node",
    "Export API",
    "SRL Eval",
    "PythonScript",
    "ExecutePythonCode",
)


class Settings(BaseSettings):
    """All of sparkplane's settings, typed and validated."""

    model_config = SettingsConfigDict(
        env_prefix="SPARKPLANE_",
        extra="forbid",
        validate_default=True,
    )

    # -- where things live -------------------------------------------------
    home: Path = Field(Path(".sparkplane"), description="Folder for the SQLite file and artifacts.")
    database_url: str | None = Field(
        None,
        description="SQLAlchemy URL; default is a SQLite file in `home`. "
        "Use postgresql+asyncpg://user@host/db for PostgreSQL.",
    )
    artifacts_dir: Path | None = Field(
        None, description="Artifact folder; default `home`/artifacts."
    )

    # -- serving -----------------------------------------------------------
    host: str = Field("127.0.0.1", description="Address `serve` binds to.")
    port: int = Field(8400, ge=1, le=65535, description="Port `serve` listens on.")
    discover: bool = Field(
        True, description="On a first start with no devices, probe loopback for running engines."
    )
    log_level: Literal["debug", "info", "warning", "error"] = Field(
        "info", description="Log level."
    )
    log_format: Literal["auto", "console", "json"] = Field(
        "auto", description="`json` for machines, `console` for people; `auto` picks by terminal."
    )
    max_body_bytes: int = Field(
        16 * 1024 * 1024, ge=1024, description="Largest accepted JSON request body, in bytes."
    )
    drain_timeout_s: float = Field(
        600.0, ge=0, description="After SIGTERM, how long in-flight requests may run before exit."
    )

    # -- fleet health ------------------------------------------------------
    health_interval_s: float = Field(5.0, gt=0, description="Seconds between health probes.")
    probe_timeout_s: float = Field(3.0, gt=0, description="Timeout of one health probe.")
    breaker_failures: int = Field(
        3, ge=1, description="Consecutive failures that open a device's circuit breaker."
    )
    breaker_cooldown_s: float = Field(
        10.0, gt=0, description="Seconds an open breaker waits before letting one probe through."
    )

    # -- the gateway -------------------------------------------------------
    max_attempts: int = Field(3, ge=1, description="Most devices one request is tried on.")
    retry_budget_ratio: float = Field(
        0.2, ge=0, le=1, description="Retries in flight allowed, as a share of active requests."
    )
    retry_budget_min: int = Field(3, ge=0, description="Retries in flight always allowed.")
    connect_timeout_s: float = Field(5.0, gt=0, description="Timeout to connect to a device.")
    first_byte_timeout_s: float = Field(
        120.0, gt=0, description="Longest wait for a device's first response byte."
    )
    idle_timeout_s: float = Field(
        120.0, gt=0, description="Longest silence between two chunks of a streamed response."
    )
    request_timeout_s: float | None = Field(
        None, description="Total time limit per request; none by default so long outputs finish."
    )
    allow_off_prem: bool = Field(
        False, description="May requests go to off-premises devices (cloud) when nothing local can?"
    )
    aliases: dict[str, list[str]] = Field(
        default_factory=dict,
        description="Public model name -> names it has on engines; `kind:name` limits a target "
        "to one engine kind, e.g. `ollama:llama3.1:8b`.",
    )

    # -- the scheduler -----------------------------------------------------
    min_resident_s: float = Field(
        60.0, ge=0, description="A model loaded less than this ago is not evicted for a cold one."
    )
    load_timeout_s: float = Field(
        600.0, gt=0, description="Longest wait for an engine to load a model into memory."
    )
    device_parallel: int = Field(
        4, ge=1, description="Requests a device serves at once, unless it says (`extra.parallel`)."
    )
    device_saturation: int = Field(
        4, ge=1, description="In-flight requests per parallel place past which a device is full."
    )
    model_queue_limit: int = Field(
        64, ge=0, description="Requests that may wait per model when every device is full."
    )
    queue_wait_s: float = Field(
        60.0, gt=0, description="Longest wait in the model queue before a 503 queue_timeout."
    )
    load_gbs: float = Field(
        2.0, gt=0, description="GB/s a model is read into memory, unless the device says."
    )
    tenant_weights: dict[str, float] = Field(
        default_factory=dict, description="Fair-share weight per tenant name (default 1)."
    )

    # -- security ----------------------------------------------------------
    auth_enabled: bool = Field(
        True,
        description="Require an API key on every endpoint but /healthz and /readyz. Turning "
        "it off is allowed only when `host` is a loopback address.",
    )
    auth_cache_s: float = Field(
        2.0, gt=0, le=5, description="Seconds a verified key is trusted before re-checking it."
    )
    auth_failures_per_minute: int = Field(
        10,
        ge=1,
        description="Failed authentications one source address may make in a burst (then "
        "one every 60/N s) before it is answered 429 without its key being checked.",
    )
    metrics_public: bool = Field(
        True, description="Serve /metrics without a key (for a scraper on a trusted network)."
    )
    cors_origins: list[str] = Field(
        default_factory=list, description="Origins allowed by CORS; none by default (closed)."
    )
    tls_cert: Path | None = Field(None, description="PEM certificate: serve HTTPS (TLS 1.2+).")
    tls_key: Path | None = Field(None, description="PEM private key for `tls_cert`.")
    audit_fail_closed: bool = Field(
        True, description="Refuse requests while audit entries cannot be written."
    )
    audit_journal: bool = Field(
        True,
        description="Journal audit entries (fsynced) in `home`/audit-journal before the "
        "database has them; off, an answer waits for the database's commit instead.",
    )
    audit_head_secret: str | None = Field(
        None,
        description="HMAC-SHA256 secret `audit head` signs the chain's head with, and "
        "`audit verify --expect-head` checks it with.",
    )
    audit_head_key: Path | None = Field(
        None,
        description="PEM file of an Ed25519 key: `audit head` signs with it (a private key; "
        "used instead of the secret) and `audit verify --expect-head` checks with it (a "
        "public key is enough there).",
    )
    redis_url: str | None = Field(
        None, description="Redis for rate-limit counters shared by replicas; in-process if unset."
    )

    # -- ComfyUI workflows and the job queue ----------------------------------
    comfy_workers: int = Field(
        8, ge=1, description="Workflow jobs one process runs at once (over all ComfyUI devices)."
    )
    comfy_device_queue: int = Field(
        2, ge=1, description="Jobs one process keeps submitted to one ComfyUI device at a time."
    )
    comfy_max_attempts: int = Field(
        3,
        ge=1,
        description="Most attempts of one workflow job (device lost, timed out) before it fails.",
    )
    comfy_job_timeout_s: float = Field(
        3600.0, gt=0, description="Longest one attempt of a workflow job may run on a device."
    )
    comfy_poll_s: float = Field(
        0.5, gt=0, description="How often an idle process looks for jobs queued by other processes."
    )
    comfy_object_info_refresh_s: float = Field(
        300.0, gt=0, description="Seconds between re-reads of a ComfyUI device's /object_info."
    )
    comfy_deny_nodes: list[str] = Field(
        default_factory=lambda: list(DEFAULT_DENY_NODES),
        description="Node classes refused at submission (they run code or touch arbitrary files).",
    )
    job_lease_s: float = Field(
        30.0,
        gt=0,
        description="A running job's lease; a process that stops renewing it loses the job.",
    )
    artifact_retention_days: float = Field(
        30.0,
        ge=0,
        description="Days job outputs, history and uploads are kept; 0 keeps them forever.",
    )
    max_upload_bytes: int = Field(
        100 * 1024 * 1024,
        ge=1024,
        description="Largest accepted upload (POST /upload/image), in bytes.",
    )

    # -- nodes (sparkplane agent) ---------------------------------------------
    node_heartbeat_s: float = Field(
        5.0, gt=0, description="Seconds between two heartbeats of an agent (told when it joins)."
    )
    node_lost_after_s: float = Field(
        20.0, gt=0, description="A node silent this long is lost; its devices leave routing."
    )
    agent_ca: Path | None = Field(
        None, description="PEM CA bundle that agents' certificates (https agents) are checked with."
    )

    # -- capacity planner --------------------------------------------------
    device_profiles: list[dict[str, Any]] = Field(
        default_factory=list, description="Extra device profiles for the planner (TOML tables)."
    )

    @field_validator("aliases", mode="before")
    @classmethod
    def _single_target_is_a_list(cls, value: Any) -> Any:
        if isinstance(value, dict):
            return {k: [v] if isinstance(v, str) else v for k, v in value.items()}
        return value

    @property
    def db_url(self) -> str:
        """The database URL in effect."""
        if self.database_url:
            return self.database_url
        return f"sqlite+aiosqlite:///{(self.home / 'sparkplane.db').resolve()}"

    @property
    def artifacts_path(self) -> Path:
        """The artifact folder in effect."""
        return self.artifacts_dir or self.home / "artifacts"

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        toml_file = settings_cls.model_config.get("toml_file")
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        if toml_file:
            sources.append(TomlConfigSettingsSource(settings_cls, toml_file=toml_file))
        return tuple(sources)


class SettingsFileError(ValueError):
    """The settings file cannot be read as TOML."""


def load_settings(config_file: Path | None = None, **overrides: Any) -> Settings:
    """Read settings from the TOML file, the environment and explicit overrides.

    `config_file` defaults to `$SPARKPLANE_CONFIG`, else `./sparkplane.toml` when it
    exists. A named file that does not exist is an error, not a silent default.
    """
    if config_file is None:
        env_file = os.environ.get("SPARKPLANE_CONFIG")
        if env_file:
            config_file = Path(env_file)
        elif DEFAULT_CONFIG_FILE.is_file():
            config_file = DEFAULT_CONFIG_FILE
    if config_file is not None and not config_file.is_file():
        raise FileNotFoundError(f"config file not found: {config_file}")
    if config_file is not None:
        try:
            tomllib.loads(config_file.read_text())
        except tomllib.TOMLDecodeError as exc:
            raise SettingsFileError(f"{config_file} is not valid TOML: {exc}") from exc
    clean = {k: v for k, v in overrides.items() if v is not None}
    for name in SECRET_FIELDS:
        secret_file = os.environ.get(f"SPARKPLANE_{name.upper()}_FILE")
        if secret_file and name not in clean:
            clean[name] = Path(secret_file).read_text().strip()
    if config_file is None:
        return Settings(**clean)
    bound = type(
        "Settings",
        (Settings,),
        {"model_config": {**Settings.model_config, "toml_file": config_file}},
    )
    settings: Settings = bound(**clean)
    return settings
