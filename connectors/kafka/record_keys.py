"""How a Kafka record key becomes a virtual-object key or workflow id, and back.

Keys are strings in Headway. A record key that is valid UTF-8 (without NUL, and not starting
with the `b64:` marker) is used as it is, so `clicks` keyed by user name route to the objects
of those names. Any other key (binary, say an Avro- or integer-encoded key) becomes `b64:`
followed by its URL-safe base64 without padding. The mapping is one-to-one, so distinct record
keys never share an object, and `decode_record_key` gives back the exact bytes.
"""

from __future__ import annotations

import base64

BINARY_MARKER = "b64:"


def encode_record_key(raw: bytes) -> str:
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        text = None
    if text is not None and "\x00" not in text and not text.startswith(BINARY_MARKER):
        return text
    return BINARY_MARKER + base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def decode_record_key(key: str) -> bytes:
    if not key.startswith(BINARY_MARKER):
        return key.encode("utf-8")
    encoded = key[len(BINARY_MARKER) :]
    return base64.urlsafe_b64decode(encoded + "=" * (-len(encoded) % 4))
