"""Running an engine with its ingress and admin listeners until interrupted."""

from __future__ import annotations

import asyncio
import gc
import signal
import sys
from collections.abc import Callable

from aiohttp import web
from headway.sdk.definitions import ServiceDefinition

from .admin import Admin
from .config import Config
from .engine import Engine
from .ingress import Ingress, start_site

# Collections of the youngest generation after this many net container allocations (CPython's
# default is 700), and of the older ones as rarely. The engine allocates millions of short-lived
# containers a minute (entries, journals, state records); with the defaults the collector ran
# every few Kafka records and took about a fifth of the pipeline's CPU. Cycles are still freed.
GC_THRESHOLDS = (50_000, 20, 100)


def tune_garbage_collector() -> None:
    """Sets `GC_THRESHOLDS`; for a process that runs an engine (the CLI calls it)."""
    gc.set_threshold(*GC_THRESHOLDS)


def _say(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


async def serve(
    config: Config,
    services: list[ServiceDefinition],
    *,
    say: Callable[[str], None] = _say,
) -> None:
    """Starts everything, prints where it is, and runs until SIGINT or SIGTERM."""
    engine = Engine(config, services)
    say(f"headway: opening {config.data_dir.resolve()}")
    await engine.start(progress=say)
    runners: list[web.AppRunner] = []
    try:
        runners.append(
            await start_site(Ingress(engine).app, config.ingress_host, config.ingress_port)
        )
        runners.append(await start_site(Admin(engine).app, config.admin_host, config.admin_port))
    except OSError as e:
        await engine.stop()
        for runner in runners:
            await runner.cleanup()
        raise RuntimeError(f"cannot listen: {e.strerror or e}") from None
    say(f"headway: ingress  http://{config.ingress_host}:{config.ingress_port}")
    say(f"headway: admin    http://{config.admin_host}:{config.admin_port}")
    say(f"headway: data     {config.data_dir.resolve()}")
    for info in engine.registry.services.values():
        say(f"headway: service  {info.name} ({info.kind}): {', '.join(sorted(info.handlers))}")
    say(
        f"headway: ready in {engine.recovery_seconds * 1000:.0f} ms "
        f"(resumed {engine.resumed} invocations)"
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        await stop.wait()
    finally:
        say("headway: shutting down")
        for runner in runners:
            await runner.cleanup()
        await engine.stop()
