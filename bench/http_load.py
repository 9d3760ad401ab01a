"""A bounded, closed-loop HTTP load generator for loopback benchmarks.

Each of `--concurrency` workers owns one keep-alive connection and sends one request at a time,
as soon as the previous answer arrived (closed loop: throughput and latency are measured
together). The run stops after `--requests` requests or `--duration` seconds, whichever comes
first, after an unrecorded `--warmup`. It prints throughput, latency percentiles, status
counts and the generator's own CPU use (so a saturated generator shows up).

Clients:
- `raw` (default): a minimal HTTP/1.1 client on asyncio protocols: prebuilt request bytes,
  one Content-Length parse per answer. About 20-40 µs of CPU per request, so on a 2-core
  machine it leaves the engine its core.
- `aiohttp`: one shared ClientSession/TCPConnector (limit = concurrency, keep-alive).
  Costlier per request; useful to cross-check the raw client.
- `wrk`: runs `wrk` (apt-get install wrk) with a generated Lua script; bounded by duration only.

PATH may contain `{key}`, replaced by `k0`..`k{N-1}` with N = `--keys`, picked at random
(seeded) per request. Example:

    python bench/http_load.py http://127.0.0.1:8080/Counter/{key}/add --body 1 \
        --concurrency 32 --keys 1000 --duration 10 --requests 50000
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import resource
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.parse
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any


@dataclass
class LoadResult:
    """What one run measured. Latencies in milliseconds."""

    client: str
    concurrency: int
    requests: int
    errors: int
    seconds: float
    throughput: float
    p50_ms: float
    p90_ms: float
    p99_ms: float
    max_ms: float
    statuses: dict[str, int] = field(default_factory=dict)
    generator_cpu_pct: float = 0.0

    def summary(self) -> str:
        return (
            f"{self.throughput:,.0f} req/s  p50 {self.p50_ms:.2f} ms  p90 {self.p90_ms:.2f} ms  "
            f"p99 {self.p99_ms:.2f} ms  max {self.max_ms:.1f} ms  "
            f"({self.requests} requests in {self.seconds:.1f} s, {self.errors} errors, "
            f"statuses {self.statuses}, generator CPU {self.generator_cpu_pct:.0f}% of a core)"
        )


def percentile(sorted_values: list[float], pct: float) -> float:
    """Nearest-rank percentile of an ascending list (0 for an empty one)."""
    if not sorted_values:
        return 0.0
    rank = max(0, min(len(sorted_values) - 1, round(pct / 100 * len(sorted_values) + 0.5) - 1))
    return sorted_values[rank]


class Recorder:
    """Counts requests, statuses and latencies, and decides when the run ends."""

    def __init__(self, max_requests: int, duration: float, warmup: float) -> None:
        self.max_requests = max_requests
        self.warmup_until = time.perf_counter() + warmup
        self.duration = duration
        self.started = 0.0
        self.deadline = float("inf")
        self.latencies_ns: list[int] = []
        self.statuses: Counter[str] = Counter()
        self.errors = 0
        self.issued = 0
        self.cpu_start = 0.0
        self.finished = 0.0

    def may_send(self) -> bool:
        """Whether a worker may start another request (counts it if so)."""
        now = time.perf_counter()
        if now < self.warmup_until:
            return True
        if self.started == 0.0:
            self.started = now
            self.deadline = now + self.duration
            self.cpu_start = time.process_time()
        if now >= self.deadline or self.issued >= self.max_requests:
            return False
        self.issued += 1
        return True

    def record(self, sent_ns: int, status: int) -> None:
        if self.started == 0.0 or sent_ns < self.started * 1e9:
            return  # a warm-up request
        self.latencies_ns.append(time.perf_counter_ns() - sent_ns)
        self.statuses[str(status)] += 1
        if not 200 <= status < 300:
            self.errors += 1

    def fail(self) -> None:
        if self.started:
            self.errors += 1
            self.statuses["conn-error"] += 1

    def result(self, client: str, concurrency: int) -> LoadResult:
        elapsed = max(time.perf_counter() - self.started, 1e-9) if self.started else 1e-9
        cpu = time.process_time() - self.cpu_start
        lat = sorted(ns / 1e6 for ns in self.latencies_ns)
        return LoadResult(
            client=client, concurrency=concurrency, requests=len(lat), errors=self.errors,
            seconds=elapsed, throughput=len(lat) / elapsed,
            p50_ms=percentile(lat, 50), p90_ms=percentile(lat, 90), p99_ms=percentile(lat, 99),
            max_ms=lat[-1] if lat else 0.0, statuses=dict(self.statuses),
            generator_cpu_pct=100 * cpu / elapsed,
        )  # fmt: skip


class Paths:
    """The request targets: PATH with `{key}` replaced by a random one of `keys` keys."""

    def __init__(self, path: str, keys: int, seed: int) -> None:
        self.template = path
        self.keyed = "{key}" in path
        self.keys = max(1, keys)
        self.rng = random.Random(seed)

    def next(self) -> str:
        if not self.keyed:
            return self.template
        return self.template.replace("{key}", f"k{self.rng.randrange(self.keys)}")


# -- raw asyncio client ------------------------------------------------------------------


class _RawConnection(asyncio.Protocol):
    """One keep-alive HTTP/1.1 connection; `request` sends prebuilt bytes, returns the status."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.buffer = bytearray()
        self.waiter: asyncio.Future[int] | None = None
        self.closed = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_exception(exc or ConnectionResetError("connection closed"))

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        end = self.buffer.find(b"\r\n\r\n")
        if end < 0:
            return
        head = bytes(self.buffer[:end]).lower()
        at = head.find(b"\r\ncontent-length:")
        if at < 0:
            self._finish_error(ValueError("answer without content-length"))
            return
        line_end = head.find(b"\r\n", at + 2)
        length = int(head[at + 17 : line_end if line_end > 0 else len(head)])
        if len(self.buffer) < end + 4 + length:
            return
        status = int(head[9:12])
        del self.buffer[: end + 4 + length]
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_result(status)

    def _finish_error(self, error: Exception) -> None:
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_exception(error)
        if self.transport is not None:
            self.transport.close()

    async def request(self, data: bytes) -> int:
        assert self.transport is not None
        self.waiter = asyncio.get_running_loop().create_future()
        self.transport.write(data)
        return await self.waiter


async def _raw_worker(
    host: str, port: int, paths: Paths, body: bytes, rec: Recorder, cache: dict[str, bytes]
) -> None:
    loop = asyncio.get_running_loop()
    conn: _RawConnection | None = None
    while rec.may_send():
        path = paths.next()
        data = cache.get(path)
        if data is None:
            data = (
                f"POST {path} HTTP/1.1\r\nHost: {host}:{port}\r\n"
                f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
            ).encode() + body
            cache[path] = data
        try:
            if conn is None or conn.closed:
                _, conn = await loop.create_connection(_RawConnection, host, port)
            sent = time.perf_counter_ns()
            status = await conn.request(data)
        except (OSError, ValueError):
            rec.fail()
            conn = None
            await asyncio.sleep(0.01)
            continue
        rec.record(sent, status)
    if conn is not None and conn.transport is not None:
        conn.transport.close()


# -- aiohttp client ----------------------------------------------------------------------


async def _aiohttp_run(
    base: str, paths: Paths, body: bytes, rec: Recorder, concurrency: int
) -> None:
    import aiohttp

    connector = aiohttp.TCPConnector(limit=concurrency, force_close=False)
    headers = {"content-type": "application/json"}
    async with aiohttp.ClientSession(base, connector=connector, headers=headers) as session:

        async def worker() -> None:
            while rec.may_send():
                sent = time.perf_counter_ns()
                try:
                    async with session.post(paths.next(), data=body) as resp:
                        await resp.read()
                        rec.record(sent, resp.status)
                except aiohttp.ClientError:
                    rec.fail()
                    await asyncio.sleep(0.01)

        await asyncio.gather(*(worker() for _ in range(concurrency)))


# -- wrk ---------------------------------------------------------------------------------

_WRK_LUA = """
wrk.method = "POST"
wrk.body = %(body)s
wrk.headers["Content-Type"] = "application/json"
local template = %(path)s
local keys = %(keys)d
math.randomseed(%(seed)d)
request = function()
  local path = template:gsub("{key}", "k" .. math.random(0, keys - 1))
  return wrk.format(nil, path)
end
done = function(summary, latency, requests)
  local errors = summary.errors.status + summary.errors.connect + summary.errors.read
    + summary.errors.write + summary.errors.timeout
  io.write(string.format(
    "WRK-JSON {\\"requests\\": %%d, \\"errors\\": %%d, \\"us\\": %%d, \\"p50\\": %%d, "
    .. "\\"p90\\": %%d, \\"p99\\": %%d, \\"max\\": %%d}\\n",
    summary.requests, errors, summary.duration, latency:percentile(50),
    latency:percentile(90), latency:percentile(99), latency.max))
end
"""


def _lua_string(value: str) -> str:
    return json.dumps(value)  # a JSON string literal is a valid Lua string literal here


def _wrk_run(url: str, args: argparse.Namespace, body: bytes) -> LoadResult:
    wrk = shutil.which("wrk")
    if wrk is None:
        raise SystemExit("wrk is not installed (apt-get install wrk), use --client raw")
    parsed = urllib.parse.urlsplit(url)
    base = f"{parsed.scheme}://{parsed.netloc}"
    script = _WRK_LUA % {
        "body": _lua_string(body.decode()), "path": _lua_string(parsed.path),
        "keys": max(1, args.keys), "seed": args.seed,
    }  # fmt: skip
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as f:
        f.write(script)
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    out = subprocess.run(
        [wrk, "-t1", f"-c{args.concurrency}", f"-d{max(1, round(args.duration))}s",
         "-s", f.name, base],
        capture_output=True, text=True, timeout=args.duration + 60, check=False,
    )  # fmt: skip
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    Path(f.name).unlink()
    line = next((x for x in out.stdout.splitlines() if x.startswith("WRK-JSON ")), None)
    if line is None:
        raise SystemExit(f"wrk failed:\n{out.stdout}\n{out.stderr}")
    data = json.loads(line[len("WRK-JSON ") :])
    seconds = data["us"] / 1e6
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return LoadResult(
        client="wrk", concurrency=args.concurrency, requests=data["requests"],
        errors=data["errors"], seconds=seconds, throughput=data["requests"] / seconds,
        p50_ms=data["p50"] / 1000, p90_ms=data["p90"] / 1000, p99_ms=data["p99"] / 1000,
        max_ms=data["max"] / 1000, generator_cpu_pct=100 * cpu / seconds,
    )  # fmt: skip


# -- entry points ------------------------------------------------------------------------


async def run_load(url: str, args: argparse.Namespace) -> LoadResult:
    """Runs one bounded load against URL (a `{key}` in its path is substituted)."""
    parsed = urllib.parse.urlsplit(url)
    host, port = parsed.hostname or "127.0.0.1", parsed.port or 80
    body = args.body.encode()
    paths = Paths(parsed.path + (f"?{parsed.query}" if parsed.query else ""), args.keys, args.seed)
    rec = Recorder(args.requests, args.duration, args.warmup)
    if args.client == "raw":
        cache: dict[str, bytes] = {}
        await asyncio.gather(
            *(_raw_worker(host, port, paths, body, rec, cache) for _ in range(args.concurrency))
        )
    else:
        await _aiohttp_run(f"{parsed.scheme}://{parsed.netloc}", paths, body, rec, args.concurrency)
    return rec.result(args.client, args.concurrency)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description="Bounded closed-loop HTTP load over loopback; prints throughput and "
        "latency percentiles. Typical runtime: --warmup + --duration seconds.",
    )
    parser.add_argument("url", help="target URL; `{key}` in the path is replaced per request")
    parser.add_argument("--client", choices=("raw", "aiohttp", "wrk"), default="raw")
    parser.add_argument("--concurrency", "-c", type=int, default=32, help="connections (32)")
    parser.add_argument("--requests", "-n", type=int, default=50_000, help="at most (50000)")
    parser.add_argument("--duration", "-d", type=float, default=10.0, help="at most, s (10)")
    parser.add_argument("--warmup", type=float, default=1.0, help="unrecorded lead-in, s (1)")
    parser.add_argument("--keys", type=int, default=1000, help="distinct {key} values (1000)")
    parser.add_argument("--body", default="1", help="request body, JSON text ('1')")
    parser.add_argument("--seed", type=int, default=1, help="seed for the key choice (1)")
    parser.add_argument("--json", action="store_true", help="print one JSON object only")
    return parser


def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    if args.client == "wrk":
        result = _wrk_run(args.url, args, args.body.encode())
    else:
        result = asyncio.run(run_load(args.url, args))
    if args.json:
        print(json.dumps(asdict(result)))
    else:
        print(f"{args.url} c={args.concurrency} [{args.client}]: {result.summary()}")
    sys.stdout.flush()


def load_result_from_json(text: str) -> LoadResult:
    data: dict[str, Any] = json.loads(text)
    return LoadResult(**data)


if __name__ == "__main__":
    main()
