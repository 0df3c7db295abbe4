"""Soak fuzzing: schemathesis over sparkplane's whole OpenAPI schema, per database,
against a live gateway with one fake OpenAI engine, until at least `--cases`
requests were made.

Each round is one `st run` (all phases, all checks, schema-valid and invalid
data, the hooks of tests/api/schemathesis_hooks.py steering cases at the
registered model) with a fresh random seed; rounds repeat until the case count
is reached. Prints, per database: cases, 5xx (or no answer) count and contract
breaks, the same judgement as tests/api/test_schemathesis.py (the checks it
names advisory are counted apart). Goal: 0 and 0. Usage:

    python bench/soak_fuzz.py [--cases 10000] [--examples 200] [--db sqlite,postgres]
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import structlog

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.api import schemathesis_hooks as hooks  # noqa: E402
from tests.api.test_schemathesis import (  # noqa: E402
    ADVISORY,
    comfyui_on_purpose,
    run_schemathesis,
)
from tests.fakes.openai_engine import FakeOpenAIEngine  # noqa: E402
from tests.support.gateway import running_gateway  # noqa: E402
from tests.support.services import fresh_postgres_database  # noqa: E402

from sparkplane.config import Settings  # noqa: E402


async def soak(database: str, url: str | None, cases: int, examples: int) -> dict[str, object]:
    """Rounds against one database until `cases` requests were made; the figures."""
    with tempfile.TemporaryDirectory() as folder:
        home = Path(folder)
        settings = Settings(
            home=home / "home",
            database_url=url,
            discover=False,
            auth_enabled=False,
            health_interval_s=1.0,
            probe_timeout_s=0.5,
            log_level="error",
            log_format="json",
        )
        made, server_errors, rounds = 0, 0, 0
        broken: set[str] = set()
        advisory: Counter[str] = Counter()
        errors: list[str] = []
        started = time.perf_counter()
        async with FakeOpenAIEngine() as engine, running_gateway(settings) as gw:
            r = await gw.client.post(
                "/api/devices", json={"url": engine.url, "name": hooks.DEVICE, "kind": "openai"}
            )
            r.raise_for_status()
            while made < cases:
                report = await run_schemathesis(gw, engine, home, examples)
                rounds += 1
                made += len(report.exchanges)
                errors.extend(report.errors)
                server_errors += sum(
                    1
                    for ex in report.exchanges
                    if (ex.status is None or ex.status >= 500) and not comfyui_on_purpose(ex)
                )
                for f in report.findings:
                    if f.code in ADVISORY:
                        advisory[f.code] += 1
                    elif not (f.exchange and comfyui_on_purpose(f.exchange)):
                        broken.add(str(f)[:300])
                print(
                    f"  {database}: round {rounds} (seed {report.seed}): {made:,} cases so far",
                    flush=True,
                )
            alive = (await gw.client.get("/healthz")).status_code == 200
        return {
            "database": database,
            "cases": made,
            "rounds": rounds,
            "seconds": round(time.perf_counter() - started, 1),
            "5xx": server_errors,
            "contract_breaks": len(broken),
            "advisory": dict(advisory),
            "run_errors": len(errors),
            "alive_after": alive,
            "broken": sorted(broken)[:20],
        }


async def main() -> None:
    # Only errors from the server in the loop: the fuzzing makes thousands of devices.
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.ERROR))
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=10_000, help="cases per database")
    parser.add_argument("--examples", type=int, default=200, help="max examples per operation")
    parser.add_argument("--db", default="sqlite,postgres", help="databases, comma-separated")
    args = parser.parse_args()
    results = []
    for database in args.db.split(","):
        if database == "postgres":
            async with fresh_postgres_database() as url:
                results.append(await soak(database, url, args.cases, args.examples))
        else:
            results.append(await soak(database, None, args.cases, args.examples))
    print()
    print(f"{'database':10} {'cases':>8} {'rounds':>6} {'s':>7} {'5xx':>5} {'breaks':>6}  advisory")
    for r in results:
        print(
            f"{r['database']:10} {r['cases']:>8,} {r['rounds']:>6} {r['seconds']:>7} "
            f"{r['5xx']:>5} {r['contract_breaks']:>6}  {r['advisory']}"
        )
        for line in r["broken"]:  # type: ignore[attr-defined]
            print(f"    break: {line}")
        if r["run_errors"]:
            print(f"    schemathesis reported {r['run_errors']} run errors")
        if not r["alive_after"]:
            print("    the server did not answer /healthz afterwards")


if __name__ == "__main__":
    asyncio.run(main())
