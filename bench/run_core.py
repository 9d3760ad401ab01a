"""Core benchmarks of a real `headway dev bench/apps.py` process over loopback HTTP.

Measures, with durability on (every group commit is fsynced before anything is acknowledged):

1. start-up: `headway dev` spawn -> `/health` 200 on a fresh data directory (median of 3);
2. engine RSS when idle;
3. closed-loop load (each a separate `bench/http_load.py` process, so the generator does not
   share the engine's interpreter): `Counter/add` at concurrency 1, 32, 128 on 1,000 keys
   and on one hot key; `Steps/three` (3 `ctx.run` steps) at 32; `Counter/add/send` at 32
   (acceptance rate, then the time until the backlog has run). For each: throughput,
   p50/p90/p99/max latency, the engine's CPU use and peak RSS, the generator's CPU use;
4. recovery: a store holding `--history` completed invocations (built by
   `bench/build_history.py` through the engine's own committer and processor) is opened
   (spawn -> healthy), then the engine is SIGKILLed under load and restarted, and the time
   from SIGKILL to the first answered `Counter/add` is measured (`--kills` times).

Typical runtime on a 2-core machine: ~2.5 min for the load part (`--duration 10`), plus about
2.5 min per million invocations of history (`--history 1000000`, the default) and ~10 s for
the kills. `--quick` runs everything shorter (3 s per scenario, 50,000 invocations of history,
about 1 min in all).

    python bench/run_core.py                 # the full run (about 6 min)
    python bench/run_core.py --quick         # a smoke run (about 1 min)
    python bench/run_core.py --only load     # skip the history/recovery part
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import asdict
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))
from http_load import LoadResult, load_result_from_json  # noqa: E402

CLK_TCK = os.sysconf("SC_CLK_TCK")


def say(line: str) -> None:
    print(f"[bench] {line}", file=sys.stderr, flush=True)


_given_ports: set[int] = set()
_giving_ports = threading.Lock()


def free_port() -> int:
    """A port free now and not given before by this process: engines started side by side take
    a while to bind theirs, and meanwhile the system may offer the same free port again."""
    with _giving_ports:
        while True:
            with socket.socket() as s:
                s.bind(("127.0.0.1", 0))
                port = int(s.getsockname()[1])
            if port not in _given_ports:
                _given_ports.add(port)
                return port


def rss_mb(pid: int) -> float:
    """Resident set size of `pid` in MiB, from /proc/PID/status (VmRSS)."""
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of `pid` (all threads), from /proc/PID/stat."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def system_busy_seconds() -> float:
    """CPU seconds all processes spent busy (not idle or iowait), from /proc/stat."""
    with open("/proc/stat") as f:
        values = [int(v) for v in f.readline().split()[1:]]
    return (sum(values) - values[3] - values[4]) / CLK_TCK


def http(method: str, url: str, body: bytes | None = None, timeout: float = 2.0) -> int:
    """The status of one request (0 when the connection failed)."""
    req = urllib.request.Request(
        url, data=body, method=method, headers={"content-type": "application/json"}
    )
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            resp.read()
            return int(resp.status)
    except urllib.error.HTTPError as e:
        return int(e.code)
    except (urllib.error.URLError, ConnectionError, OSError):
        return 0


class Engine:
    """A `headway dev bench/apps.py` subprocess on free ports and a given data directory."""

    def __init__(self, data_dir: Path, log_path: Path) -> None:
        self.data_dir = data_dir
        self.log_path = log_path
        self.ingress_port = free_port()
        self.admin_port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def ingress(self) -> str:
        return f"http://127.0.0.1:{self.ingress_port}"

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def spawn(self) -> float:
        """Starts the process; returns the perf_counter time just before the spawn."""
        log = self.log_path.open("ab")
        started = time.perf_counter()
        self.proc = subprocess.Popen(
            [
                sys.executable, "-m", "headway.engine", "dev", str(BENCH / "apps.py"),
                "--data-dir", str(self.data_dir),
                "--ingress-port", str(self.ingress_port),
                "--admin-port", str(self.admin_port),
            ],
            stdout=log, stderr=subprocess.STDOUT,
        )  # fmt: skip
        log.close()
        return started

    def wait_until(self, ok: Any, timeout: float = 60.0) -> float:
        """Polls `ok()` every 5 ms; returns the perf_counter time it first held."""
        deadline = time.perf_counter() + timeout
        while time.perf_counter() < deadline:
            assert self.proc is not None
            if self.proc.poll() is not None:
                raise RuntimeError(f"engine exited with {self.proc.returncode}:\n{self.log()}")
            if ok():
                return time.perf_counter()
            time.sleep(0.005)
        raise RuntimeError(f"engine not ready after {timeout}s:\n{self.log()[-3000:]}")

    def healthy(self) -> bool:
        return http("GET", f"http://127.0.0.1:{self.admin_port}/health", timeout=0.5) == 200

    def serving(self) -> bool:
        return http("POST", f"{self.ingress}/Counter/k0/add", b"0", timeout=5) == 200

    def start(self) -> float:
        """Spawns and waits for health; returns seconds from spawn to healthy."""
        started = self.spawn()
        return self.wait_until(self.healthy) - started

    def kill(self) -> float:
        """SIGKILL; returns the perf_counter time of the kill."""
        assert self.proc is not None
        killed = time.perf_counter()
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()
        return killed

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.kill()

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""


@contextlib.contextmanager
def sampling(pid: int) -> Iterator[dict[str, float]]:
    """Samples the engine's RSS every 100 ms; yields a dict filled with peak RSS, the engine's
    CPU use and the whole machine's (in % of one core)."""
    out: dict[str, float] = {"rss_peak_mb": rss_mb(pid)}
    stop = threading.Event()

    def sample() -> None:
        while not stop.wait(0.1):
            with contextlib.suppress(OSError):
                out["rss_peak_mb"] = max(out["rss_peak_mb"], rss_mb(pid))

    thread = threading.Thread(target=sample, daemon=True)
    cpu0, busy0, t0 = cpu_seconds(pid), system_busy_seconds(), time.perf_counter()
    thread.start()
    try:
        yield out
    finally:
        stop.set()
        thread.join()
        with contextlib.suppress(OSError):
            elapsed = time.perf_counter() - t0
            out["engine_cpu_pct"] = 100 * (cpu_seconds(pid) - cpu0) / elapsed
            out["machine_cpu_pct"] = 100 * (system_busy_seconds() - busy0) / elapsed


def run_load(
    url: str, concurrency: int, keys: int, args: argparse.Namespace, *, body: str = "1",
    duration: float | None = None, warmup: float | None = None,
) -> LoadResult:  # fmt: skip
    """Runs bench/http_load.py in its own process and returns what it measured."""
    cmd = [
        sys.executable, str(BENCH / "http_load.py"), url, "--json",
        "--client", args.client, "--concurrency", str(concurrency), "--keys", str(keys),
        "--requests", str(args.requests), "--body", body,
        "--duration", str(args.duration if duration is None else duration),
        "--warmup", str(args.warmup if warmup is None else warmup),
    ]  # fmt: skip
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=600, check=False)
    if out.returncode != 0:
        raise RuntimeError(f"load generator failed:\n{out.stderr}")
    return load_result_from_json(out.stdout.strip().splitlines()[-1])


async def _drain(ingress: str, keys: int) -> None:
    """One synchronous `add 0` per key: each returns after the sends queued on its key ran."""
    import aiohttp

    connector = aiohttp.TCPConnector(limit=100)
    timeout = aiohttp.ClientTimeout(total=600)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:

        async def one(k: int) -> None:
            async with session.post(f"{ingress}/Counter/k{k}/add", data=b"0") as resp:
                await resp.read()
                if resp.status != 200:
                    raise RuntimeError(f"drain call answered {resp.status}")

        await asyncio.gather(*(one(k) for k in range(keys)))


def load_part(args: argparse.Namespace, work: Path, results: dict[str, Any]) -> None:
    starts = []
    for i in range(3):
        engine = Engine(work / f"fresh{i}", work / f"fresh{i}.log")
        starts.append(engine.start())
        if i < 2:
            engine.stop()
    say(f"start-up to healthy on a fresh store: {', '.join(f'{s:.3f}' for s in starts)} s")
    results["startup_fresh_s"] = statistics.median(starts)
    time.sleep(1.0)
    results["rss_idle_mb"] = rss_mb(engine.pid)
    say(f"engine RSS idle: {results['rss_idle_mb']:.1f} MiB")
    scenarios: list[tuple[str, str, int, int]] = [
        ("Counter/add 1k keys c=1", "/Counter/{key}/add", 1, 1000),
        ("Counter/add 1k keys c=32", "/Counter/{key}/add", 32, 1000),
        ("Counter/add 1k keys c=128", "/Counter/{key}/add", 128, 1000),
        ("Counter/add hot key c=1", "/Counter/{key}/add", 1, 1),
        ("Counter/add hot key c=32", "/Counter/{key}/add", 32, 1),
        ("Counter/add hot key c=128", "/Counter/{key}/add", 128, 1),
        ("Steps/three (3x ctx.run) c=32", "/Steps/three", 32, 1),
        ("Counter/add/send 1k keys c=32", "/Counter/{key}/add/send", 32, 1000),
    ]
    rows: list[dict[str, Any]] = []
    try:
        for name, path, concurrency, keys in scenarios:
            with sampling(engine.pid) as sampled:
                result = run_load(engine.ingress + path, concurrency, keys, args)
                drain_s = None
                if path.endswith("/send"):
                    drain_started = time.perf_counter()
                    asyncio.run(_drain(engine.ingress, keys))
                    drain_s = time.perf_counter() - drain_started
            row: dict[str, Any] = {"scenario": name, **asdict(result), **sampled}
            # What else ran on the machine meanwhile (other processes), in % of one core.
            row["other_cpu_pct"] = max(
                0.0, sampled["machine_cpu_pct"] - sampled["engine_cpu_pct"]
                - result.generator_cpu_pct,
            )  # fmt: skip
            row["engine_us_per_req"] = (
                1e4 * sampled["engine_cpu_pct"] / result.throughput if result.throughput else 0.0
            )
            line = f"{name}: {result.summary()}; engine CPU {sampled['engine_cpu_pct']:.0f}% "
            line += f"({row['engine_us_per_req']:.0f} µs/request), "
            line += f"RSS peak {sampled['rss_peak_mb']:.0f} MiB, "
            line += f"other processes {row['other_cpu_pct']:.0f}% CPU"
            if drain_s is not None:
                accepted = result.requests
                row["drain_s"] = drain_s
                row["executed_per_s"] = accepted / (result.seconds + drain_s)
                line += (
                    f"; backlog ran {drain_s:.1f} s after the last send "
                    f"({row['executed_per_s']:,.0f} executed/s overall)"
                )
            say(line)
            rows.append(row)
        results["rss_after_load_mb"] = rss_mb(engine.pid)
    finally:
        engine.stop()
    results["scenarios"] = rows


def recovery_part(args: argparse.Namespace, work: Path, results: dict[str, Any]) -> None:
    data = work / f"history-{args.history}"
    marker = work / f"history-{args.history}.json"
    if marker.exists():  # a kept --work-dir: the store of an earlier run (it only grew since)
        built = json.loads(marker.read_text())
        say(f"reusing the store of {args.history:,} completed invocations in {data}")
    else:
        say(f"building a store with {args.history:,} completed invocations (build_history.py)")
        cmd = [sys.executable, str(BENCH / "build_history.py"), str(data), "--history",
               str(args.history), "--verify"]  # fmt: skip
        out = subprocess.run(cmd, stdout=subprocess.PIPE, text=True, timeout=3600, check=True)
        built = json.loads(out.stdout.strip().splitlines()[-1])
        marker.write_text(json.dumps(built))
    size = sum(p.stat().st_size for p in data.rglob("*") if p.is_file())
    built["store_mb"] = size / 2**20
    say(f"built: {built}")
    results["history"] = built
    engine = Engine(data, work / "history.log")
    results["startup_history_s"] = engine.start()
    say(f"start-up to healthy on the {args.history:,}-invocation store: "
        f"{results['startup_history_s']:.3f} s")  # fmt: skip
    time.sleep(0.5)
    results["rss_idle_history_mb"] = rss_mb(engine.pid)
    kills: list[dict[str, float]] = []
    try:
        for i in range(args.kills):
            loader = subprocess.Popen(
                [sys.executable, str(BENCH / "http_load.py"), engine.ingress + "/Counter/{key}/add",
                 "--json", "--concurrency", "32", "--duration", "3", "--warmup", "0",
                 "--requests", "1000000", "--seed", str(i + 2)],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            )  # fmt: skip
            time.sleep(1.5)
            killed = engine.kill()
            started = engine.spawn()
            healthy = engine.wait_until(engine.healthy)
            serving = engine.wait_until(engine.serving)
            loader.wait(60)
            kill = {
                "spawn_after_kill_s": started - killed,
                "healthy_after_kill_s": healthy - killed,
                "serving_after_kill_s": serving - killed,
            }
            kills.append(kill)
            say(f"SIGKILL under load #{i + 1}: healthy after {kill['healthy_after_kill_s']:.3f} s, "
                f"serving after {kill['serving_after_kill_s']:.3f} s")  # fmt: skip
            time.sleep(0.5)
        ready_lines = [x for x in engine.log().splitlines() if "ready in" in x]
        results["engine_ready_lines"] = ready_lines
    finally:
        engine.stop()
    results["kills"] = kills


def print_table(results: dict[str, Any]) -> None:
    print("\n| scenario | req/s | p50 ms | p90 ms | p99 ms | max ms | errors | engine CPU "
          "| engine µs/req | generator CPU | other CPU | engine RSS peak |")  # fmt: skip
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for r in results.get("scenarios", []):
        print(
            f"| {r['scenario']} | {r['throughput']:,.0f} | {r['p50_ms']:.2f} | {r['p90_ms']:.2f} "
            f"| {r['p99_ms']:.2f} | {r['max_ms']:.1f} | {r['errors']} "
            f"| {r.get('engine_cpu_pct', 0):.0f}% | {r.get('engine_us_per_req', 0):.0f} "
            f"| {r['generator_cpu_pct']:.0f}% | {r.get('other_cpu_pct', 0):.0f}% "
            f"| {r['rss_peak_mb']:.0f} MiB |"
        )
    for r in results.get("scenarios", []):
        if "drain_s" in r:
            print(f"\n/send backlog ran {r['drain_s']:.1f} s after the last send: "
                  f"{r['executed_per_s']:,.0f} invocations executed/s overall")  # fmt: skip
    print()
    for name, key, unit in (
        ("start-up to healthy, fresh store (median of 3)", "startup_fresh_s", "s"),
        ("engine RSS idle", "rss_idle_mb", "MiB"),
        ("engine RSS after the load scenarios", "rss_after_load_mb", "MiB"),
        ("start-up to healthy, history store", "startup_history_s", "s"),
        ("engine RSS idle, history store", "rss_idle_history_mb", "MiB"),
    ):
        if key in results:
            print(f"- {name}: {results[key]:.3f} {unit}")
    if "history" in results:
        print(f"- history store: {results['history']}")
    for i, k in enumerate(results.get("kills", [])):
        print(f"- SIGKILL under load #{i + 1}: healthy after {k['healthy_after_kill_s']:.3f} s, "
              f"first answered Counter/add after {k['serving_after_kill_s']:.3f} s")  # fmt: skip


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description="Headway core benchmarks against a real `headway dev` process: "
        "throughput/latency scenarios, RSS, start-up and recovery after SIGKILL. "
        "Full run about 6 min; --quick about 1 min.",
    )
    parser.add_argument("--history", type=int, default=1_000_000,
                        help="completed invocations in the recovery store (1000000)")  # fmt: skip
    parser.add_argument("--duration", type=float, default=10.0, help="s per scenario (10)")
    parser.add_argument("--warmup", type=float, default=1.0, help="unrecorded s per scenario (1)")
    parser.add_argument("--requests", type=int, default=100_000, help="cap per scenario (100000)")
    parser.add_argument("--kills", type=int, default=3, help="SIGKILL/restart cycles (3)")
    parser.add_argument("--client", choices=("raw", "aiohttp", "wrk"), default="raw",
                        help="load generator client (raw)")  # fmt: skip
    parser.add_argument("--only", choices=("load", "recovery"), help="run one part only")
    parser.add_argument("--quick", action="store_true",
                        help="3 s per scenario, 50,000 invocations of history")  # fmt: skip
    parser.add_argument("--work-dir", type=Path,
                        help="keep data and logs here, and reuse its history store on the next "
                        "run (default: a temporary directory, removed)")  # fmt: skip
    parser.add_argument("--json-out", type=Path, help="also write all figures as JSON here")
    args = parser.parse_args(argv)
    if args.quick:
        args.duration, args.history, args.kills = 3.0, 50_000, 2
    work = args.work_dir or Path(tempfile.mkdtemp(prefix="headway-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    with open("/proc/loadavg") as f:
        loadavg = f.read().split()[0]
    say(f"work directory {work} (python {sys.version.split()[0]}, {os.cpu_count()} CPUs, "
        f"load average {loadavg})")  # fmt: skip
    results: dict[str, Any] = {"args": {k: str(v) for k, v in vars(args).items()}}
    try:
        if args.only in (None, "load"):
            load_part(args, work, results)
        if args.only in (None, "recovery"):
            recovery_part(args, work, results)
    finally:
        if args.json_out:
            args.json_out.write_text(json.dumps(results, indent=2))
        if args.work_dir is None:
            shutil.rmtree(work, ignore_errors=True)
    print_table(results)


if __name__ == "__main__":
    main()
