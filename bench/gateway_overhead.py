"""Gateway overhead: the same load straight at an upstream and through one
sparkplane process, at several concurrencies, for a fixed duration each.

Prints requests/s, p50 and p99 for both, and the latency sparkplane adds.
Needs `wrk` (make bench installs it). Usage:

    python bench/gateway_overhead.py [--duration 10] [--concurrency 1 16 64]
"""

from __future__ import annotations

import argparse
import os
import platform
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
BODY = '{"model":"bench-model","messages":[{"role":"user","content":"Say ok."}],"max_tokens":8}'
LUA = """
wrk.method = "POST"
wrk.body = '__BODY__'
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer __KEY__"
done = function(summary, latency, requests)
  local errors = summary.errors.connect + summary.errors.read + summary.errors.write
    + summary.errors.status + summary.errors.timeout
  io.write(string.format("RESULT %d %d %d %d %d\\n", summary.requests, summary.duration,
    latency:percentile(50), latency:percentile(99), errors))
end
""".replace("__BODY__", BODY)


@dataclass
class Result:
    rps: float
    p50_ms: float
    p99_ms: float
    errors: int


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_http(url: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if httpx.get(url, timeout=1).status_code < 500:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise SystemExit(f"{url} did not come up")


def cpu_seconds(pid: int) -> float:
    """User + system CPU the process has used (Linux /proc), 0 where unknown."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def run_wrk(url: str, concurrency: int, duration: int, script: Path) -> Result:
    cmd = [
        "wrk",
        "-t1",
        f"-c{concurrency}",
        f"-d{duration}s",
        "--timeout",
        "10s",
        "-s",
        str(script),
        url,
    ]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    match = re.search(r"RESULT (\d+) (\d+) (\d+) (\d+) (\d+)", out)
    if not match:
        raise SystemExit(f"could not read wrk's output:\n{out}")
    requests, duration_us, p50, p99, errors = map(int, match.groups())
    return Result(requests / (duration_us / 1e6), p50 / 1000, p99 / 1000, errors)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--duration", type=int, default=10, help="seconds per run")
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 16, 64])
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        raise SystemExit(
            "wrk is not installed: run `make bench` (it installs wrk) or apt-get install wrk"
        )

    procs: list[subprocess.Popen[bytes]] = []
    with tempfile.TemporaryDirectory() as tmp:
        try:
            up_port, sp_port = free_port(), free_port()
            procs.append(
                subprocess.Popen(
                    [sys.executable, str(ROOT / "bench/upstream.py"), str(up_port)],
                    stdout=subprocess.DEVNULL,
                )
            )
            upstream = f"http://127.0.0.1:{up_port}"
            wait_http(upstream + "/v1/models")
            env = {**os.environ, "SPARKPLANE_HOME": tmp, "SPARKPLANE_LOG_LEVEL": "warning"}
            sparkplane = [str(Path(sys.executable).parent / "sparkplane")]
            subprocess.run(
                [*sparkplane, "devices", "add", upstream, "--name", "bench"],
                env=env,
                check=True,
                capture_output=True,
            )
            # The gateway runs as shipped, keys required: the load authenticates.
            init = subprocess.run(
                [*sparkplane, "init"], env=env, check=True, capture_output=True, text=True
            )
            key = re.search(r"sp-[0-9a-f]{12}_[A-Za-z0-9_-]{43}", init.stdout)
            if key is None:
                raise SystemExit(f"sparkplane init printed no key:\n{init.stdout}")
            with open(Path(tmp) / "serve.log", "wb") as log:
                procs.append(
                    subprocess.Popen(
                        [*sparkplane, "serve", "--port", str(sp_port), "--no-discover"],
                        env=env,
                        stdout=log,
                        stderr=log,
                    )
                )
            serve_pid = procs[-1].pid
            gateway = f"http://127.0.0.1:{sp_port}"
            wait_http(gateway + "/readyz")
            script = Path(tmp) / "post.lua"
            script.write_text(LUA.replace("__KEY__", key.group(0)))
            # Warm both paths (connection pools, caches) before measuring.
            run_wrk(gateway + "/v1/chat/completions", 16, 2, script)

            print(f"machine: {platform.machine()}, {os.cpu_count()} CPUs, {platform.platform()}")
            print(
                f"python {platform.python_version()}, {args.duration}s per run, wrk -t1, "
                "load generator on the same box"
            )
            header = (
                f"{'conc':>4} | {'direct rps':>10} {'p50 ms':>7} {'p99 ms':>7} | "
                f"{'sparkplane rps':>14} {'p50 ms':>7} {'p99 ms':>7} {'errors':>6} | "
                f"{'added p50 ms':>12} {'CPU us/req':>10}"
            )
            print(header)
            print("-" * len(header))
            for c in args.concurrency:
                direct = run_wrk(upstream + "/v1/chat/completions", c, args.duration, script)
                before = cpu_seconds(serve_pid)
                via = run_wrk(gateway + "/v1/chat/completions", c, args.duration, script)
                cpu_us = (cpu_seconds(serve_pid) - before) * 1e6 / max(1, via.rps * args.duration)
                print(
                    f"{c:>4} | {direct.rps:>10.0f} {direct.p50_ms:>7.2f} {direct.p99_ms:>7.2f} | "
                    f"{via.rps:>14.0f} {via.p50_ms:>7.2f} {via.p99_ms:>7.2f} "
                    f"{via.errors + direct.errors:>6} | "
                    f"{via.p50_ms - direct.p50_ms:>12.2f} {cpu_us:>10.0f}"
                )
        finally:
            for p in procs:
                p.terminate()
            for p in procs:
                p.wait(timeout=15)


if __name__ == "__main__":
    main()
