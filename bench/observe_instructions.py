"""Instructions per Counter/add request over HTTP, with metrics and tracing off and on.

Timings on a shared 2-core machine move by more than the few per cent this is about, so this
counts instructions instead: for each variant a `headway dev bench/apps.py` engine runs under
`valgrind --tool=callgrind` (which counts every instruction the engine process executes, in
all its threads, whatever else the machine runs) and takes `bench/http_load.py` load twice,
`--small` and `--large` requests on fresh data directories; the difference of the two counts
divided by the difference in requests is the cost of one request, start-up and shut-down
excluded. With tracing on, spans go to an OTLP sink in this process; the engine's exporting
process (`engine/otlp_process.py`) is a child that callgrind does not follow, so its work is
not counted here (`bench/observe_overhead.py` reports its CPU).

What moves the count from run to run is how many requests each group commit took: a commit
costs some 200-240 K instructions whatever its size, and how requests fall into commits depends
on timing. So each run also counts its commits (the batches in the stopped engine's log), and
with `--repeat` 2 or more the variants are compared at the same requests per commit: one
least-squares fit gives every variant its own per-request cost and all of them one cost per
commit (the runs of a variant differ in batching, not in code), and each variant is reported
at the mean batching of all runs, with its standard error.

    python bench/observe_instructions.py --variants off,metrics,traces --repeat 3

Needs valgrind (`apt-get install valgrind`). Runtime: about 1.5 minutes per variant and
repeat on an idle core; `--parallel 2` halves it on two cores.
"""

from __future__ import annotations

import argparse
import math
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import NamedTuple

from headway.engine import keys
from headway.engine.store import Store

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))
from observe_variants import start_sink  # noqa: E402
from observe_variants import variants as observe_variants  # noqa: E402
from run_core import free_port, http  # noqa: E402

_COLLECTED = re.compile(rb"Collected : (\d+)")


class Count(NamedTuple):
    """One engine run: the instructions it executed and the group commits it made."""

    instructions: int
    commits: int


class Slope(NamedTuple):
    """The difference of a long and a short run, per request."""

    instructions: float
    commits: float


class Compared(NamedTuple):
    """A variant's instructions per request at the mean batching of all runs, and its standard
    error and that of its difference from the first variant (0 for the first itself)."""

    per_request: float
    error: float
    difference_error: float


def commits(data: Path) -> int:
    """Group commits a stopped engine made: each wrote one batch under `log/`."""
    store = Store(data)
    try:
        return sum(1 for _ in store.scan(keys.LOG))
    finally:
        store.db.close()


def instructions(env: dict[str, str], requests: int, work: Path) -> Count:
    """Instructions an engine under callgrind executed, from start to a clean stop, having
    served `requests` Counter/add requests (plus one to see it is up), and its commits."""
    port, admin_port = free_port(), free_port()
    data = Path(tempfile.mkdtemp(prefix="data-", dir=work))
    log = work / f"{data.name}.log"
    with log.open("wb") as out:
        engine = subprocess.Popen(
            ["valgrind", "--tool=callgrind", f"--callgrind-out-file={data}.cg",
             sys.executable, "-m", "headway.engine", "dev", str(BENCH / "apps.py"),
             "--data-dir", str(data), "--ingress-port", str(port),
             "--admin-port", str(admin_port)],
            stdout=out, stderr=subprocess.STDOUT, env=env, cwd=work,
        )  # fmt: skip
        deadline = time.monotonic() + 300
        while http("POST", f"http://127.0.0.1:{port}/Counter/warm/add", b"1", 120) != 200:
            if engine.poll() is not None or time.monotonic() > deadline:
                tail = log.read_bytes()[-2000:].decode(errors="replace")
                raise SystemExit(f"the engine did not start; the end of its output:\n{tail}")
            time.sleep(0.5)
        subprocess.run(
            [sys.executable, str(BENCH / "http_load.py"),
             f"http://127.0.0.1:{port}/Counter/{{key}}/add", "-c", "32", "--keys", "1000",
             "--body", "1", "-n", str(requests), "-d", "3600", "--warmup", "0", "--json"],
            check=True, capture_output=True,
        )  # fmt: skip
        engine.send_signal(signal.SIGINT)
        engine.wait(600)
    found = _COLLECTED.search(log.read_bytes())
    if found is None:
        raise SystemExit(f"no instruction count in {log}")
    return Count(int(found.group(1)), commits(data))


def compare(slopes: dict[str, list[Slope]]) -> tuple[float, dict[str, Compared]] | None:
    """The fitted cost of a group commit (K instructions), and each variant at the mean
    commits per request of all runs (see the module's docstring); None if no variant has two
    runs that differ in batching (nothing to fit the commit's cost on)."""
    mean_x = {name: sum(s.commits for s in runs) / len(runs) for name, runs in slopes.items()}
    mean_y = {name: sum(s.instructions for s in runs) / len(runs) for name, runs in slopes.items()}
    sxx = sum((s.commits - mean_x[name]) ** 2 for name, runs in slopes.items() for s in runs)
    count = sum(len(runs) for runs in slopes.values())
    if sxx == 0 or count <= len(slopes) + 1:
        return None
    per_commit = sum(
        (s.commits - mean_x[name]) * (s.instructions - mean_y[name])
        for name, runs in slopes.items() for s in runs
    ) / sxx  # fmt: skip
    residuals = sum(
        (s.instructions - mean_y[name] - per_commit * (s.commits - mean_x[name])) ** 2
        for name, runs in slopes.items() for s in runs
    )  # fmt: skip
    variance = residuals / (count - len(slopes) - 1)
    overall_x = sum(s.commits for runs in slopes.values() for s in runs) / count
    first = next(iter(slopes))

    def error(name: str, minus_first: bool) -> float:
        """Standard error of a variant's value at `overall_x` (of its difference from the
        first variant's, if `minus_first`)."""
        n = len(slopes[name])
        if not minus_first:
            return math.sqrt(variance * (1 / n + (overall_x - mean_x[name]) ** 2 / sxx))
        n0 = len(slopes[first])
        return math.sqrt(variance * (1 / n + 1 / n0 + (mean_x[name] - mean_x[first]) ** 2 / sxx))

    return per_commit, {
        name: Compared(
            mean_y[name] + per_commit * (overall_x - mean_x[name]),
            error(name, False),
            0.0 if name == first else error(name, True),
        )
        for name in slopes
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--variants", default="off,metrics,traces1%,traces",
        help="comma-separated, of off, metrics, traces1%%, traces (all); the first is the base",
    )  # fmt: skip
    parser.add_argument("--repeat", type=int, default=3, help="measurements per variant (3)")
    parser.add_argument("--small", type=int, default=300, help="requests of the short run")
    parser.add_argument("--large", type=int, default=1500, help="requests of the long run")
    parser.add_argument(
        "--parallel", type=int, default=1,
        help="engines measured at once (1); counts do not depend on it, batching is corrected",
    )  # fmt: skip
    args = parser.parse_args(argv)

    sink, otlp = start_sink()
    variants = observe_variants(otlp)
    names = args.variants.split(",")
    unknown = set(names) - set(variants)
    if unknown:
        parser.error(f"unknown variants: {', '.join(sorted(unknown))}")
    base = {k: v for k, v in os.environ.items() if not k.startswith("HEADWAY_")}
    slopes: dict[str, list[Slope]] = {name: [] for name in names}
    requests = args.large - args.small

    def measure(name: str, work: Path) -> Slope:
        env = {**base, **variants[name]}
        small = instructions(env, args.small, work)
        large = instructions(env, args.large, work)
        return Slope(
            (large.instructions - small.instructions) / requests / 1000,
            (large.commits - small.commits) / requests,
        )

    with (
        tempfile.TemporaryDirectory(prefix="headway-instructions-") as work,
        ThreadPoolExecutor(args.parallel) as pool,
    ):
        runs = [
            (name, pool.submit(measure, name, Path(work)))
            for _ in range(args.repeat) for name in names
        ]  # fmt: skip
        for number, (name, future) in enumerate(runs, 1):
            slope = future.result()
            slopes[name].append(slope)
            print(f"run {number}/{len(runs)} {name:>8}: {slope.instructions:,.1f} K "
                  f"instructions/request, {slope.commits:.4f} commits/request",
                  flush=True)  # fmt: skip
    sink.shutdown()
    report(slopes)


def report(slopes: dict[str, list[Slope]]) -> None:
    """Prints each variant's cost per request against the first variant's."""
    names = list(slopes)
    fitted = compare(slopes)
    if fitted is None:
        print("\nK instructions per request, means, not corrected for batching "
              "(that needs --repeat 2 or more):")  # fmt: skip
        means = {n: sum(s.instructions for s in slopes[n]) / len(slopes[n]) for n in names}
        for name in names:
            print(f"  {name:>8}: {means[name]:,.1f} ({means[name] / means[names[0]]:.3f}x)")
        return
    per_commit, compared = fitted
    runs = [s for r in slopes.values() for s in r]
    per_request = sum(s.commits for s in runs) / len(runs)
    print(f"\none group commit: {per_commit:,.0f} K instructions (fitted over {len(runs)} runs)")
    print(f"K instructions per request at {1 / per_request:.1f} requests per commit "
          f"(the mean of all runs), ± standard error:")  # fmt: skip
    base = compared[names[0]].per_request
    for name in names:
        value, error, difference_error = compared[name]
        line = f"  {name:>8}: {value:,.1f} ± {error:.1f}"
        if name != names[0]:
            difference = value - base
            line += (f"   {difference:+.1f} ± {difference_error:.1f} "
                     f"({100 * difference / base:+.2f} % ± {100 * difference_error / base:.2f})"
                     f" above {names[0]}")  # fmt: skip
        print(line)


if __name__ == "__main__":
    main()
