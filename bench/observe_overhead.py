"""What metrics and tracing cost: Counter/add with them off, metrics on, metrics + traces.

Four `headway dev bench/apps.py` engines run side by side, all started up front:

- `off`: `HEADWAY_METRICS=0`, no OTLP endpoint (nothing is attached to the committer/invoker);
- `metrics`: the default (Prometheus metrics counted per batch and per attempt);
- `traces1%`: metrics and tracing with `HEADWAY_TRACE_SAMPLE_RATIO=0.01`;
- `traces`: metrics and tracing, every trace recorded.

Traces go over OTLP/HTTP to a sink in this process that accepts and discards every export.
The engine makes and sends the spans in a process of its own (`engine/otlp_process.py`);
`exporter µs/req` is that process's CPU per request, beside the engine's.

Each round runs the same closed-loop `bench/http_load.py` load against each engine in turn
(order rotating per round), so drifts of a shared machine hit all alike. At the end it prints
the medians and each variant's ratio to `off`. Every round starts four fresh engines on fresh
data directories (and gives each 1,000 requests before it is measured, which also starts its
exporting process): a process keeps what made it fast or slow (its memory layout, its hash
seed, when its store compacts), several per cent either way, and with one engine per variant
for the whole run that would read as the variant's cost (`--same-engines` does so, to see it).

    python bench/observe_overhead.py --rounds 8 --duration 4 -c 32 --keys 1000

`--baseline DIR` adds `traces@base`: the `traces` variant run from another source tree (a
checkout, e.g. `git archive` of an older commit), so a change to tracing is compared before
and after within the same rounds.

Runtime: rounds x (4 x (duration + warmup + ~0.5 s) + ~6 s of start-up and a first load), e.g.
8 x 26 s = about 3.5 min.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import NamedTuple

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))
from ab import package_dir  # noqa: E402
from observe_variants import Sink, start_sink  # noqa: E402
from observe_variants import variants as observe_variants  # noqa: E402
from run_core import cpu_seconds, free_port, http, system_busy_seconds  # noqa: E402


def children_cpu_seconds(pid: int) -> float:
    """CPU seconds of `pid`'s running child processes (an engine's span exporting process)."""
    total = 0.0
    for task in Path(f"/proc/{pid}/task").iterdir():
        # A thread or a child may end between being listed and being read.
        with contextlib.suppress(FileNotFoundError):
            for child in (task / "children").read_text().split():
                total += cpu_seconds(int(child))
    return total


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description="Counter/add with metrics and tracing off, metrics on, metrics + traces "
        "(1%% and all), fresh engines every round; medians and ratios to off. Runtime about "
        "rounds x (4 x (duration + 1) + 6) s.",
    )
    parser.add_argument("--rounds", type=int, default=8, help="rounds (8)")
    parser.add_argument("--duration", type=float, default=4.0, help="s per measurement (4)")
    parser.add_argument("--warmup", type=float, default=0.5, help="unrecorded s (0.5)")
    parser.add_argument("--concurrency", "-c", type=int, default=32)
    parser.add_argument("--keys", type=int, default=1000)
    parser.add_argument("--json-out", type=Path, help="also write the rows and medians here")
    parser.add_argument(
        "--baseline", type=Path, help="another source tree: also run its traces variant"
    )
    parser.add_argument(
        "--same-engines", action="store_true",
        help="start the engines once, not every round (each variant's process biases it)",
    )  # fmt: skip
    args = parser.parse_args(argv)

    sink, otlp = start_sink()
    variants = observe_variants(otlp)
    work = Path(tempfile.mkdtemp(prefix="headway-observe-"))
    if args.baseline is not None:
        pythonpath = str(package_dir(args.baseline.resolve(), work / "baseline"))
        variants["traces@base"] = {**variants["traces"], "PYTHONPATH": pythonpath}
    rows: dict[str, list[dict[str, float]]] = {name: [] for name in variants}
    names = list(variants)
    engines: dict[str, Engine] = {}
    try:
        for r in range(args.rounds):
            if r == 0 or not args.same_engines:
                stop(engines)
                engines = start(variants, work, r)
            for name in names[r % len(names) :] + names[: r % len(names)]:
                row = measure(engines[name], args)
                rows[name].append(row)
                print(f"round {r + 1} {name:>8}: " + "  ".join(
                    f"{k} {v:,.1f}" for k, v in row.items()), flush=True)  # fmt: skip
        print(f"\nOTLP exports received: {Sink.exports} ({Sink.received_bytes:,} bytes)")
        print("medians (ratio to off):")
        medians = {
            name: {k: statistics.median(x[k] for x in rows[name]) for k in rows[name][0]}
            for name in names
        }
        for name in names:
            print(f"  {name:>8}: " + "  ".join(
                f"{k} {v:,.1f} ({v / medians['off'][k]:.3f}x)" if medians["off"][k]
                else f"{k} {v:,.1f}" for k, v in medians[name].items()))  # fmt: skip
        if args.json_out:
            args.json_out.write_text(json.dumps({"rows": rows, "medians": medians}, indent=2))
    finally:
        stop(engines)
        sink.shutdown()


# Seconds after a first load for an exporting process to be started and ready: a partial batch
# goes out a second after the first fact, and the process then imports for half a second.
_STARTED = 2.0


class Engine(NamedTuple):
    """A running engine: its process, ingress port and data directory."""

    process: subprocess.Popen[bytes]
    port: int
    data: Path


def start(variants: dict[str, dict[str, str]], work: Path, round_number: int) -> dict[str, Engine]:
    """An engine per variant on a fresh data directory, each answering."""
    engines: dict[str, Engine] = {}
    try:
        _start_each(engines, variants, work, round_number)
    except BaseException:
        stop(engines)
        raise
    return engines


def _start_each(
    engines: dict[str, Engine], variants: dict[str, dict[str, str]], work: Path, round_number: int
) -> None:
    """Starts an engine per variant into `engines` (so that the caller can stop those started
    if one fails), waits for each to answer, and gives each a first load."""
    for name, extra in variants.items():
        env = {k: v for k, v in os.environ.items() if not k.startswith("HEADWAY_")}
        env.update(extra)
        port, data = free_port(), work / f"data-{name}-{round_number}"
        with (work / f"{name}-{round_number}.log").open("wb") as log:
            engines[name] = Engine(subprocess.Popen(
                [sys.executable, "-m", "headway.engine", "dev", str(BENCH / "apps.py"),
                 "--data-dir", str(data), "--ingress-port", str(port),
                 "--admin-port", str(free_port())],
                stdout=log, stderr=subprocess.STDOUT, env=env, cwd=work,
            ), port, data)  # fmt: skip
    for name, (proc, port, _) in engines.items():
        deadline = time.monotonic() + 30
        while http("POST", f"http://127.0.0.1:{port}/Counter/k0/add", b"0") != 200:
            if proc.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"engine {name} did not start: see {work}/{name}-*.log")
            time.sleep(0.05)
    for _, port, _ in engines.values():  # past first calls, and the exporting process started
        subprocess.run(
            [sys.executable, str(BENCH / "http_load.py"),
             f"http://127.0.0.1:{port}/Counter/{{key}}/add", "-c", "32", "--keys", "1000",
             "--body", "1", "-n", "1000", "-d", "30", "--warmup", "0", "--json"],
            capture_output=True, check=True,
        )  # fmt: skip
    time.sleep(_STARTED)


def stop(engines: dict[str, Engine]) -> None:
    """Stops the engines and removes their data."""
    for proc, _, data in engines.values():
        proc.terminate()
        proc.wait(30)
        shutil.rmtree(data, ignore_errors=True)


def measure(engine: Engine, args: argparse.Namespace) -> dict[str, float]:
    """One load against one engine: throughput, latency, and the CPU it and others used."""
    proc, port, _ = engine
    cpu0, busy0, t0 = cpu_seconds(proc.pid), system_busy_seconds(), time.perf_counter()
    exporter0 = children_cpu_seconds(proc.pid)
    out = subprocess.run(
        [sys.executable, str(BENCH / "http_load.py"),
         f"http://127.0.0.1:{port}/Counter/{{key}}/add", "--json",
         "-c", str(args.concurrency), "--keys", str(args.keys), "--body", "1",
         "-d", str(args.duration), "--warmup", str(args.warmup), "-n", "10000000"],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    elapsed = time.perf_counter() - t0
    engine_cpu = cpu_seconds(proc.pid) - cpu0
    exporter_cpu = children_cpu_seconds(proc.pid) - exporter0
    d = json.loads(out.stdout)
    gen_cpu = d["generator_cpu_pct"] / 100 * d["seconds"]
    other = system_busy_seconds() - busy0 - engine_cpu - exporter_cpu - gen_cpu
    return {
        "req/s": d["throughput"], "p50 ms": d["p50_ms"], "p99 ms": d["p99_ms"],
        "engine µs/req": 1e6 * engine_cpu / max(d["requests"], 1),
        "exporter µs/req": 1e6 * exporter_cpu / max(d["requests"], 1),
        "other CPU %": max(0.0, 100 * other / elapsed),
    }  # fmt: skip


if __name__ == "__main__":
    main()
