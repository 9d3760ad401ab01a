"""Protocol versions and the content types that negotiate them."""

from __future__ import annotations

SUPPORTED_VERSIONS = (5, 6, 7)  # service protocol versions the engine speaks to deployments
ENDPOINT_VERSIONS = (5, 6)  # versions `headway serve` answers in
MANIFEST_VERSIONS = (2, 3, 4)  # endpoint manifest versions the engine reads


def invocation_content_type(version: int) -> str:
    return f"application/vnd.restate.invocation.v{version}"


def manifest_content_type(version: int) -> str:
    return f"application/vnd.restate.endpointmanifest.v{version}+json"


def manifest_accept_header() -> str:
    """The Accept header of a discovery request: every manifest version, newest first."""
    return ", ".join(manifest_content_type(v) for v in reversed(MANIFEST_VERSIONS))


def parse_invocation_content_type(value: str) -> int | None:
    """The protocol version a content type names, or None if it names none."""
    prefix = "application/vnd.restate.invocation.v"
    value = value.split(";")[0].strip()
    if not value.startswith(prefix) or not value[len(prefix) :].isdigit():
        return None
    return int(value[len(prefix) :])


def parse_manifest_content_type(value: str) -> int | None:
    prefix, suffix = "application/vnd.restate.endpointmanifest.v", "+json"
    value = value.split(";")[0].strip()
    body = value[len(prefix) : -len(suffix)] if value.endswith(suffix) else ""
    if not value.startswith(prefix) or not body.isdigit():
        return None
    return int(body)


def negotiate(min_version: int, max_version: int) -> int | None:
    """The newest version both sides speak, or None."""
    both = [v for v in SUPPORTED_VERSIONS if min_version <= v <= max_version]
    return max(both) if both else None
