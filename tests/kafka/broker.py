"""A real single-node Apache Kafka broker (KRaft) for the test suite.

Headway's exactly-once rests on Kafka transactions, and Kafka-compatible stand-ins get them
wrong (see DESIGN.md, "Testing against real Kafka"), so the suite runs Apache Kafka itself:
its jars are resolved from Maven Central by ``pom.xml`` beside this file, and the broker runs
as a plain ``java`` subprocess on loopback ports with its data in a temporary directory.
"""

from __future__ import annotations

import atexit
import base64
import hashlib
import logging
import os
import random
import shutil
import socket
import subprocess
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Protocol

from confluent_kafka import KafkaException, Producer
from confluent_kafka.admin import AdminClient

POM = Path(__file__).with_name("pom.xml")
CACHE_DIR = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "headway"
# The broker shares a small machine with the tests it serves: bound its heap.
HEAP = "-Xmx512m"
MAVEN_TIMEOUT = 900.0

log = logging.getLogger(__name__)

# Single node, so every replicated internal topic must make do with one replica, or the
# transaction and group coordinators never come up; one partition each keeps start-up and
# recovery short. Topics are not auto-created: tests create theirs explicitly (the
# ``new_topic`` fixture), so a misspelt name fails loudly instead of silently creating a
# topic with the wrong partition count. After a SIGKILL the restarted broker cannot register
# until its old session expires, hence a session timeout shorter than the 9 s default.
SERVER_PROPERTIES = """\
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@127.0.0.1:{controller_port}
listeners=PLAINTEXT://127.0.0.1:{port},CONTROLLER://127.0.0.1:{controller_port}
advertised.listeners=PLAINTEXT://127.0.0.1:{port}
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT
inter.broker.listener.name=PLAINTEXT
controller.listener.names=CONTROLLER
log.dirs={data_dir}
num.partitions=1
default.replication.factor=1
min.insync.replicas=1
offsets.topic.replication.factor=1
offsets.topic.num.partitions=1
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
transaction.state.log.num.partitions=1
group.initial.rebalance.delay.ms=0
broker.heartbeat.interval.ms=1000
broker.session.timeout.ms=4000
auto.create.topics.enable=false
"""

# Kafka 4 logs through log4j 2; everything goes to stdout, which lands in broker.log.
LOG4J2_PROPERTIES = """\
status = warn
appender.out.type = Console
appender.out.name = out
appender.out.layout.type = PatternLayout
appender.out.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = INFO
rootLogger.appenderRef.out.ref = out
logger.state.name = state.change.logger
logger.state.level = WARN
"""


class KafkaBrokerError(RuntimeError):
    """The broker could not be resolved, started or reached."""


class TopicFactory(Protocol):
    """The ``new_topic`` fixture: creates a uniquely named topic and returns its name."""

    def __call__(self, partitions: int = 1, name: str | None = None) -> str: ...


def kafka_classpath() -> str:
    """Return the broker's runtime classpath, running Maven only when pom.xml has changed.

    Resolving takes Maven several seconds even with a warm ~/.m2, so the result is cached
    under ~/.cache/headway keyed by the pom's hash, and re-resolved if a cached jar is gone.
    """
    digest = hashlib.sha256(POM.read_bytes()).hexdigest()[:16]
    cache = CACHE_DIR / f"kafka-classpath-{digest}.txt"
    if cache.exists():
        classpath = cache.read_text().strip()
        if classpath and all(Path(jar).exists() for jar in classpath.split(os.pathsep)):
            return classpath
    mvn = shutil.which("mvn")
    if mvn is None:
        raise KafkaBrokerError(
            "Maven (mvn) is not on PATH: it resolves the Kafka broker's jars from Maven "
            "Central. Install Maven 3.8+, or point HEADWAY_KAFKA_BOOTSTRAP at a running broker."
        )
    CACHE_DIR.mkdir(parents=True, exist_ok=True)
    partial = cache.with_suffix(f".{os.getpid()}.tmp")
    command = [
        mvn,
        "-q",
        "-B",
        "-f",
        str(POM),
        "dependency:build-classpath",
        "-Dmdep.includeScope=runtime",
        f"-Dmdep.outputFile={partial}",
    ]
    try:
        result = subprocess.run(
            command, capture_output=True, text=True, timeout=MAVEN_TIMEOUT, check=False
        )
    except subprocess.TimeoutExpired as exc:
        raise KafkaBrokerError(
            f"Maven did not resolve the Kafka jars within {MAVEN_TIMEOUT:.0f}s"
        ) from exc
    if result.returncode != 0 or not partial.exists():
        partial.unlink(missing_ok=True)
        output = (result.stdout + result.stderr).strip()[-4000:]
        raise KafkaBrokerError(
            f"Maven failed to resolve the Kafka jars ({' '.join(command)}):\n{output}"
        )
    os.replace(partial, cache)  # atomic, so a concurrent run never reads half a file
    return cache.read_text().strip()


def check_broker(bootstrap: str, timeout: float, alive: Callable[[], bool] = lambda: True) -> None:
    """Wait until the broker at ``bootstrap`` serves metadata, groups and transactions.

    Metadata alone is not enough: the group and transaction coordinators live on internal
    topics that are created on first use, and until they are loaded, consumer groups and
    transactional producers get retriable errors that would make the first tests flaky.
    ``alive`` ends the wait early when the broker process is known to be gone.
    """
    deadline = time.monotonic() + timeout
    config: dict[str, str | int | float | bool] = {"bootstrap.servers": bootstrap}
    # librdkafka logs expected start-up retries; route them to logging, not to stderr.
    admin = AdminClient(config, logger=log)

    def describe_group(wait: float) -> None:
        # Describing a group makes the broker create __consumer_offsets and load it.
        admin.describe_consumer_groups(["headway-readiness"])["headway-readiness"].result(wait)

    def commit_transaction(wait: float) -> None:
        # A fresh producer each try: a failed init_transactions() can leave it unusable.
        transactional_id = f"headway-readiness-{uuid.uuid4()}"
        producer = Producer({**config, "transactional.id": transactional_id}, logger=log)
        producer.init_transactions(wait)
        producer.begin_transaction()
        producer.commit_transaction(wait)

    def retry(step: str, attempt: Callable[[float], object]) -> None:
        # Short attempts, so that a broker process that died is noticed quickly.
        while True:
            try:
                attempt(max(min(deadline - time.monotonic(), 5.0), 0.1))
                return
            except (KafkaException, TimeoutError) as exc:  # TimeoutError: Future.result()
                if not alive():
                    raise KafkaBrokerError(f"Kafka died before it could {step}") from exc
                if time.monotonic() + 0.25 >= deadline:
                    raise KafkaBrokerError(f"Kafka could not {step} in time: {exc!r}") from exc
            time.sleep(0.25)

    retry("list topics", lambda wait: admin.list_topics(timeout=wait))
    retry("describe a consumer group", describe_group)
    retry("commit a transaction", commit_transaction)


def _free_port() -> int:
    """Find a free loopback port below the kernel's ephemeral range.

    While the broker is stopped, any client socket could take a port in that range as its
    source port, and the broker could not bind it again on restart.
    """
    try:
        low = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        low = 32768
    high = max(low, 20000)  # a range that starts lower leaves no room outside it anyway
    for _ in range(100):
        port = random.randrange(10000, high)
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise KafkaBrokerError(f"no free loopback port found between 10000 and {high}")


def _random_cluster_id() -> str:
    """Make a cluster id in Kafka's format: a random UUID as 22 chars of URL-safe base64."""
    while True:
        cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        if not cluster_id.startswith("-"):  # would be parsed as an option by StorageTool
            return cluster_id


class KafkaBroker:
    """One Apache Kafka process in KRaft mode (broker and controller), on loopback ports.

    ``start()``/``stop()`` bracket its whole life; ``stop_process()``/``start_process()``
    take it down and bring it back on the same ports and data, for outage tests.
    """

    def __init__(self, start_timeout: float = 120.0) -> None:
        self.start_timeout = start_timeout
        self.port = _free_port()
        self.controller_port = _free_port()
        self._java = self._find_java()
        self._classpath = ""
        self._workdir: Path | None = None
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def bootstrap(self) -> str:
        """The ``bootstrap.servers`` string for clients."""
        return f"127.0.0.1:{self.port}"

    @property
    def log_path(self) -> Path:
        """The broker's log file: stdout and stderr of every run, appended."""
        return self._require_workdir() / "broker.log"

    @property
    def running(self) -> bool:
        """Whether the broker process is alive."""
        return self._process is not None and self._process.poll() is None

    def start(self) -> None:
        """Resolve the jars, format fresh storage and start the broker; return when ready."""
        if self._workdir is not None:
            raise KafkaBrokerError("broker already started")
        self._classpath = kafka_classpath()
        self._workdir = Path(tempfile.mkdtemp(prefix="headway-kafka-"))
        config = self._workdir / "server.properties"
        config.write_text(
            SERVER_PROPERTIES.format(
                port=self.port,
                controller_port=self.controller_port,
                data_dir=self._workdir / "data",
            )
        )
        (self._workdir / "log4j2.properties").write_text(LOG4J2_PROPERTIES)
        arguments = ["format", "--config", str(config), "--cluster-id", _random_cluster_id()]
        command = self._java_command("-Xmx256m", "kafka.tools.StorageTool", *arguments)
        with self.log_path.open("ab") as out:
            try:
                code = subprocess.run(
                    command, stdout=out, stderr=subprocess.STDOUT, timeout=self.start_timeout
                ).returncode
            except subprocess.TimeoutExpired:
                code = None
        if code != 0:
            raise KafkaBrokerError(
                f"formatting Kafka storage failed (exit {code}); log {self.log_path}\n"
                f"{self.log_excerpt()}"
            )
        self.start_process()

    def start_process(self) -> None:
        """Launch the broker on the existing ports and data; return once it serves clients.

        On failure the process is killed and the error quotes the broker's log.
        """
        workdir = self._require_workdir()
        if self.running:
            raise KafkaBrokerError("broker process already running")
        command = self._java_command(HEAP, "kafka.Kafka", str(workdir / "server.properties"))
        with self.log_path.open("ab") as out:
            self._process = subprocess.Popen(
                command,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                cwd=workdir,
            )
        # A script that forgets to stop the broker must not leave it running after it exits.
        atexit.register(self.stop_process)
        try:
            self._wait_ready()
        except BaseException:
            self.stop_process(kill=True)  # the work dir stays, so the log can be read
            raise

    def stop_process(self, kill: bool = False, timeout: float = 30.0) -> None:
        """Stop the broker process, keeping its data for ``start_process()``.

        SIGTERM gives a clean shutdown; ``kill=True`` sends SIGKILL at once, like a crash.
        A broker that ignores SIGTERM for ``timeout`` seconds is killed as well.
        """
        atexit.unregister(self.stop_process)
        process, self._process = self._process, None
        if process is None or process.poll() is not None:
            return
        if kill:
            process.kill()
        else:
            process.terminate()
            try:
                process.wait(timeout)
                return
            except subprocess.TimeoutExpired:
                log.warning("Kafka ignored SIGTERM for %.0fs; killing it", timeout)
                process.kill()
        process.wait()

    def stop(self) -> None:
        """Stop the broker and delete its data and logs."""
        self.stop_process()
        if self._workdir is not None:
            shutil.rmtree(self._workdir, ignore_errors=True)
            self._workdir = None

    def log_excerpt(self, tail: int = 30) -> str:
        """The log's first errors and its last lines, for error messages.

        After a failed start Kafka logs a long shutdown, which buries the cause far from the
        end; errors and exception headers are the lines that are not indented.
        """
        try:
            lines = self.log_path.read_text(errors="replace").splitlines()
        except (OSError, KafkaBrokerError):
            return "(no broker log)"
        errors = [
            line
            for line in lines
            if " ERROR " in line
            or (not line.startswith(("[", " ", "\t")) and ("Exception" in line or "Error" in line))
        ]
        first = "\n".join(errors[:10]) or "(none)"
        return f"first errors:\n{first}\nlast {tail} lines:\n" + "\n".join(lines[-tail:])

    def _wait_ready(self) -> None:
        """Wait for the port to open, then for clients to work; fail fast if Java exits."""
        deadline = time.monotonic() + self.start_timeout
        while True:
            if not self.running:
                raise self._start_error("exited during start-up")
            with socket.socket() as sock:
                if sock.connect_ex(("127.0.0.1", self.port)) == 0:
                    break
            if time.monotonic() > deadline:
                raise self._start_error(f"did not listen within {self.start_timeout:.0f}s")
            time.sleep(0.2)
        try:
            check_broker(
                self.bootstrap, max(deadline - time.monotonic(), 1.0), lambda: self.running
            )
        except KafkaBrokerError as exc:
            raise self._start_error(f"is not ready: {exc}") from exc

    def _start_error(self, problem: str) -> KafkaBrokerError:
        status = (
            "" if self.running or self._process is None else f" (exit {self._process.returncode})"
        )
        return KafkaBrokerError(
            f"Kafka at {self.bootstrap} {problem}{status}; log {self.log_path}\n"
            f"{self.log_excerpt()}"
        )

    def _java_command(self, heap: str, main_class: str, *arguments: str) -> list[str]:
        log4j = self._require_workdir() / "log4j2.properties"
        return [
            self._java,
            heap,
            # C1 only: start-up is about a third faster on 2 busy cores, as the C2 compiler
            # threads stop competing with the tests; the tests' traffic is too light to miss C2.
            "-XX:TieredStopAtLevel=1",
            "-Djava.awt.headless=true",
            f"-Dlog4j2.configurationFile={log4j}",
            "-cp",
            self._classpath,
            main_class,
            *arguments,
        ]

    def _require_workdir(self) -> Path:
        if self._workdir is None:
            raise KafkaBrokerError("broker not started")
        return self._workdir

    @staticmethod
    def _find_java() -> str:
        java_home = os.environ.get("JAVA_HOME")
        java = str(Path(java_home) / "bin" / "java") if java_home else shutil.which("java")
        if java is None or not Path(java).exists():
            raise KafkaBrokerError(
                "Java is not installed (no JAVA_HOME, no java on PATH): Kafka needs Java 17+. "
                "Install it, or point HEADWAY_KAFKA_BOOTSTRAP at a running broker."
            )
        return java
