"""A usage report as JSON, CSV or a Rich table."""

from __future__ import annotations

import csv
import io
import json

from rich.table import Table

from sparkplane.usage.report import Report, Totals

CSV_COLUMNS = [
    "month",
    "tenant",
    "tenant_id",
    "group",
    "name",
    "requests",
    "errors",
    "tokens_in",
    "tokens_out",
    "images",
    "device_seconds",
    "energy_wh",
    "energy_basis",
    "cost",
    "currency",
]


def to_json(report: Report) -> str:
    """The report as indented JSON."""
    return json.dumps(report.as_dict(), indent=2)


def to_csv(report: Report) -> str:
    """One row per tenant total, then per model and per device (`group` says which)."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    for t in report.tenants:
        rows: list[tuple[str, str, Totals]] = [("total", "", t.total)]
        rows += [("model", k, v) for k, v in sorted(t.by_model.items())]
        rows += [("device", k, v) for k, v in sorted(t.by_device.items())]
        for group, name, totals in rows:
            d = totals.as_dict()
            writer.writerow(
                [report.month, t.tenant, t.tenant_id or "", group, name]
                + [d[c] for c in CSV_COLUMNS[5:-1]]
                + [t.prices.currency]
            )
    return out.getvalue()


def to_tables(report: Report) -> list[Table]:
    """One table per tenant: its total, then a line per model and per device."""
    tables: list[Table] = []
    for t in report.tenants:
        table = Table(
            "", "requests", "errors", "tokens in", "tokens out", "images", "device-h", "Wh",
            "energy from", f"cost ({t.prices.currency})",
            title=f"{t.tenant} — {report.month}",
        )  # fmt: skip
        rows: list[tuple[str, Totals]] = [("[bold]total[/bold]", t.total)]
        rows += [(f"model {k}", v) for k, v in sorted(t.by_model.items())]
        rows += [(f"device {k}", v) for k, v in sorted(t.by_device.items())]
        for label, v in rows:
            table.add_row(
                label,
                str(v.requests),
                str(v.errors),
                str(v.tokens_in),
                str(v.tokens_out),
                str(v.images),
                f"{v.device_seconds / 3600:.3f}",
                f"{v.energy_wh:.1f}",
                v.energy_basis,
                f"{v.cost:.4f}",
            )
        tables.append(table)
    return tables
