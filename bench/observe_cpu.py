"""CPU per invocation with metrics and tracing off and on, in one process, without HTTP.

Where `observe_overhead.py` measures the whole HTTP path on a shared machine (noisy), this
drives an in-process engine directly: `--concurrency` tasks submit `Counter/add` invocations
and wait for their outcomes (durability on), and the process's CPU time per invocation is
taken, in alternating rounds over the variants. Without the HTTP layer the hooks' share is
larger than it is behind the ingress, so these ratios are an upper bound.

Traces go over OTLP/HTTP to a sink in a child process that discards every export.
`--express` submits each call through the express lane, as the HTTP ingress does for
Counter/add; `--variant` runs one variant only (e.g. under `valgrind --tool=callgrind`, whose
instruction counts do not depend on what else the machine runs).

    python bench/observe_cpu.py --rounds 8 --invocations 6000 --express

Runtime: rounds x 4 variants x ~2-4 s.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))
from apps import counter  # noqa: E402
from headway.engine.config import Config  # noqa: E402
from headway.engine.engine import Engine  # noqa: E402
from headway.engine.entries import Invoke  # noqa: E402
from headway.sdk import ids  # noqa: E402
from headway.sdk.journal import Target  # noqa: E402
from run_core import free_port  # noqa: E402

_SINK = """
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
import sys
class Sink(BaseHTTPRequestHandler):
    def do_POST(self):
        self.rfile.read(int(self.headers.get("content-length", 0)))
        self.send_response(200); self.send_header("content-length", "0"); self.end_headers()
    def log_message(self, *args): pass
ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), Sink).serve_forever()
"""


async def measure(
    config: Config, invocations: int, concurrency: int, keys: int, express: bool
) -> float:
    """CPU µs per invocation of one fresh engine under closed-loop load."""
    engine = Engine(config, [counter])
    await engine.start()

    async def one(i: int) -> None:
        key = f"k{i % keys}"
        invocation_id = ids.new_invocation_id(ids.partition_key_for("Counter", key))
        waiter = engine.wait_for(invocation_id, new=True)
        invoke = Invoke(invocation_id, Target("Counter", "add", key), b"1", {})
        lane = engine.express if express else None
        await (engine.submit(invoke) if lane is None else lane.submit_durable(invoke))
        await waiter
        engine.forget_waiter(invocation_id, waiter)

    async def worker(first: int) -> None:
        for i in range(first, invocations, concurrency):
            await one(i)

    for i in range(200):  # warm-up
        await one(i)
    cpu = time.process_time()
    await asyncio.gather(*(worker(k) for k in range(concurrency)))
    cpu = time.process_time() - cpu
    await engine.stop()
    return 1e6 * cpu / invocations


async def main(args: argparse.Namespace, otlp: str) -> None:
    variants = {
        "off": {"metrics": False},
        "metrics": {},
        "traces1%": {"otlp_endpoint": otlp, "trace_sample_ratio": 0.01},
        "traces": {"otlp_endpoint": otlp},
    }
    names = list(variants) if args.variant is None else [args.variant]
    results: dict[str, list[float]] = {name: [] for name in names}
    with tempfile.TemporaryDirectory(prefix="headway-observe-cpu-") as work:
        for r in range(args.rounds):
            for name in names[r % len(names) :] + names[: r % len(names)]:
                config = Config(data_dir=Path(work) / f"{name}-{r}", **variants[name])  # type: ignore[arg-type]
                us = await measure(
                    config, args.invocations, args.concurrency, args.keys, args.express
                )
                results[name].append(us)
                print(f"round {r + 1} {name:>8}: {us:,.1f} CPU µs/invocation", flush=True)
    off = statistics.median(results[names[0]])
    print(f"\nmedian CPU µs per invocation (ratio to {names[0]}):")
    for name in names:
        median = statistics.median(results[name])
        print(f"  {name:>8}: {median:,.1f} ({median / off:.3f}x)  min {min(results[name]):,.1f}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=8, help="rounds over all variants (8)")
    parser.add_argument("--invocations", "-n", type=int, default=6000, help="per round (6000)")
    parser.add_argument("--concurrency", "-c", type=int, default=32)
    parser.add_argument("--keys", type=int, default=1000)
    parser.add_argument("--express", action="store_true", help="through the express lane")
    parser.add_argument("--variant", choices=("off", "metrics", "traces1%", "traces"))
    arguments = parser.parse_args()
    port = free_port()
    sink = subprocess.Popen([sys.executable, "-c", _SINK, str(port)])
    try:
        asyncio.run(main(arguments, f"http://127.0.0.1:{port}"))
    finally:
        sink.terminate()
        sink.wait(10)
