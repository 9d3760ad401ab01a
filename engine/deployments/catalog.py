"""The registered deployments: discovery, persistence, and their services in the registry.

A deployment's services join the registry next to the in-process ones. Registering the same
URI with the same manifest again changes nothing; a changed manifest makes a new deployment
(a new revision) that new invocations go to, while invocations already started stay pinned
to the deployment recorded in their status.

Deployment records are node metadata, not partition data (Restate keeps them in its metadata
store, apart from the partition log), so they are written to the store directly, fsynced,
before the admin API answers, and read back on start before invocations resume.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import time
from typing import Any

import aiohttp
from headway.sdk import ids
from headway.sdk.protocol import versions
from rocksdict import WriteBatch

from .. import keys
from ..invoker import Invoker
from ..registry import Registry, ServiceInfo
from ..store import Store, pack
from .attempt import RemoteAttempt
from .discovery import DiscoveryError, discover, normalize_uri
from .h2_connection import H2Pool
from .manifest import ManifestError, parse_manifest
from .streaming import StreamingAttempt


@dataclasses.dataclass
class Deployment:
    id: str
    uri: str
    protocol: int
    manifest: dict[str, Any]
    created_at: int
    services: list[ServiceInfo]
    http2: bool = False  # attempts stream over HTTP/2 (h2c) instead of request/response

    def record(self) -> dict[str, Any]:
        return {"id": self.id, "uri": self.uri, "p": self.protocol, "m": self.manifest,
                "ca": self.created_at, "h2": self.http2}  # fmt: skip


def _canonical(manifest: Any) -> str:
    return json.dumps(manifest, sort_keys=True, separators=(",", ":"))


class Deployments:
    """Deployments by id, and which one serves each remote service now."""

    def __init__(
        self, store: Store, registry: Registry, max_protocol: int, eager_state_limit: int
    ) -> None:
        self.store = store
        self.registry = registry
        self.max_protocol = max_protocol
        self.eager_state_limit = eager_state_limit
        self.by_id: dict[str, Deployment] = {}
        self._session: aiohttp.ClientSession | None = None
        self._h2_pools: dict[str, H2Pool] = {}
        self._lock = asyncio.Lock()

    def attach(self, invoker: Invoker) -> None:
        """Loads the stored deployments and routes pinned invocations to them."""
        records = [record for _, record in self.store.scan(keys.DEPLOYMENT)]
        for record in sorted(records, key=lambda r: (r["ca"], r["id"])):
            manifest = parse_manifest(record["m"], record["id"])
            deployment = Deployment(
                record["id"], record["uri"], record["p"], record["m"], record["ca"],
                manifest.services, bool(record.get("h2")),
            )  # fmt: skip
            self.by_id[deployment.id] = deployment
            self._install(deployment)
        invoker.remote = self._start_attempt

    def _start_attempt(
        self, invoker: Invoker, invocation_id: str, status: dict[str, Any]
    ) -> RemoteAttempt:
        deployment = self.by_id.get(str(status["dp"]))
        if deployment is not None and deployment.http2:
            pool = self._h2_pools.setdefault(deployment.id, H2Pool(deployment.uri))
            return StreamingAttempt(
                invoker, self.session(), deployment, invocation_id, status, pool,
                self.eager_state_limit,
            )  # fmt: skip
        return RemoteAttempt(
            invoker, self.session(), deployment, invocation_id, status, self.eager_state_limit
        )

    def session(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=0), auto_decompress=False
            )
        return self._session

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
        for pool in self._h2_pools.values():
            await pool.close()

    # -- registration ----------------------------------------------------------------------

    async def register(self, raw_uri: Any, http2: Any = False) -> tuple[Deployment, bool]:
        """Discovers and registers; (deployment, whether it is new). Raises DiscoveryError."""
        uri = normalize_uri(raw_uri)
        if not isinstance(http2, bool):
            raise DiscoveryError("http2 must be true or false")
        async with self._lock:
            raw = await discover(self.session(), uri)
            existing = self._latest_at(uri)
            if (
                existing is not None
                and _canonical(existing.manifest) == _canonical(raw)
                and existing.http2 == http2
            ):
                return existing, False
            deployment_id = ids.new_deployment_id()
            try:
                manifest = parse_manifest(raw, deployment_id)
            except ManifestError as e:
                raise DiscoveryError(f"bad manifest from {uri}/discover: {e}") from None
            protocol = versions.negotiate(
                manifest.min_protocol, min(manifest.max_protocol, self.max_protocol)
            )
            if protocol is None:
                offered = [f"v{v}" for v in versions.SUPPORTED_VERSIONS if v <= self.max_protocol]
                raise DiscoveryError(
                    f"{uri} speaks service protocol v{manifest.min_protocol}.."
                    f"v{manifest.max_protocol}; the engine speaks {', '.join(offered)}"
                )
            self._check_clashes(manifest.services)
            deployment = Deployment(
                deployment_id, uri, protocol, raw, int(time.time() * 1000), manifest.services,
                http2,
            )  # fmt: skip
            self._write(keys.deployment(deployment_id), deployment.record())
            self.by_id[deployment_id] = deployment
            self._install(deployment)
            return deployment, True

    def _latest_at(self, uri: str) -> Deployment | None:
        same = [d for d in self.by_id.values() if d.uri == uri]
        return max(same, key=lambda d: (d.created_at, d.id)) if same else None

    def _check_clashes(self, services: list[ServiceInfo]) -> None:
        for info in services:
            current = self.registry.services.get(info.name)
            if current is None:
                continue
            if current.deployment is None:
                raise DiscoveryError(
                    f"service {info.name} already exists in the engine's own process", 409
                )
            if current.kind != info.kind:
                raise DiscoveryError(
                    f"service {info.name} is a {current.kind} on {current.deployment}; the new "
                    f"deployment makes it a {info.kind} (remove {current.deployment} first)",
                    409,
                )

    def _install(self, deployment: Deployment) -> None:
        for info in deployment.services:
            self.registry.services[info.name] = info

    def remove(self, deployment_id: str) -> Deployment | None:
        """Forgets a deployment; its services fall back to the newest other deployment."""
        deployment = self.by_id.pop(deployment_id, None)
        if deployment is None:
            return None
        self._write(keys.deployment(deployment_id), None)
        for info in deployment.services:
            if self.registry.services.get(info.name) is info:
                del self.registry.services[info.name]
        for other in sorted(self.by_id.values(), key=lambda d: (d.created_at, d.id)):
            for info in other.services:
                current = self.registry.services.get(info.name)
                if current is None or current.deployment is not None:
                    self.registry.services[info.name] = info
        return deployment

    def _write(self, key: bytes, value: Any) -> None:
        batch = WriteBatch(raw_mode=True)
        if value is None:
            batch.delete(key)
        else:
            batch.put(key, pack(value))
        self.store.write(batch)
