"""The engine's view of the services it can run: kinds, handler kinds and options."""

from __future__ import annotations

import dataclasses
from datetime import timedelta

from headway.sdk.definitions import (
    Handler,
    HandlerOptions,
    RetryPolicy,
    ServiceDefinition,
    ServiceKind,
)

DEFAULT_RETRY = RetryPolicy()
DEFAULT_RETENTION = timedelta(hours=24)


@dataclasses.dataclass
class ServiceInfo:
    """One registered service and its handlers."""

    name: str
    kind: ServiceKind
    handlers: dict[str, Handler]
    options: HandlerOptions
    deployment: str | None = None  # the deployment serving it over HTTP; None: in-process

    def needs_lock(self, handler: str) -> bool:
        """Whether invocations of `handler` hold their key's lock (one at a time per key)."""
        kind = self.handlers[handler].kind
        return (self.kind == "object" and kind == "exclusive") or kind == "workflow"


class Registry:
    """Services by name."""

    def __init__(self, definitions: list[ServiceDefinition] | None = None) -> None:
        self.services: dict[str, ServiceInfo] = {}
        for definition in definitions or []:
            self.add(definition)

    def add(self, definition: ServiceDefinition) -> None:
        if definition.name in self.services:
            raise ValueError(f"two services are named {definition.name!r}")
        self.services[definition.name] = ServiceInfo(
            definition.name, definition.kind, dict(definition.handlers), definition.options
        )

    def lookup(self, service: str, handler: str) -> tuple[ServiceInfo, Handler] | None:
        info = self.services.get(service)
        if info is None or handler not in info.handlers:
            return None
        return info, info.handlers[handler]

    def retry_policy(self, service: str, handler: str) -> RetryPolicy:
        found = self.lookup(service, handler)
        policy = found[1].options.retry_policy if found else None
        return policy or DEFAULT_RETRY

    def retention(self, service: str, handler: str) -> timedelta:
        """How long a completed invocation's status, result and journal are kept."""
        found = self.lookup(service, handler)
        if found is None:
            return DEFAULT_RETENTION
        options = found[1].options
        if found[1].kind == "workflow":
            return options.workflow_retention or DEFAULT_RETENTION
        return options.journal_retention or options.idempotency_retention or DEFAULT_RETENTION
