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

    python bench/observe_instructions.py --variants off,metrics,traces --repeat 2

Needs valgrind (`apt-get install valgrind`). Runtime: about 1.5 minutes per variant and
repeat on an idle core.
"""

from __future__ import annotations

import argparse
import os
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))
from observe_variants import start_sink  # noqa: E402
from observe_variants import variants as observe_variants  # noqa: E402
from run_core import free_port, http  # noqa: E402

_COLLECTED = re.compile(rb"Collected : (\d+)")


def instructions(env: dict[str, str], requests: int, work: Path) -> int:
    """Instructions an engine under callgrind executed, from start to a clean stop, having
    served `requests` Counter/add requests (plus one to see it is up)."""
    port = free_port()
    data = Path(tempfile.mkdtemp(prefix="data-", dir=work))
    log = work / f"{data.name}.log"
    with log.open("wb") as out:
        engine = subprocess.Popen(
            ["valgrind", "--tool=callgrind", f"--callgrind-out-file={data}.cg",
             sys.executable, "-m", "headway.engine", "dev", str(BENCH / "apps.py"),
             "--data-dir", str(data), "--ingress-port", str(port),
             "--admin-port", str(free_port())],
            stdout=out, stderr=subprocess.STDOUT, env=env, cwd=work,
        )  # fmt: skip
        deadline = time.monotonic() + 300
        while http("POST", f"http://127.0.0.1:{port}/Counter/warm/add", b"1", 120) != 200:
            if engine.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"the engine did not start: see {log}")
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
    return int(found.group(1))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--variants", default="off,metrics,traces1%,traces",
        help="comma-separated, of off, metrics, traces1%%, traces (all)",
    )  # fmt: skip
    parser.add_argument("--repeat", type=int, default=1, help="measurements per variant (1)")
    parser.add_argument("--small", type=int, default=300, help="requests of the short run")
    parser.add_argument("--large", type=int, default=1500, help="requests of the long run")
    args = parser.parse_args(argv)

    sink, otlp = start_sink()
    variants = observe_variants(otlp)
    names = args.variants.split(",")
    unknown = set(names) - set(variants)
    if unknown:
        parser.error(f"unknown variants: {', '.join(sorted(unknown))}")
    base = {k: v for k, v in os.environ.items() if not k.startswith("HEADWAY_")}
    results: dict[str, list[float]] = {name: [] for name in names}
    with tempfile.TemporaryDirectory(prefix="headway-instructions-") as work:
        for r in range(args.repeat):
            for name in names:
                env = {**base, **variants[name]}
                small = instructions(env, args.small, Path(work))
                large = instructions(env, args.large, Path(work))
                per_request = (large - small) / (args.large - args.small) / 1000
                results[name].append(per_request)
                print(f"repeat {r + 1} {name:>8}: {per_request:,.1f} K instructions/request",
                      flush=True)  # fmt: skip
    sink.shutdown()
    first = statistics.median(results[names[0]])
    print(f"\nmedian K instructions per request (ratio to {names[0]}):")
    for name in names:
        median = statistics.median(results[name])
        print(f"  {name:>8}: {median:,.1f} ({median / first:.3f}x)  runs: "
              + ", ".join(f"{x:,.1f}" for x in results[name]))  # fmt: skip


if __name__ == "__main__":
    main()
