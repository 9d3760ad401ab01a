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
the medians and each variant's ratio to `off`.

    python bench/observe_overhead.py --rounds 8 --duration 4 -c 32 --keys 1000

`--baseline DIR` adds `traces@base`: the `traces` variant run from another source tree (a
checkout, e.g. `git archive` of an older commit), so a change to tracing is compared before
and after within the same rounds.

Runtime: 4 x rounds x (duration + warmup + ~0.5 s), e.g. 4 x 8 x 5 s = under 3 min.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

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
        "(1%% and all); medians and ratios to off. Runtime about 4 x rounds x (duration + 1) s.",
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
    args = parser.parse_args(argv)

    sink, otlp = start_sink()
    variants = observe_variants(otlp)
    work = Path(tempfile.mkdtemp(prefix="headway-observe-"))
    if args.baseline is not None:
        pythonpath = str(package_dir(args.baseline.resolve(), work / "baseline"))
        variants["traces@base"] = {**variants["traces"], "PYTHONPATH": pythonpath}
    engines: dict[str, tuple[subprocess.Popen[bytes], int]] = {}
    rows: dict[str, list[dict[str, float]]] = {name: [] for name in variants}
    try:
        for name, extra in variants.items():
            env = {k: v for k, v in os.environ.items() if not k.startswith("HEADWAY_")}
            env.update(extra)
            port = free_port()
            log = (work / f"{name}.log").open("wb")
            engines[name] = (subprocess.Popen(
                [sys.executable, "-m", "headway.engine", "dev", str(BENCH / "apps.py"),
                 "--data-dir", str(work / f"data-{name}"), "--ingress-port", str(port),
                 "--admin-port", str(free_port())],
                stdout=log, stderr=subprocess.STDOUT, env=env, cwd=work,
            ), port)  # fmt: skip
        for name, (proc, port) in engines.items():
            deadline = time.monotonic() + 30
            while http("POST", f"http://127.0.0.1:{port}/Counter/k0/add", b"0") != 200:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise SystemExit(f"engine {name} did not start: see {work}/{name}.log")
                time.sleep(0.05)
        names = list(engines)
        for r in range(args.rounds):
            for name in names[r % len(names) :] + names[: r % len(names)]:
                proc, port = engines[name]
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
                row = {
                    "req/s": d["throughput"], "p50 ms": d["p50_ms"], "p99 ms": d["p99_ms"],
                    "engine µs/req": 1e6 * engine_cpu / max(d["requests"], 1),
                    "exporter µs/req": 1e6 * exporter_cpu / max(d["requests"], 1),
                    "other CPU %": max(0.0, 100 * other / elapsed),
                }  # fmt: skip
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
        for proc, _ in engines.values():
            proc.terminate()
            proc.wait(30)
        sink.shutdown()


if __name__ == "__main__":
    main()
