"""Loaders for public LLM inference traces, read from files the user already has.

- Azure LLM inference traces (Azure/AzurePublicDataset, 2023 and 2024): CSV
  with ``TIMESTAMP,ContextTokens,GeneratedTokens``; the timestamp is a date
  and time (``2023-11-16 18:15:46.6805900``). The traces name no model: each
  request is given one of `models` in turn.
- BurstGPT (HPMLL/BurstGPT): CSV with ``Timestamp,Model,Request tokens,
  Response tokens,Total tokens,Log Type``; the timestamp is seconds from the
  start. Its models (``ChatGPT``, ``GPT-4``) are mapped to the fleet's through
  `model_map` (unmapped ones to `models[0]`); the log type
  (``Conversation log``, ``API log``) becomes the tenant. Rows with 0
  response tokens were failures in the original service and are skipped.

Nothing is downloaded.
"""

from __future__ import annotations

import csv
from collections.abc import Iterator, Mapping, Sequence
from datetime import datetime
from pathlib import Path

from sparkplane.sim.trace import Trace, TraceError

AZURE_COLUMNS = ("TIMESTAMP", "ContextTokens", "GeneratedTokens")
BURSTGPT_COLUMNS = (
    "Timestamp",
    "Model",
    "Request tokens",
    "Response tokens",
    "Total tokens",
    "Log Type",
)


def _rows(path: Path, columns: Sequence[str], what: str) -> Iterator[tuple[int, dict[str, str]]]:
    try:
        f = path.open(newline="", encoding="utf-8")
    except OSError as e:
        raise TraceError(f"cannot read {what} trace {path}: {e.strerror or e}") from e
    with f:
        reader = csv.DictReader(f)
        missing = [c for c in columns if c not in (reader.fieldnames or [])]
        if missing:
            raise TraceError(f"{path}: not a {what} trace: missing column(s) {', '.join(missing)}")
        yield from enumerate(reader, 2)


def _number(row: Mapping[str, str], key: str, where: str) -> float:
    try:
        value = float(row[key])
    except (TypeError, ValueError):
        raise TraceError(f"{where}: {key} is not a number: {row.get(key)!r}") from None
    if value < 0:
        raise TraceError(f"{where}: {key} must be >= 0")
    return value


def _azure_time(text: str, where: str) -> float:
    # The published files carry 7 fractional digits; datetime takes at most 6.
    head, _, frac = text.strip().partition(".")
    try:
        stamp = datetime.fromisoformat(head)
    except ValueError:
        raise TraceError(f"{where}: TIMESTAMP is not a date and time: {text!r}") from None
    return stamp.timestamp() + (float(f"0.{frac}") if frac.isdigit() else 0.0)


def load_azure(path: Path, models: Sequence[str], tenant: str = "") -> Trace:
    """An Azure LLM inference trace, each request given one of `models` in turn."""
    if not models:
        raise TraceError("an Azure trace names no models: give at least one")
    trace = Trace()
    for number, row in _rows(path, AZURE_COLUMNS, "Azure"):
        where = f"{path}:{number}"
        t = _azure_time(row["TIMESTAMP"], where)
        prompt = int(_number(row, "ContextTokens", where))
        output = int(_number(row, "GeneratedTokens", where))
        trace.append(t, models[len(trace) % len(models)], tenant, prompt, output)
    if not len(trace):
        raise TraceError(f"{path}: the trace has no requests")
    return trace.sorted_by_time()


def load_burstgpt(
    path: Path, models: Sequence[str], model_map: Mapping[str, str] | None = None
) -> Trace:
    """A BurstGPT trace; its models mapped by `model_map`, else to `models[0]`."""
    if not models:
        raise TraceError("give at least one fleet model to map BurstGPT's models to")
    mapping = dict(model_map or {})
    trace = Trace()
    for number, row in _rows(path, BURSTGPT_COLUMNS, "BurstGPT"):
        where = f"{path}:{number}"
        output = int(_number(row, "Response tokens", where))
        if output == 0:
            continue
        t = _number(row, "Timestamp", where)
        prompt = int(_number(row, "Request tokens", where))
        model = mapping.get(row["Model"].strip(), models[0])
        tenant = row["Log Type"].strip()
        trace.append(t, model, tenant, prompt, output)
    if not len(trace):
        raise TraceError(f"{path}: the trace has no requests")
    return trace.sorted_by_time()
