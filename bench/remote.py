"""Remote (HTTP deployment) against in-process handlers under the same closed-loop load.

Set-ups of the same handler (`--path`: Counter/add by default, one GetState, one SetState,
per-key lock; or `/Steps/three`, three `ctx.run` steps):
- `in-process`: `headway dev bench/apps.py` (no encoding, no HTTP: the default);
- `headway-serve`: `headway server` plus `headway serve bench/apps.py`, registered as a
  deployment (the service protocol over HTTP/1.1 request/response);
- `restate-sdk`: `headway server` plus `bench/restate_apps.py` (the official Restate Python
  SDK) under hypercorn, registered the same way (skipped if restate-sdk is not installed);
- `restate-sdk-h2`: the same, registered with `"http2": true` (one h2c stream per attempt).

Each runs `bench/http_load.py` for `--duration` seconds after a warm-up and prints throughput
and latency percentiles, then the ratios to in-process.

    python bench/remote.py --duration 5 --concurrency 32 --keys 1000
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import json
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))
from http_load import load_result_from_json  # noqa: E402
from run_core import free_port, http  # noqa: E402


def _wait(url: str, what: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while http("GET", url) == 0:
        if time.monotonic() > deadline:
            raise SystemExit(f"{what} did not come up at {url}")
        time.sleep(0.1)


@contextlib.contextmanager
def _process(cmd: list[str], cwd: Path | None = None) -> Iterator[subprocess.Popen[bytes]]:
    proc = subprocess.Popen(cmd, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        yield proc
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()


@contextlib.contextmanager
def _engine(data: Path, app: str | None) -> Iterator[tuple[str, str]]:
    ingress, admin = free_port(), free_port()
    mode = ["dev", app] if app else ["server"]
    cmd = [sys.executable, "-m", "headway.engine", *mode, "--data-dir", str(data),
           "--ingress-port", str(ingress), "--admin-port", str(admin)]  # fmt: skip
    with _process(cmd):
        _wait(f"http://127.0.0.1:{admin}/health", "the engine")
        yield f"http://127.0.0.1:{ingress}", f"http://127.0.0.1:{admin}"


def _register(admin: str, uri: str, http2: bool = False) -> None:
    body = json.dumps({"uri": uri, "http2": http2}).encode()
    status = http("POST", f"{admin}/deployments", body, timeout=30)
    if status not in (200, 201):
        raise SystemExit(f"registering {uri} answered {status}")


def _load(ingress: str, args: argparse.Namespace) -> dict[str, float]:
    out = subprocess.run(
        [sys.executable, str(BENCH / "http_load.py"), f"{ingress}{args.path}",
         "-c", str(args.concurrency), "--keys", str(args.keys), "-d", str(args.duration),
         "--warmup", str(args.warmup), "-n", "10000000", "--json"],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    result = load_result_from_json(out.stdout)
    if result.errors:
        print(f"  ({result.errors} errors: {result.statuses})", file=sys.stderr)
    return {"throughput": result.throughput, "p50_ms": result.p50_ms, "p99_ms": result.p99_ms}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=float, default=5.0, help="s per measurement (5)")
    parser.add_argument("--warmup", type=float, default=1.0, help="unrecorded s (1)")
    parser.add_argument("--concurrency", "-c", type=int, default=32)
    parser.add_argument("--keys", type=int, default=1000)
    parser.add_argument("--path", default="/Counter/{key}/add", help="or /Steps/three")
    args = parser.parse_args(argv)
    results: dict[str, dict[str, float]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        print("in-process ...", file=sys.stderr)
        with _engine(root / "a", str(BENCH / "apps.py")) as (ingress, _):
            results["in-process"] = _load(ingress, args)
        print("headway-serve ...", file=sys.stderr)
        port = free_port()
        serve = [sys.executable, "-m", "headway.engine", "serve", str(BENCH / "apps.py"),
                 "--port", str(port)]  # fmt: skip
        with _process(serve), _engine(root / "b", None) as (ingress, admin):
            _wait(f"http://127.0.0.1:{port}/health", "headway serve")
            _register(admin, f"http://127.0.0.1:{port}")
            results["headway-serve"] = _load(ingress, args)
        if importlib.util.find_spec("restate") and importlib.util.find_spec("hypercorn"):
            for name, http2 in (("restate-sdk", False), ("restate-sdk-h2", True)):
                print(f"{name} ...", file=sys.stderr)
                port = free_port()
                hypercorn = [sys.executable, "-m", "hypercorn", "restate_apps:app",
                             "--workers", "0", "--bind", f"127.0.0.1:{port}"]  # fmt: skip
                data = root / name
                with _process(hypercorn, cwd=BENCH), _engine(data, None) as (ingress, admin):
                    _wait(f"http://127.0.0.1:{port}/health", "the restate-sdk deployment")
                    _register(admin, f"http://127.0.0.1:{port}", http2)
                    results[name] = _load(ingress, args)
    base = results["in-process"]["throughput"]
    print(f"{args.path}, c={args.concurrency}, {args.keys} keys, {args.duration}s each")
    for name, r in results.items():
        print(f"{name:14} {r['throughput']:8.0f} req/s  p50 {r['p50_ms']:6.1f} ms  "
              f"p99 {r['p99_ms']:6.1f} ms  x{r['throughput'] / base:.2f}")  # fmt: skip


if __name__ == "__main__":
    main()
