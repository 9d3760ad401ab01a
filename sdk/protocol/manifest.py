"""The endpoint manifest a Headway deployment answers on `GET /discover`."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from ..definitions import HandlerOptions, ServiceDefinition
from .versions import ENDPOINT_VERSIONS

_SERVICE_TYPES = {"service": "SERVICE", "object": "VIRTUAL_OBJECT", "workflow": "WORKFLOW"}


def _ms(value: timedelta | None) -> int | None:
    return None if value is None else int(value.total_seconds() * 1000)


def _options(options: HandlerOptions, manifest_version: int) -> dict[str, Any]:
    out: dict[str, Any] = {
        "inactivityTimeout": _ms(options.inactivity_timeout),
        "abortTimeout": _ms(options.abort_timeout),
        "journalRetention": _ms(options.journal_retention),
        "idempotencyRetention": _ms(options.idempotency_retention),
        "workflowCompletionRetention": _ms(options.workflow_retention),
        "ingressPrivate": options.ingress_private,
    }
    policy = options.retry_policy
    if policy is not None and manifest_version >= 4:  # retry fields arrived with manifest v4
        out |= {
            "retryPolicyInitialInterval": _ms(policy.initial_interval),
            "retryPolicyMaxInterval": _ms(policy.max_interval),
            "retryPolicyExponentiationFactor": policy.factor,
            "retryPolicyMaxAttempts": policy.max_attempts,
        }
    return {k: v for k, v in out.items() if v is not None}


def build_manifest(services: list[ServiceDefinition], manifest_version: int) -> dict[str, Any]:
    """The manifest for these services, in the given manifest version."""
    return {
        "protocolMode": "REQUEST_RESPONSE",
        "minProtocolVersion": min(ENDPOINT_VERSIONS),
        "maxProtocolVersion": max(ENDPOINT_VERSIONS),
        "services": [
            {
                "name": definition.name,
                "ty": _SERVICE_TYPES[definition.kind],
                "handlers": [
                    {
                        "name": handler.name,
                        **({"ty": handler.kind.upper()} if handler.kind else {}),
                        "input": {"required": handler.input_required},
                        **_options(handler.options, manifest_version),
                    }
                    for handler in definition.handlers.values()
                ],
                **_options(definition.options, manifest_version),
            }
            for definition in services
        ],
    }
