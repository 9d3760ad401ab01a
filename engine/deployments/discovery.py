"""Discovery: `GET {uri}/discover`, negotiating the manifest version through the Accept header."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import urlsplit

import aiohttp
from headway.sdk.protocol import versions


class DiscoveryError(ValueError):
    """Registration cannot go on; `status` is the HTTP status the admin API answers with."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


def normalize_uri(uri: Any) -> str:
    """The deployment's base URI without a trailing slash; DiscoveryError if it is not one."""
    if not isinstance(uri, str) or not uri:
        raise DiscoveryError('expected {"uri": "http://host:port[/path]"}')
    parts = urlsplit(uri)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise DiscoveryError(f"invalid deployment uri {uri!r}: expected http(s)://host:port[/path]")
    if parts.query or parts.fragment:
        raise DiscoveryError(f"invalid deployment uri {uri!r}: no query or fragment allowed")
    try:
        parts.port  # noqa: B018 - raises ValueError for a malformed port
    except ValueError as e:
        raise DiscoveryError(f"invalid deployment uri {uri!r}: {e}") from None
    return uri.rstrip("/")


async def discover(session: aiohttp.ClientSession, uri: str, timeout: float = 10.0) -> Any:
    """The deployment's manifest as JSON. Raises DiscoveryError."""
    url = f"{uri}/discover"
    try:
        async with session.get(
            url,
            headers={"accept": versions.manifest_accept_header()},
            timeout=aiohttp.ClientTimeout(total=timeout),
        ) as resp:
            body = await resp.read()
            if resp.status != 200:
                text = body.decode(errors="replace").strip()[:200]
                raise DiscoveryError(f"GET {url} answered {resp.status}: {text}")
            version = versions.parse_manifest_content_type(resp.headers.get("content-type", ""))
            if version is not None and version not in versions.MANIFEST_VERSIONS:
                raise DiscoveryError(
                    f"GET {url} answered with manifest version {version}; the engine reads "
                    f"versions {list(versions.MANIFEST_VERSIONS)}"
                )
    except (aiohttp.ClientError, TimeoutError, OSError) as e:
        reason = str(e) or type(e).__name__
        raise DiscoveryError(f"cannot reach the deployment at {url}: {reason}") from None
    try:
        return json.loads(body)
    except ValueError as e:
        raise DiscoveryError(f"GET {url} did not answer a JSON manifest: {e}") from None
