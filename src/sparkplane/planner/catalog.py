"""The built-in catalog: published architecture numbers of popular models.

The data lives in ``data/catalog.toml`` (with its sources); this module loads it
into :class:`CatalogEntry` records, finds entries by name or alias, suggests the
closest names for a miss, and turns an entry into a :class:`ModelSpec`.
"""

from __future__ import annotations

import difflib
import re
import tomllib
from dataclasses import dataclass, fields
from functools import cache
from importlib import resources
from typing import Any

from .errors import SpecError, UnknownModelError
from .layout import generate_tensors
from .precision import QUANTS
from .quantize import quantize_spec
from .specs import Architecture, DiffusionArch, DiffusionComponent, ModelKind, ModelSpec
from .tensors import Role

_ARCH_FIELDS = {f.name for f in fields(Architecture)}
_DIFF_FIELDS = {f.name for f in fields(DiffusionArch)}
_SUFFIXES = ("-instruct", "-it", "-chat", "-base", "-hf", "-gguf", "-qat", "-fp8", "-bf16")


@dataclass(frozen=True)
class CatalogEntry:
    """One catalog model with its published numbers."""

    name: str
    aliases: tuple[str, ...]
    source: str
    kind: ModelKind
    published_params_b: float | None = None
    published_active_b: float | None = None
    arch: Architecture | None = None
    native_quant: str | None = None
    native_roles: tuple[Role, ...] = ()
    diffusion: DiffusionArch | None = None
    components: tuple[DiffusionComponent, ...] = ()
    add_on: bool = False  # a ControlNet: loaded next to a base pipeline

    def spec(self) -> ModelSpec:
        """The entry as a :class:`ModelSpec`, weights in the precision it ships in."""
        if self.kind is ModelKind.DIFFUSION:
            return ModelSpec(
                name=self.name,
                kind=self.kind,
                source="catalog",
                arch=None,
                components=self.components,
                diffusion=self.diffusion,
                quant_label=self.components[0].dtype.upper() if self.components else "",
            )
        assert self.arch is not None
        spec = ModelSpec(
            name=self.name,
            kind=self.kind,
            source="catalog",
            arch=self.arch,
            tensors=generate_tensors(self.arch, "bf16"),
            native_quant=self.native_quant,
            native_roles=self.native_roles,
            quant_label="BF16",
        )
        if self.native_quant:
            spec = quantize_spec(spec, QUANTS[self.native_quant])
        return spec


def normalize_name(text: str) -> str:
    """Lower-case, without parenthetical remarks, with ``-`` as the only separator."""
    s = re.sub(r"\([^)]*\)", "", text.strip().lower())
    return re.sub(r"[\s_]+", "-", s.strip()).strip("-")


def _candidates(text: str) -> list[str]:
    base = normalize_name(text)
    out = [base]
    if "/" in base:
        out.append(base.rsplit("/", 1)[1])
    for name in list(out):
        stripped = name
        changed = True
        while changed:
            changed = False
            for suffix in _SUFFIXES:
                if stripped.endswith(suffix):
                    stripped = stripped[: -len(suffix)]
                    changed = True
        out.append(stripped)
    return out


def _entry(raw: dict[str, Any], diffusion: bool) -> CatalogEntry:
    name = str(raw["name"])
    aliases = tuple(str(a) for a in raw.get("aliases", ()))
    source = str(raw.get("source", ""))
    if diffusion:
        comps = tuple(DiffusionComponent(**c) for c in raw.get("components", ()))
        darch = DiffusionArch(**{k: v for k, v in raw.items() if k in _DIFF_FIELDS})
        return CatalogEntry(
            name,
            aliases,
            source,
            ModelKind.DIFFUSION,
            diffusion=darch,
            components=comps,
            add_on=bool(raw.get("add_on")),
        )
    arch = Architecture(**{k: v for k, v in raw.items() if k in _ARCH_FIELDS})
    return CatalogEntry(
        name,
        aliases,
        source,
        ModelKind(raw.get("kind", "llm")),
        published_params_b=raw.get("published_params_b"),
        published_active_b=raw.get("published_active_b"),
        arch=arch,
        native_quant=raw.get("native_quant"),
        native_roles=tuple(Role(r) for r in raw.get("native_roles", ())),
    )


class Catalog:
    """Catalog entries, looked up by name or alias."""

    def __init__(self, entries: tuple[CatalogEntry, ...]) -> None:
        self.entries = entries
        self._index: dict[str, CatalogEntry] = {}
        for e in entries:
            for key in (e.name, *e.aliases):
                self._index.setdefault(normalize_name(key), e)

    def names(self) -> list[str]:
        """Canonical names, in catalog order."""
        return [e.name for e in self.entries]

    def find(self, name: str) -> CatalogEntry | None:
        """The entry called ``name`` (or an alias of it), or None."""
        for key in _candidates(name):
            if key in self._index:
                return self._index[key]
        return None

    def suggest(self, name: str, n: int = 5) -> list[str]:
        """Up to ``n`` canonical names closest to ``name``."""
        key = _candidates(name)[-1]
        keys = list(self._index)
        close = difflib.get_close_matches(key, keys, n=n * 3, cutoff=0.45)
        close += [k for k in keys if key and (key in k or k in key)]
        out: list[str] = []
        for k in close:
            canonical = self._index[k].name
            if canonical not in out:
                out.append(canonical)
        return out[:n]

    def get(self, name: str) -> CatalogEntry:
        """The entry called ``name``; raises :class:`UnknownModelError` with suggestions."""
        entry = self.find(name)
        if entry is None:
            raise UnknownModelError(name, self.suggest(name))
        return entry


@cache
def load_catalog() -> Catalog:
    """The built-in catalog (parsed once; entries are immutable)."""
    raw = resources.files("sparkplane.planner").joinpath("data/catalog.toml").read_bytes()
    try:
        doc = tomllib.loads(raw.decode("utf-8"))
        entries = [_entry(m, False) for m in doc.get("model", ())]
        entries += [_entry(d, True) for d in doc.get("diffusion", ())]
    except (tomllib.TOMLDecodeError, TypeError, KeyError, ValueError) as exc:
        raise SpecError(f"built-in catalog is invalid: {exc}") from exc
    return Catalog(tuple(entries))
