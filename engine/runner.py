"""Running an engine with its ingress and admin listeners until interrupted."""

from __future__ import annotations

import asyncio
import gc
import logging
import signal

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

# The start-up and shutdown lines; named `headway` alone, so text lines read `headway: ready`.
log = logging.getLogger("headway")


def tune_garbage_collector() -> None:
    """Sets `GC_THRESHOLDS`; for a process that runs an engine (the CLI calls it)."""
    gc.set_threshold(*GC_THRESHOLDS)


async def serve(config: Config, services: list[ServiceDefinition]) -> None:
    """Starts everything, logs where it is, and runs until SIGINT or SIGTERM."""
    engine = Engine(config, services)
    data_dir = str(config.data_dir.resolve())
    log.info("opening", extra={"data_dir": data_dir})
    await engine.start()
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
    log.info("ingress", extra={"url": f"http://{config.ingress_host}:{config.ingress_port}"})
    log.info("admin", extra={"url": f"http://{config.admin_host}:{config.admin_port}"})
    for info in engine.registry.services.values():
        log.info(
            "serving",
            extra={"service": info.name, "kind": info.kind, "handlers": sorted(info.handlers)},
        )
    log.info(
        "ready",
        extra={
            "data_dir": data_dir,
            "recovery_ms": round(engine.recovery_seconds * 1000),
            "resumed": engine.resumed,
        },
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        await stop.wait()
    finally:
        log.info("shutting down")
        for runner in runners:
            await runner.cleanup()
        await engine.stop()
