"""The exactly-once Kafka pipeline, end to end, in Headway and in its Python peers.

N JSON records over K keys are produced to a fresh 4-partition topic before each system
starts. The system keeps a per-key count and, for every record, emits ``{"key", "n"}`` keyed
by the record's key. The clock runs from spawning the system's process until a read_committed
consumer has seen the Nth output, so start-up, group join and state set-up count, as they do in
a real redeploy. The outputs are then checked for exactly-once: each key's ``n`` values must be
exactly 1..count, in order. ``ceiling`` (a bare transactional consume-transform-produce loop)
bounds what any system on this broker and machine can reach.

``headway-alo`` is Headway's ingestion and execution alone (a handler that counts and emits
nothing): it has no outputs to check, so it is done when the subscription has applied every
input offset and no invocation is left running or queued, and sampled keys are checked through
the ingress instead.

Each system runs in its own OS process, whose peak RSS (VmHWM) is read just before it is
stopped. Progress goes to stderr; the table (or ``--json``) to stdout.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import uuid
from collections import defaultdict
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from confluent_kafka import Consumer, KafkaException, Producer, TopicPartition

# NewTopic's documented home; the package's stubs just do not re-export it.
from confluent_kafka.admin import AdminClient, NewTopic  # type: ignore[attr-defined]

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
SYSTEMS = ("ceiling", "quix", "faust", "headway-eos", "headway-alo")
PARTITIONS = 4
PROGRESS_EVERY = 5.0  # seconds between progress lines
SETTLE = 2.0  # seconds without new outputs, after the stop, before the check (late duplicates)
ALO_SAMPLE = 20  # keys whose count headway-alo reads back through the ingress

# The peers' packages (the `bench` extra): a peer that is not installed is skipped, with a row.
PACKAGES = {"quix": "quixstreams", "faust": "faust"}

# How each peer commits, as configured: printed with the results, since it bounds latency.
NOTES = {
    "ceiling": "txn every 100 ms",
    "quix": "quixstreams default commit_interval 5 s, RocksDB + changelog",
    "faust": "faust default broker_commit_interval 2.8 s, RocksDB table + changelog",
    "headway-eos": "express lane (one log entry per record), transactional outbox",
    "headway-alo": "ingest + execute only, no outputs",
}


def log(message: str) -> None:
    """Progress to stderr, timestamped, so a long run is never silent."""
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


@dataclass
class Result:
    """One system's row in the table."""

    system: str
    records: int
    keys: int
    seconds: float | None = None
    records_per_s: float | None = None
    ratio_to_ceiling: float | None = None
    peak_rss_mib: float | None = None
    cpu_us_per_record: float | None = None
    exactly_once: str = "n/a"  # pass, FAIL, n/a (no outputs), skipped
    error: str = ""
    note: str = ""
    log_path: str = ""
    log_problems: list[str] = field(default_factory=list)


class Failed(Exception):
    """The system did not finish (timeout, exit, bad answer): a failure row, not a crash."""


@dataclass
class Run:
    """What every system's run shares: the broker, the workload and where files go."""

    bootstrap: str
    records: int
    keys: int
    timeout: float
    workdir: Path

    def expected_counts(self) -> dict[str, int]:
        counts: dict[str, int] = defaultdict(int)
        for i in range(self.records):
            counts[f"k{i % self.keys}"] += 1
        return dict(counts)


# ---------------------------------------------------------------------------------- Kafka


def create_topics(bootstrap: str, *names: str) -> None:
    admin = AdminClient({"bootstrap.servers": bootstrap, "log_level": 5})
    futures = admin.create_topics([NewTopic(name, PARTITIONS, 1) for name in names])
    for future in futures.values():
        future.result(timeout=30)


def preload(bootstrap: str, topic: str, records: int, keys: int) -> None:
    """Produce the input before the system starts, so only the system's work is timed."""
    producer = Producer(
        {"bootstrap.servers": bootstrap, "enable.idempotence": True, "linger.ms": 20}
    )
    failures: list[str] = []

    def delivered(err: Any, _message: Any) -> None:
        if err is not None:
            failures.append(str(err))

    for i in range(records):
        key, value = f"k{i % keys}".encode(), json.dumps({"i": i}).encode()
        while True:
            try:
                producer.produce(topic, value, key, on_delivery=delivered)
                break
            except BufferError:
                producer.poll(0.1)
        if i % 10_000 == 0:
            producer.poll(0)
    if producer.flush(120) or failures:
        raise Failed(f"pre-loading {topic} failed: {failures[:3]}")


def end_offsets(bootstrap: str, topic: str) -> dict[int, int]:
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "bench-probe"})
    try:
        return {
            p: consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1]
            for p in range(PARTITIONS)
        }
    finally:
        consumer.close()


class OutputReader:
    """Reads the output topic read_committed from the start, keeping (key, n) per record.

    Counting the records themselves, not the partitions' end offsets: every committed
    transaction also leaves a control marker at an offset of its own, so offsets overcount
    the outputs by a number that depends on how often the system commits.
    """

    def __init__(self, bootstrap: str, topic: str) -> None:
        self.consumer = Consumer({
            "bootstrap.servers": bootstrap, "group.id": f"bench-check-{uuid.uuid4().hex}",
            "isolation.level": "read_committed", "enable.auto.commit": False,
            "fetch.wait.max.ms": 50,
        })  # fmt: skip
        self.consumer.assign([TopicPartition(topic, p, 0) for p in range(PARTITIONS)])
        self.outputs: list[tuple[bytes | None, bytes | None]] = []

    def poll(self, wait: float) -> int:
        """Read what is visible now (up to ``wait`` s); return how many records came."""
        batch = [m for m in self.consumer.consume(10_000, wait) if m.error() is None]
        self.outputs.extend((m.key(), m.value()) for m in batch)
        return len(batch)

    def settle(self, quiet: float = SETTLE, limit: float = 60.0) -> None:
        """Read until nothing new comes for ``quiet`` s, so late duplicates are seen too."""
        deadline = time.monotonic() + limit
        quiet_since = time.monotonic()
        while time.monotonic() < deadline and time.monotonic() - quiet_since < quiet:
            if self.poll(0.2):
                quiet_since = time.monotonic()

    def close(self) -> None:
        self.consumer.close()


def check_exactly_once(
    outputs: list[tuple[bytes | None, bytes | None]], expected: dict[str, int]
) -> str:
    """``pass`` when every key's outputs are exactly n = 1..count in order, else what is wrong."""
    seen: dict[str, list[int]] = defaultdict(list)
    bad_keys = 0
    for key, value in outputs:
        body: dict[str, Any] = json.loads(value) if value else {"key": None, "n": None}
        if key is None or key.decode() != body["key"]:
            bad_keys += 1
        seen[body["key"]].append(body["n"])
    wrong = [k for k, count in expected.items() if seen.get(k) != list(range(1, count + 1))]
    extra = set(seen) - set(expected)
    if not wrong and not extra and not bad_keys:
        return "pass"
    dups = sum(len(v) - len(set(v)) for v in seen.values())
    example = f"; e.g. {wrong[0]}: {seen.get(wrong[0], [])[:8]}..." if wrong else ""
    return (
        f"FAIL ({len(outputs)} outputs, {len(wrong)} keys wrong, {dups} duplicates, "
        f"{len(extra)} unknown keys, {bad_keys} mis-keyed{example})"
    )


# ------------------------------------------------------------------------------ processes


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def peak_rss_mib(pid: int) -> float | None:
    """The process's peak resident set (VmHWM), while it is still alive."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return None


def cpu_seconds(pid: int) -> float | None:
    """User plus system CPU time the process has used so far: a figure that, unlike
    throughput, does not depend on what else the machine is doing."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def stop(process: subprocess.Popen[bytes], grace: float = 20.0) -> None:
    """SIGTERM, then SIGKILL if the process ignores it for ``grace`` s."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(grace)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def log_problems(path: Path, limit: int = 5) -> list[str]:
    """The first error-looking lines of a process's log, to report (never to hide)."""
    try:
        lines = path.read_text(errors="replace").splitlines()
    except OSError:
        return []
    marks = ("ERROR", "Traceback", "CRITICAL", "Exception", "FATAL")
    found = [line.strip()[:300] for line in lines if any(m in line for m in marks)]
    if len(found) > limit:
        found = [*found[:limit], f"... and {len(found) - limit} more such lines"]
    return found


def http(method: str, url: str, body: Any = None, timeout: float = 30.0) -> tuple[int, Any]:
    """One JSON request; (status, decoded body); HTTP errors are returned, not raised."""
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(
        url, data=data, method=method, headers={"content-type": "application/json"}
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            status, payload = response.status, response.read()
    except urllib.error.HTTPError as exc:
        status, payload = exc.code, exc.read()
    return status, json.loads(payload) if payload else None


def wait_until(
    what: str, done: Callable[[], bool], deadline: float, process: subprocess.Popen[bytes]
) -> None:
    """Poll ``done`` every 100 ms; fail on the deadline or when the process has exited."""
    while not done():
        if process.poll() is not None:
            raise Failed(f"process exited with {process.returncode} before {what}")
        if time.monotonic() > deadline:
            raise Failed(f"timed out before {what}")
        time.sleep(0.1)


# -------------------------------------------------------------------------------- systems


@dataclass
class Spawned:
    """A started system: its process, the moment of spawn and its HTTP ports (Headway)."""

    process: subprocess.Popen[bytes]
    started: float
    admin: str = ""
    ingress: str = ""


def spawn(run: Run, system: str, source: str, sink: str, home: Path, log_file: Path) -> Spawned:
    """Start one system on ``source``; the clock starts here."""
    py = sys.executable
    peers = BENCH / "peers"
    common = ["--bootstrap", run.bootstrap, "--input", source, "--output", sink]
    env = dict(os.environ)
    admin = ingress = ""
    if system == "ceiling":
        command = [py, str(peers / "ceiling_pipeline.py"), *common]
    elif system == "quix":
        command = [py, str(peers / "quix_pipeline.py"), *common, "--state-dir", str(home)]
    elif system == "faust":
        command = [py, str(peers / "faust_pipeline.py"), *common, "--data-dir", str(home)]
    else:
        config = home / "headway.toml"
        config.write_text(f'[[kafka.clusters]]\nname = "local"\nbrokers = ["{run.bootstrap}"]\n')
        env["HEADWAY_CONFIG"] = str(config)
        ingress_port, admin_port = free_port(), free_port()
        admin, ingress = f"http://127.0.0.1:{admin_port}", f"http://127.0.0.1:{ingress_port}"
        command = [
            py, "-m", "headway.engine", "dev", str(BENCH / "kafka_app.py"),
            "--data-dir", str(home / "data"),
            "--ingress-port", str(ingress_port), "--admin-port", str(admin_port),
        ]  # fmt: skip
    with log_file.open("ab") as out:
        started = time.monotonic()
        process = subprocess.Popen(
            command, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
            env=env, cwd=home,
        )  # fmt: skip
    return Spawned(process, started, admin, ingress)


def subscribe(spawned: Spawned, source: str, handler: str, deadline: float) -> str:
    """Wait for Headway's admin API, then subscribe ``handler`` to ``source``."""

    def healthy() -> bool:
        try:
            return http("GET", spawned.admin + "/health", timeout=1)[0] == 200
        except (urllib.error.URLError, OSError):
            return False

    wait_until("the engine was healthy", healthy, deadline, spawned.process)
    status, body = http(
        "POST", spawned.admin + "/subscriptions",
        {"source": f"kafka://local/{source}", "sink": f"service://Counts/{handler}",
         "options": {"auto.offset.reset": "earliest"}},
    )  # fmt: skip
    if status != 201:
        raise Failed(f"POST /subscriptions answered {status}: {body}")
    return str(body["id"])


def wait_for_outputs(run: Run, spawned: Spawned, reader: OutputReader, deadline: float) -> float:
    """Read outputs until the Nth is visible; return that moment (monotonic)."""
    next_report = time.monotonic() + PROGRESS_EVERY
    while len(reader.outputs) < run.records:
        reader.poll(0.1)
        now = time.monotonic()
        if now >= next_report:
            done = len(reader.outputs)
            log(f"  {done:,}/{run.records:,} outputs ({done / (now - spawned.started):,.0f}/s)")
            next_report = now + PROGRESS_EVERY
        if spawned.process.poll() is not None:
            raise Failed(f"process exited with {spawned.process.returncode}")
        if now > deadline:
            raise Failed(f"timeout: {len(reader.outputs):,}/{run.records:,} outputs")
    return time.monotonic()


def wait_for_alo(
    run: Run, spawned: Spawned, subscription: str, source: str, deadline: float
) -> tuple[float, str]:
    """Wait until every input offset is applied and every invocation has finished.

    The invocation listing scans the engine's whole store, on its event loop, so it is polled
    only once the sampled keys' counts (cheap ingress calls) are complete.
    """
    ends = end_offsets(run.bootstrap, source)
    expected = run.expected_counts()
    sample = random.Random(7).sample(sorted(expected), min(ALO_SAMPLE, len(expected)))
    next_report = time.monotonic() + PROGRESS_EVERY

    def applied() -> dict[int, int]:
        _, body = http("GET", spawned.admin + "/subscriptions")
        for sub in body["subscriptions"] if isinstance(body, dict) else body:
            if sub["id"] == subscription:
                return {p["partition"]: p["applied_offset"] for p in sub.get("progress", [])}
        raise Failed(f"subscription {subscription} is gone")

    def ingested() -> bool:
        nonlocal next_report
        progress = applied()
        if time.monotonic() >= next_report:
            done = sum(offset + 1 for offset in progress.values())
            rate = done / (time.monotonic() - spawned.started)
            log(f"  {done:,}/{run.records:,} records applied ({rate:,.0f}/s)")
            next_report = time.monotonic() + PROGRESS_EVERY
        return all(progress.get(p, -1) >= end - 1 for p, end in ends.items())

    def count(key: str) -> Any:
        return http("POST", f"{spawned.ingress}/Counts/{key}/count", timeout=60)[1]

    def sampled_complete() -> bool:
        return all(count(key) == expected[key] for key in sample)

    def idle() -> bool:
        for status in ("running", "pending", "backing-off"):
            _, body = http("GET", f"{spawned.admin}/invocations?status={status}&limit=1")
            if body["invocations"]:
                return False
        return True

    wait_until("every input offset was applied", ingested, deadline, spawned.process)
    wait_until(
        "the sampled keys' counts were complete", sampled_complete, deadline, spawned.process
    )
    wait_until("no invocation was left running", idle, deadline, spawned.process)
    finished = time.monotonic()
    wrong = {key: count(key) for key in sample if count(key) != expected[key]}
    check = f"n/a ({len(sample)} sampled counts ok)" if not wrong else f"FAIL (counts {wrong})"
    return finished, check


def run_system(run: Run, system: str) -> Result:
    """Pre-load a fresh topic, run one system on it, time it, stop it, check its outputs."""
    result = Result(system, run.records, run.keys, note=NOTES[system])
    package = PACKAGES.get(system)
    if package is not None and importlib.util.find_spec(package) is None:
        result.exactly_once = "skipped"
        result.error = f"skipped: {package} is not installed (pip install -e '.[bench]')"
        log(f"{system}: {result.error}")
        return result
    source = f"bench-{system}-{uuid.uuid4().hex[:8]}"
    sink = f"{source}-out"
    home = Path(tempfile.mkdtemp(prefix=f"{system}-", dir=run.workdir))
    log_file = run.workdir / f"{system}.log"
    result.log_path = str(log_file)
    log(f"{system}: pre-loading {run.records:,} records over {run.keys:,} keys into {source}")
    create_topics(run.bootstrap, source, sink)
    preload(run.bootstrap, source, run.records, run.keys)
    reader = OutputReader(run.bootstrap, sink)
    spawned: Spawned | None = None
    try:
        log(f"{system}: starting (log {log_file})")
        spawned = spawn(run, system, source, sink, home, log_file)
        deadline = spawned.started + run.timeout
        if system == "headway-alo":
            subscription = subscribe(spawned, source, "on_record_quiet", deadline)
            finished, result.exactly_once = wait_for_alo(
                run, spawned, subscription, source, deadline
            )
        else:
            if system == "headway-eos":
                subscribe(spawned, source, "on_record", deadline)
            finished = wait_for_outputs(run, spawned, reader, deadline)
        result.seconds = finished - spawned.started
        result.records_per_s = run.records / result.seconds
        result.peak_rss_mib = peak_rss_mib(spawned.process.pid)
        cpu = cpu_seconds(spawned.process.pid)
        if cpu is not None:
            result.cpu_us_per_record = cpu * 1e6 / run.records
        log(f"{system}: done in {result.seconds:.1f} s ({result.records_per_s:,.0f} records/s)")
    except (Failed, KafkaException, OSError, KeyError, TypeError, ValueError) as exc:
        result.error = f"{type(exc).__name__}: {exc}" if not isinstance(exc, Failed) else str(exc)
        result.exactly_once = "not checked"
        if spawned is not None:
            result.peak_rss_mib = peak_rss_mib(spawned.process.pid)
        log(f"{system}: FAILED: {result.error}")
    finally:
        if spawned is not None:
            stop(spawned.process)
        if system != "headway-alo" and not result.error:
            reader.settle()
            result.exactly_once = check_exactly_once(reader.outputs, run.expected_counts())
            log(f"{system}: exactly-once check: {result.exactly_once}")
        reader.close()
        shutil.rmtree(home, ignore_errors=True)
        result.log_problems = log_problems(log_file)
    return result


# --------------------------------------------------------------------------------- output


def table(results: list[Result]) -> str:
    """The results as a fixed-width table, notes and log problems below it."""
    headers = [
        "system", "records", "seconds", "records/s", "x ceiling", "CPU us/record", "peak RSS MiB",
        "EOS",
    ]  # fmt: skip
    rows = []
    for r in results:
        rows.append([
            r.system, f"{r.records:,}",
            f"{r.seconds:.1f}" if r.seconds is not None else "-",
            f"{r.records_per_s:,.0f}" if r.records_per_s is not None else "FAILED",
            f"{r.ratio_to_ceiling:.3f}" if r.ratio_to_ceiling is not None else "-",
            f"{r.cpu_us_per_record:.0f}" if r.cpu_us_per_record is not None else "-",
            f"{r.peak_rss_mib:.0f}" if r.peak_rss_mib is not None else "-",
            r.exactly_once.split(" (")[0],
        ])  # fmt: skip
    widths = [max(len(h), *(len(row[i]) for row in rows)) for i, h in enumerate(headers)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True))]
    lines += ["  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) for row in rows]
    lines.append("")
    for r in results:
        lines.append(f"{r.system}: {r.note}")
        if r.error:
            lines.append(f"    error: {r.error}")
        if r.exactly_once not in ("pass", "n/a"):
            lines.append(f"    check: {r.exactly_once}")
        for problem in r.log_problems:
            lines.append(f"    log: {problem}")
    return "\n".join(lines)


def start_broker() -> Any:
    """The project's test broker (tests/kafka/broker.py): real Apache Kafka, KRaft, loopback."""
    sys.path.insert(0, str(REPO / "tests" / "kafka"))
    from broker import KafkaBroker  # type: ignore[import-not-found]

    broker = KafkaBroker()
    log("starting Kafka (the first start resolves its jars with Maven; that can take a while)")
    broker.start()
    log(f"Kafka ready at {broker.bootstrap}")
    return broker


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__.splitlines()[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--records", type=int, default=200_000)
    parser.add_argument("--keys", type=int, default=10_000)
    parser.add_argument("--quick", action="store_true", help="20,000 records over 2,000 keys")
    parser.add_argument(
        "--systems", default=",".join(SYSTEMS), help=f"comma-separated, of {','.join(SYSTEMS)}"
    )
    parser.add_argument("--bootstrap", help="use this running broker instead of starting one")
    parser.add_argument("--timeout", type=float, default=900.0, help="seconds per system")
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    args = parser.parse_args()
    if args.quick:
        args.records, args.keys = 20_000, 2_000
    systems = [s.strip() for s in args.systems.split(",") if s.strip()]
    unknown = set(systems) - set(SYSTEMS)
    if unknown:
        parser.error(f"unknown systems: {', '.join(sorted(unknown))}")

    # SIGTERM unwinds like Ctrl-C, so the finally blocks stop the system and the broker.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    workdir = Path(tempfile.mkdtemp(prefix="headway-kafka-bench-"))
    broker = None if args.bootstrap else start_broker()
    bootstrap = args.bootstrap if broker is None else broker.bootstrap
    run = Run(bootstrap, args.records, args.keys, args.timeout, workdir)
    results: list[Result] = []
    try:
        for system in systems:
            results.append(run_system(run, system))
    finally:
        if broker is not None:
            broker.stop()
    ceiling = next((r for r in results if r.system == "ceiling" and r.records_per_s), None)
    for r in results:
        if ceiling is not None and ceiling.records_per_s and r.records_per_s:
            r.ratio_to_ceiling = r.records_per_s / ceiling.records_per_s
    if args.json:
        print(json.dumps([asdict(r) for r in results], indent=2))
    else:
        print(
            f"{args.records:,} records over {args.keys:,} keys, {PARTITIONS} partitions, "
            f"one broker; {os.cpu_count()} CPUs; time from process spawn to the last output "
            "visible read_committed"
        )
        print(table(results))
    log(f"the systems' logs are in {workdir}")
    failed = [r for r in results if r.exactly_once.startswith("FAIL") or r.error]
    sys.exit(1 if any(r.exactly_once != "skipped" for r in failed) else 0)


if __name__ == "__main__":
    main()
