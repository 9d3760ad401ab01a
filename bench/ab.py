"""Interleaved A/B of two (or more) Headway source trees under the same closed-loop load.

Each TREE is a checkout of this repository (a directory with `engine/`, `sdk/`, `headway/`),
for example `git worktree add /tmp/before HEAD` next to the working tree. Every tree gets its
own `headway dev bench/apps.py` process (run with that tree first on PYTHONPATH, through a
temporary `headway` package of symlinks), all started up front; then each round runs the
same `bench/http_load.py` load against each engine in turn (order alternating per round), so
slow drifts of a shared machine hit every tree alike. Per round it prints throughput, p50,
p99, the engine's CPU per request and the CPU other processes used; at the end the medians
and each tree's ratio to the first.

    python bench/ab.py --tree before=/tmp/before --tree after=. --rounds 6 --duration 3 \
        --path '/Counter/{key}/add' --concurrency 32 --keys 1000

Runtime: trees x rounds x (duration + warmup + ~0.5 s), e.g. 2 x 6 x 4 s = under 1 min.
"""

from __future__ import annotations

import argparse
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
from run_core import cpu_seconds, free_port, http, system_busy_seconds  # noqa: E402


def package_dir(tree: Path, into: Path) -> Path:
    """A directory holding a `headway` package made of symlinks into `tree`'s sources."""
    pkg = into / "headway"
    pkg.mkdir(parents=True)
    for name in ("__init__.py", "py.typed"):
        (pkg / name).symlink_to(tree / "headway" / name)
    for sub in ("engine", "sdk", "connectors"):
        (pkg / sub).symlink_to(tree / sub)
    return into


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description="Interleaved A/B of Headway source trees under the same load "
        "(medians and ratios to the first tree). Runtime about trees x rounds x (duration+1) s.",
    )
    parser.add_argument(
        "--tree", action="append", required=True, metavar="NAME=PATH",
        help="a checkout to measure (repeat; the first is the reference)",
    )  # fmt: skip
    parser.add_argument("--rounds", type=int, default=6, help="rounds (6)")
    parser.add_argument("--duration", type=float, default=3.0, help="s per measurement (3)")
    parser.add_argument("--warmup", type=float, default=0.5, help="unrecorded s (0.5)")
    parser.add_argument("--path", default="/Counter/{key}/add", help="request path")
    parser.add_argument("--concurrency", "-c", type=int, default=32)
    parser.add_argument("--keys", type=int, default=1000)
    parser.add_argument("--body", default="1")
    args = parser.parse_args(argv)

    work = Path(tempfile.mkdtemp(prefix="headway-ab-"))
    engines: dict[str, tuple[subprocess.Popen[bytes], int]] = {}
    rows: dict[str, list[dict[str, float]]] = {}
    try:
        for spec in args.tree:
            name, _, path = spec.partition("=")
            tree = Path(path).resolve()
            env = dict(os.environ, PYTHONPATH=str(package_dir(tree, work / f"pkg-{name}")))
            port = free_port()
            log = (work / f"{name}.log").open("wb")
            proc = subprocess.Popen(
                [sys.executable, "-m", "headway.engine", "dev", str(BENCH / "apps.py"),
                 "--data-dir", str(work / f"data-{name}"), "--ingress-port", str(port),
                 "--admin-port", str(free_port())],
                stdout=log, stderr=subprocess.STDOUT, env=env, cwd=work,
            )  # fmt: skip
            engines[name] = (proc, port)
            rows[name] = []
        for name, (proc, port) in engines.items():
            deadline = time.monotonic() + 30
            while http("POST", f"http://127.0.0.1:{port}/Counter/k0/add", b"0") != 200:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise SystemExit(f"engine {name} did not start: see {work}/{name}.log")
                time.sleep(0.05)
        names = list(engines)
        for r in range(args.rounds):
            for name in names if r % 2 == 0 else names[::-1]:
                proc, port = engines[name]
                cpu0, busy0, t0 = cpu_seconds(proc.pid), system_busy_seconds(), time.perf_counter()
                out = subprocess.run(
                    [sys.executable, str(BENCH / "http_load.py"),
                     f"http://127.0.0.1:{port}{args.path}", "--json",
                     "-c", str(args.concurrency), "--keys", str(args.keys), "--body", args.body,
                     "-d", str(args.duration), "--warmup", str(args.warmup), "-n", "10000000"],
                    capture_output=True, text=True, check=True,
                )  # fmt: skip
                elapsed = time.perf_counter() - t0
                engine_cpu = cpu_seconds(proc.pid) - cpu0
                d = json.loads(out.stdout)
                gen_cpu = d["generator_cpu_pct"] / 100 * d["seconds"]
                other = system_busy_seconds() - busy0 - engine_cpu - gen_cpu
                row = {
                    "req/s": d["throughput"], "p50 ms": d["p50_ms"], "p99 ms": d["p99_ms"],
                    "engine µs/req": 1e6 * engine_cpu / max(d["requests"], 1),
                    "other CPU %": max(0.0, 100 * other / elapsed),
                }  # fmt: skip
                rows[name].append(row)
                print(f"round {r + 1} {name:>10}: " + "  ".join(
                    f"{k} {v:,.1f}" for k, v in row.items()), flush=True)  # fmt: skip
        print("\nmedians (ratio to the first tree):")
        ref = {k: statistics.median(x[k] for x in rows[names[0]]) for k in rows[names[0]][0]}
        for name in names:
            med = {k: statistics.median(x[k] for x in rows[name]) for k in rows[name][0]}
            print(f"  {name:>10}: " + "  ".join(
                f"{k} {v:,.1f} ({v / ref[k]:.2f}x)" if ref[k] else f"{k} {v:,.1f}"
                for k, v in med.items()))  # fmt: skip
    finally:
        for proc, _ in engines.values():
            proc.terminate()
            proc.wait(30)


if __name__ == "__main__":
    main()
