"""Reading endpoint manifests into the registry's model, and refusing malformed ones."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from headway.engine.deployments.discovery import DiscoveryError, normalize_uri
from headway.engine.deployments.manifest import ManifestError, lazy_state, parse_manifest
from headway.sdk import RetryPolicy


def manifest(**service: Any) -> dict[str, Any]:
    base = {"name": "Counter", "ty": "VIRTUAL_OBJECT", "handlers": [{"name": "add"}]}
    return {"minProtocolVersion": 5, "maxProtocolVersion": 6, "services": [{**base, **service}]}


def test_kinds_defaults_and_options() -> None:
    raw = manifest(
        handlers=[
            {"name": "add", "inactivityTimeout": 5000, "input": {"required": True}},
            {"name": "get", "ty": "SHARED", "ingressPrivate": True},
        ],
        journalRetention=60_000,
        retryPolicyInitialInterval=100,
        retryPolicyMaxAttempts=3,
        retryPolicyExponentiationFactor=3,
    )
    parsed = parse_manifest(raw, "dp_1x")
    assert (parsed.min_protocol, parsed.max_protocol) == (5, 6)
    [info] = parsed.services
    assert (info.name, info.kind, info.deployment) == ("Counter", "object", "dp_1x")
    add, get = info.handlers["add"], info.handlers["get"]
    assert (add.kind, get.kind) == ("exclusive", "shared")
    assert add.input_required and not get.input_required
    assert add.options.inactivity_timeout == timedelta(seconds=5)
    assert add.options.journal_retention == timedelta(minutes=1)
    assert get.options.ingress_private is True and add.options.ingress_private is None
    assert add.options.retry_policy == RetryPolicy(
        initial_interval=timedelta(milliseconds=100), factor=3.0, max_attempts=3
    )


def test_service_and_workflow_handler_defaults() -> None:
    raw = manifest(name="S", ty="SERVICE", handlers=[{"name": "h"}])
    assert parse_manifest(raw, "dp").services[0].handlers["h"].kind is None
    raw = manifest(name="W", ty="WORKFLOW", handlers=[{"name": "run"}])
    assert parse_manifest(raw, "dp").services[0].handlers["run"].kind == "workflow"


@pytest.mark.parametrize(
    ("raw", "error"),
    [
        ([], "must be a JSON object"),
        ({"services": []}, "minProtocolVersion"),
        ({"minProtocolVersion": 6, "maxProtocolVersion": 5, "services": []}, "min <= max"),
        ({"minProtocolVersion": 5, "maxProtocolVersion": 6}, "services must be a list"),
        (manifest(ty="ACTOR"), "ty must be one of"),
        (manifest(name=""), "name must be a non-empty string"),
        (manifest(handlers=[{"name": "a", "ty": "WORKFLOW_X"}]), "does not fit"),
        (manifest(name="S", ty="SERVICE", handlers=[{"name": "a", "ty": "SHARED"}]), "fit"),
        (manifest(handlers=[{"name": "a", "abortTimeout": -1}]), "abortTimeout must be"),
        (manifest(handlers="add"), "handlers must be a list"),
        (manifest(retryPolicyExponentiationFactor=0.5), "ExponentiationFactor"),
        (manifest(retryPolicyMaxAttempts=0), "MaxAttempts"),
        (manifest(ingressPrivate="yes"), "ingressPrivate must be a boolean"),
    ],
)
def test_malformed_manifests_are_refused_precisely(raw: Any, error: str) -> None:
    with pytest.raises(ManifestError, match=error):
        parse_manifest(raw, "dp")


def test_duplicate_service_names_are_refused() -> None:
    raw = manifest()
    raw["services"] *= 2
    with pytest.raises(ManifestError, match="appears twice"):
        parse_manifest(raw, "dp")


@pytest.mark.parametrize(
    ("uri", "normalized"),
    [("http://127.0.0.1:9080/", "http://127.0.0.1:9080"), ("https://h/p/", "https://h/p")],
)
def test_uris_are_normalized(uri: str, normalized: str) -> None:
    assert normalize_uri(uri) == normalized


@pytest.mark.parametrize("uri", ["", None, "h:1", "http://", "http://h:port", "http://h/?q=1"])
def test_bad_uris_are_refused(uri: Any) -> None:
    with pytest.raises(DiscoveryError):
        normalize_uri(uri)


def test_lazy_state_is_the_handlers_setting_else_its_services() -> None:
    raw = manifest(
        enableLazyState=True,
        handlers=[{"name": "add"}, {"name": "get", "enableLazyState": False}],
    )
    assert lazy_state(raw, "Counter", "add") is True
    assert lazy_state(raw, "Counter", "get") is False
    assert lazy_state(manifest(), "Counter", "add") is False
    assert lazy_state(raw, "Other", "add") is False
