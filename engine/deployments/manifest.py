"""An endpoint manifest (`GET /discover`) read into the engine's service model.

Services a deployment offers become `ServiceInfo`s alongside the in-process ones; their
handlers carry only what the engine needs (kind, options), since their code runs elsewhere.
"""

from __future__ import annotations

import dataclasses
from datetime import timedelta
from typing import Any

from headway.sdk.definitions import Handler, HandlerKind, HandlerOptions, RetryPolicy, ServiceKind
from headway.sdk.serde import BytesSerde

from ..registry import ServiceInfo

_SERVICE_KINDS: dict[str, ServiceKind] = {
    "SERVICE": "service", "VIRTUAL_OBJECT": "object", "WORKFLOW": "workflow",
}  # fmt: skip
_HANDLER_KINDS: dict[str, HandlerKind] = {
    "EXCLUSIVE": "exclusive", "SHARED": "shared", "WORKFLOW": "workflow",
}  # fmt: skip


class ManifestError(ValueError):
    """The manifest is not what the protocol describes; the message says where."""


@dataclasses.dataclass(frozen=True)
class Manifest:
    min_protocol: int
    max_protocol: int
    protocol_mode: str | None
    services: list[ServiceInfo]


async def _runs_remotely(*_: Any) -> Any:
    """Stands in for a handler whose code runs on a deployment, reached over HTTP."""
    raise RuntimeError("this handler runs on its deployment")


def _millis(raw: dict[str, Any], name: str, where: str) -> timedelta | None:
    value = raw.get(name)
    if value is None:
        return None
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise ManifestError(f"{where}: {name} must be a non-negative integer (ms), got {value!r}")
    return timedelta(milliseconds=value)


def _options(raw: dict[str, Any], where: str) -> HandlerOptions:
    retry: RetryPolicy | None = None
    initial = _millis(raw, "retryPolicyInitialInterval", where)
    max_interval = _millis(raw, "retryPolicyMaxInterval", where)
    factor = raw.get("retryPolicyExponentiationFactor")
    attempts = raw.get("retryPolicyMaxAttempts")
    if factor is not None and (not isinstance(factor, int | float) or factor < 1):
        raise ManifestError(f"{where}: retryPolicyExponentiationFactor must be >= 1")
    if attempts is not None and (not isinstance(attempts, int) or attempts < 1):
        raise ManifestError(f"{where}: retryPolicyMaxAttempts must be a positive integer")
    if any(v is not None for v in (initial, max_interval, factor, attempts)):
        base = RetryPolicy()
        retry = RetryPolicy(
            initial_interval=initial or base.initial_interval,
            factor=float(factor) if factor is not None else base.factor,
            max_interval=max_interval or base.max_interval,
            max_attempts=attempts,
        )
    private = raw.get("ingressPrivate")
    if private is not None and not isinstance(private, bool):
        raise ManifestError(f"{where}: ingressPrivate must be a boolean")
    return HandlerOptions(
        retry_policy=retry,
        inactivity_timeout=_millis(raw, "inactivityTimeout", where),
        abort_timeout=_millis(raw, "abortTimeout", where),
        idempotency_retention=_millis(raw, "idempotencyRetention", where),
        journal_retention=_millis(raw, "journalRetention", where),
        workflow_retention=_millis(raw, "workflowCompletionRetention", where),
        ingress_private=private,
    )


def _name(raw: dict[str, Any], where: str) -> str:
    name = raw.get("name")
    if not isinstance(name, str) or not name or "/" in name:
        raise ManifestError(f"{where}: name must be a non-empty string without '/'")
    return name


def _service(raw: Any, position: int, deployment_id: str) -> ServiceInfo:
    if not isinstance(raw, dict):
        raise ManifestError(f"services[{position}] must be an object")
    name = _name(raw, f"services[{position}]")
    kind = _SERVICE_KINDS.get(raw.get("ty", ""))
    if kind is None:
        raise ManifestError(f"service {name}: ty must be one of {sorted(_SERVICE_KINDS)}")
    options = _options(raw, f"service {name}")
    handlers: dict[str, Handler] = {}
    raw_handlers = raw.get("handlers", [])
    if not isinstance(raw_handlers, list):
        raise ManifestError(f"service {name}: handlers must be a list")
    for index, raw_handler in enumerate(raw_handlers):
        where = f"service {name} handlers[{index}]"
        if not isinstance(raw_handler, dict):
            raise ManifestError(f"{where} must be an object")
        handler_name = _name(raw_handler, where)
        handlers[handler_name] = _handler(raw_handler, handler_name, kind, options, where)
    return ServiceInfo(name, kind, handlers, options, deployment=deployment_id)


def _handler(
    raw: dict[str, Any], name: str, service_kind: ServiceKind, service: HandlerOptions, where: str
) -> Handler:
    ty = raw.get("ty")
    kind: HandlerKind | None
    if ty is None:
        kind = {"service": None, "object": "exclusive", "workflow": "workflow"}[service_kind]
    elif ty in _HANDLER_KINDS and service_kind != "service":
        kind = _HANDLER_KINDS[ty]
    else:
        raise ManifestError(f"{where}: handler type {ty!r} does not fit a {service_kind}")
    input_spec = raw.get("input") or {}
    return Handler(
        name=name, kind=kind, fn=_runs_remotely, input_serde=BytesSerde(),
        output_serde=BytesSerde(), takes_input=True,
        input_required=bool(isinstance(input_spec, dict) and input_spec.get("required")),
        options=_options(raw, where).merged_over(service),
    )  # fmt: skip


def parse_manifest(raw: Any, deployment_id: str) -> Manifest:
    """The manifest's services, owned by `deployment_id`. Raises ManifestError."""
    if not isinstance(raw, dict):
        raise ManifestError("the manifest must be a JSON object")
    low, high = raw.get("minProtocolVersion"), raw.get("maxProtocolVersion")
    if not isinstance(low, int) or not isinstance(high, int) or low > high:
        raise ManifestError(
            "minProtocolVersion and maxProtocolVersion must be integers, min <= max"
        )
    services = raw.get("services")
    if not isinstance(services, list):
        raise ManifestError("services must be a list")
    parsed = [_service(s, i, deployment_id) for i, s in enumerate(services)]
    names = [s.name for s in parsed]
    if len(set(names)) != len(names):
        raise ManifestError(f"a service name appears twice: {sorted(names)}")
    mode = raw.get("protocolMode")
    return Manifest(low, high, mode if isinstance(mode, str) else None, parsed)


def lazy_state(manifest: dict[str, Any], service: str, handler: str) -> bool:
    """Whether the manifest enables lazy state for a handler (its own setting, else its
    service's): its attempts then get no state up front and read it with lazy commands."""
    for raw_service in manifest.get("services", []):
        if raw_service.get("name") != service:
            continue
        for raw_handler in raw_service.get("handlers", []):
            if raw_handler.get("name") == handler and "enableLazyState" in raw_handler:
                return raw_handler["enableLazyState"] is True
        return raw_service.get("enableLazyState") is True
    return False
