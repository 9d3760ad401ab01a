"""`headway serve APP`: an app's services as an HTTP deployment, for an engine to register."""

from __future__ import annotations

import asyncio
import signal
import sys

from headway.sdk.definitions import ServiceDefinition
from headway.sdk.protocol.endpoint import make_app

from ..ingress import start_site


async def serve_deployment(services: list[ServiceDefinition], host: str, port: int) -> None:
    """Serves until SIGINT or SIGTERM. Raises RuntimeError if it cannot listen."""
    try:
        runner = await start_site(make_app(services), host, port)
    except OSError as e:
        raise RuntimeError(f"cannot listen on {host}:{port}: {e.strerror or e}") from None
    print(f"headway: serving http://{host}:{port}", file=sys.stderr, flush=True)
    for definition in services:
        handlers = ", ".join(sorted(definition.handlers))
        print(f"headway: service  {definition.name} ({definition.kind}): {handlers}",
              file=sys.stderr, flush=True)  # fmt: skip
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        await stop.wait()
    finally:
        await runner.cleanup()
