"""A service written with the official Restate TypeScript SDK, run by Headway over HTTP.

The SDK is installed with npm (pinned in tests/apps/restate_ts/package.json) into a cache
directory on first use and run with the machine's Node.js.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from deployment_process import APPS, DeploymentProcess
from engine_process import EngineProcess
from http_json import post

TS_APP = APPS / "restate_ts"
CACHE_DIR = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "headway"


def install_sdk() -> Path:
    """The node_modules directory holding the pinned SDK, installed once per package.json."""
    manifest = (TS_APP / "package.json").read_bytes()
    target = CACHE_DIR / f"restate-ts-{hashlib.sha256(manifest).hexdigest()[:12]}"
    modules = target / "node_modules"
    if (modules / "@restatedev" / "restate-sdk" / "package.json").exists():
        return modules
    target.mkdir(parents=True, exist_ok=True)
    (target / "package.json").write_bytes(manifest)
    subprocess.run(
        ["npm", "install", "--no-audit", "--no-fund", "--loglevel=error"],
        cwd=target, check=True, capture_output=True, timeout=300,
    )  # fmt: skip
    return modules


class NodeDeployment(DeploymentProcess):
    """`node app.cjs PORT` with the SDK on NODE_PATH."""

    def __init__(self, modules: Path, log_path: Path) -> None:
        super().__init__(str(TS_APP / "app.cjs"), log_path)
        self.modules = modules

    def command(self) -> list[str]:
        return ["env", f"NODE_PATH={self.modules}", "node", self.app, str(self.port)]


@pytest.fixture
def ts_deployment(tmp_path: Path) -> Iterator[NodeDeployment]:
    if shutil.which("node") is None or shutil.which("npm") is None:
        pytest.fail("Node.js and npm are needed for the TypeScript SDK test")
    deployment = NodeDeployment(install_sdk(), tmp_path / "node.log")
    deployment.start()
    yield deployment
    deployment.kill()


def test_a_typescript_service_registers_and_answers(
    ts_deployment: NodeDeployment, engine_factory: Callable[..., EngineProcess]
) -> None:
    engine = engine_factory(None).start()
    status, registered = post(f"{engine.admin}/deployments", {"uri": ts_deployment.uri})
    assert status == 201, registered
    assert {s["name"]: s["kind"] for s in registered["services"]} == {
        "TsTally": "object", "TsGreeter": "service",
    }  # fmt: skip
    assert post(f"{engine.ingress}/TsTally/a/add", 2) == (200, 2)
    assert post(f"{engine.ingress}/TsTally/a/add", 5) == (200, 7)
    # ctx.run, then a call to the object: two suspensions and replays over request/response.
    assert post(f"{engine.ingress}/TsGreeter/greet", "zoe") == (200, "hello ZOE #1")
    assert post(f"{engine.ingress}/TsGreeter/greet", "max") == (200, "hello MAX #2")
