"""A real deployment for integration tests: an ASGI app served by hypercorn in a subprocess."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

from engine_process import free_port

APPS = Path(__file__).parent.parent / "apps"


class DeploymentProcess:
    """`hypercorn MODULE:APP` on a free loopback port; restartable on the same port."""

    def __init__(self, app: str, log_path: Path, port: int | None = None) -> None:
        self.app = app
        self.port = port or free_port()
        self.log_path = log_path
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def uri(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def command(self) -> list[str]:
        # --workers 0 serves in this process, so SIGKILL stops the handlers too.
        return [sys.executable, "-m", "hypercorn", self.app, "--workers", "0",
                "--bind", f"127.0.0.1:{self.port}"]  # fmt: skip

    def start(self, timeout: float = 20.0) -> DeploymentProcess:
        log = self.log_path.open("ab")
        self.proc = subprocess.Popen(self.command(), cwd=APPS, stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"deployment exited with {self.proc.returncode}:\n{self.log()}")
            try:
                with urllib.request.urlopen(self.uri + "/health", timeout=1):
                    return self
            except urllib.error.HTTPError:
                return self  # it answers
            except (urllib.error.URLError, ConnectionError, OSError):
                time.sleep(0.05)
        raise RuntimeError(f"deployment not up after {timeout}s:\n{self.log()}")

    def kill(self) -> None:
        """SIGKILL: the handler stops wherever it is."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait()

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""


class HeadwayServeProcess(DeploymentProcess):
    """`headway serve APP --port PORT`: Headway's own services as a deployment."""

    def command(self) -> list[str]:
        return [sys.executable, "-m", "headway.engine", "serve", self.app,
                "--port", str(self.port)]  # fmt: skip
