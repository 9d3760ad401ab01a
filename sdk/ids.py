"""Restate-compatible identifiers: invocation, awakeable/signal, deployment and subscription ids.

Layouts (Restate `crates/types/src/id_util.rs`, `identifiers.rs`, `base62_util.rs`):

* Every id is ``<resource>_<scheme version><body>``; the only scheme version is ``1``.
* Numbers in a body are fixed-width base62 over the alphabet ``0-9a-zA-Z``, left-padded with
  ``0``: 11 characters for a u64, 22 for a u128. Restate encodes the value after a
  ``to_be()`` byte swap on little-endian hosts, so the digits spell the integer whose
  *little-endian* reading equals the value's big-endian bytes. We reproduce that exactly.
* Invocation id ``inv_1`` + partition key (u64, 11 chars) + invocation uuid (u128, 22 chars):
  38 characters. Its raw form (``StartMessage.id`` on the wire) is 24 bytes: the partition
  key big-endian, then the uuid big-endian.
* Awakeable ids are minted by the SDK: ``sign_1`` (protocol V4+) or, before that, ``prom_1``,
  followed by unpadded URL-safe base64 of the 24 invocation-id bytes plus a big-endian u32
  index (the signal index, starting at 17, for ``sign_``; the journal entry index for
  ``prom_``). 38 base64 characters.
* Deployment ``dp_1`` and subscription ``sub_1`` ids carry a ULID (u128, 22 chars).

Partition keys use Restate's ``HashPartitioner``: a 64-bit XXH3 (seed 0) over what Rust's
``Hash`` feeds a hasher, i.e. a string's UTF-8 bytes followed by one ``0xff`` byte. XXH3 is not
in the standard library, so a pure-Python implementation lives here (no extra dependency).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import random
import re
import secrets
import time
from dataclasses import dataclass
from typing import Final

import xxhash

__all__ = [
    "DEPLOYMENT_PREFIX",
    "FIRST_SIGNAL_INDEX",
    "INVOCATION_ID_BYTES",
    "INVOCATION_ID_LENGTH",
    "INVOCATION_PREFIX",
    "LEGACY_AWAKEABLE_PREFIX",
    "SIGNAL_PREFIX",
    "SUBSCRIPTION_PREFIX",
    "UNSCOPED_SERVICE_PARTITION_KEY_FANOUT",
    "InvocationId",
    "awakeable_id",
    "deterministic_invocation_id",
    "hash_partition_key",
    "invocation_id_bytes",
    "new_deployment_id",
    "new_invocation_id",
    "new_subscription_id",
    "parse_awakeable_id",
    "parse_deployment_id",
    "parse_subscription_id",
    "partition_key_for",
    "partition_key_range",
    "partition_of",
    "record_invocation_id",
    "xxh3_64",
]

ID_SCHEME_VERSION: Final = "1"
INVOCATION_PREFIX: Final = "inv"
DEPLOYMENT_PREFIX: Final = "dp"
SUBSCRIPTION_PREFIX: Final = "sub"
SIGNAL_PREFIX: Final = "sign"
LEGACY_AWAKEABLE_PREFIX: Final = "prom"

BASE62_ALPHABET: Final = "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
_BASE62_INDEX: Final = {c: i for i, c in enumerate(BASE62_ALPHABET)}

U64_CHARS: Final = 11  # ceil(64 / 6)
U128_CHARS: Final = 22  # ceil(128 / 6)
MAX_PARTITION_KEY: Final = (1 << 64) - 1
MAX_PARTITIONS: Final = (1 << 16) - 1  # Restate's partition ids are u16
UUID_BYTES: Final = 16
INVOCATION_ID_BYTES: Final = 8 + UUID_BYTES
INVOCATION_ID_LENGTH: Final = len(INVOCATION_PREFIX) + 2 + U64_CHARS + U128_CHARS  # 38
ULID_ID_BODY_LENGTH: Final = 1 + U128_CHARS
AWAKEABLE_RAW_BYTES: Final = INVOCATION_ID_BYTES + 4
AWAKEABLE_B64_CHARS: Final = 38  # unpadded base64 of 28 bytes
FIRST_SIGNAL_INDEX: Final = 17  # signal ids 1..16 are reserved (1 = cancel)
UNSCOPED_SERVICE_PARTITION_KEY_FANOUT: Final = 512
_UNSCOPED_BUCKET_TAG: Final = "unscoped/service"
_HASH_SEPARATOR: Final = b","  # 0x2c, as in InvocationUuid::generate
_B64URL_RE: Final = re.compile(r"[A-Za-z0-9_-]*={0,2}")


# --------------------------------------------------------------------------- base62


def _byteswap(value: int, nbytes: int) -> int:
    """Reverse the byte order of an unsigned integer of `nbytes` bytes."""
    return int.from_bytes(value.to_bytes(nbytes, "big"), "little")


# Every two-digit base62 string, by value: encoding takes two digits per division.
_BASE62_PAIRS: Final = tuple(a + b for a in BASE62_ALPHABET for b in BASE62_ALPHABET)


def _encode_fixed(value: int, nbytes: int) -> str:
    """Fixed-width base62 of an unsigned `nbytes`-byte value, byte-swapped as Restate does."""
    width = U64_CHARS if nbytes == 8 else U128_CHARS
    n = _byteswap(value, nbytes)
    pairs: list[str] = []
    while n:
        n, rem = divmod(n, 3844)  # 62 ** 2
        pairs.append(_BASE62_PAIRS[rem])
    return "".join(reversed(pairs)).lstrip("0").rjust(width, "0")


def _decode_fixed(text: str, nbytes: int, what: str, whole: str, offset: int) -> int:
    """Decode a fixed-width base62 token produced by `_encode_fixed`."""
    n = 0
    for pos, char in enumerate(text):
        digit = _BASE62_INDEX.get(char)
        if digit is None:
            raise ValueError(
                f"invalid id {whole!r}: invalid base62 character {char!r} "
                f"at position {offset + pos} in the {what}"
            )
        n = n * 62 + digit
    if n >> (8 * nbytes):
        raise ValueError(f"invalid id {whole!r}: {what} does not fit in {8 * nbytes} bits")
    return _byteswap(n, nbytes)


def _split_prefix(text: str, expected: tuple[str, ...]) -> tuple[str, str]:
    """Check `<prefix>_<version>` and return (prefix, body after the version)."""
    if not isinstance(text, str):
        raise TypeError(f"expected an id string, got {type(text).__name__}")
    if not text:
        raise ValueError("invalid id '': empty string")
    prefix, sep, rest = text.partition("_")
    if not sep:
        raise ValueError(f"invalid id {text!r}: missing '_' after the resource prefix")
    if prefix not in expected:
        wanted = " or ".join(f"'{p}_'" for p in expected)
        raise ValueError(f"invalid id {text!r}: expected prefix {wanted}, got '{prefix}_'")
    if not rest:
        raise ValueError(f"invalid id {text!r}: missing id scheme version")
    if rest[0] != ID_SCHEME_VERSION:
        raise ValueError(
            f"invalid id {text!r}: unsupported id scheme version {rest[0]!r} "
            f"(expected {ID_SCHEME_VERSION!r})"
        )
    return prefix, rest[1:]


# Seeded from the OS once: ids must be unique, not secret, and a system call per id is slow.
_random_bits = random.Random(secrets.randbits(128)).getrandbits


def _new_ulid(timestamp_ms: int | None = None) -> bytes:
    """A ULID as 16 big-endian bytes: 48-bit Unix time in ms, then 80 random bits."""
    ms = time.time_ns() // 1_000_000 if timestamp_ms is None else timestamp_ms
    if not 0 <= ms < (1 << 48):
        raise ValueError(f"ULID timestamp out of range: {ms}")
    value = (ms << 80) | _random_bits(80)
    if value == 0:  # Restate never uses a zero uuid
        value = 1
    return value.to_bytes(UUID_BYTES, "big")


# --------------------------------------------------------------------------- invocation ids


@dataclass(frozen=True, slots=True)
class InvocationId:
    """An invocation id: a u64 partition key plus a 16-byte (u128, big-endian) uuid."""

    partition_key: int
    uuid: bytes

    def __post_init__(self) -> None:
        if not isinstance(self.partition_key, int) or isinstance(self.partition_key, bool):
            raise TypeError("partition_key must be an int")
        if not 0 <= self.partition_key <= MAX_PARTITION_KEY:
            raise ValueError(f"partition_key out of u64 range: {self.partition_key}")
        if not isinstance(self.uuid, bytes):
            raise TypeError("uuid must be bytes")
        if len(self.uuid) != UUID_BYTES:
            raise ValueError(f"uuid must be {UUID_BYTES} bytes, got {len(self.uuid)}")

    @classmethod
    def new(cls, partition_key: int) -> InvocationId:
        """A fresh id on `partition_key` with a ULID uuid, as Restate mints regular invocations."""
        return cls(partition_key, _new_ulid())

    @classmethod
    def parse(cls, text: str) -> InvocationId:
        """Parse the textual form ``inv_1…``; raises ValueError on malformed input."""
        _, body = _split_prefix(text, (INVOCATION_PREFIX,))
        if len(text) != INVOCATION_ID_LENGTH:
            raise ValueError(
                f"invalid id {text!r}: an invocation id has {INVOCATION_ID_LENGTH} "
                f"characters, got {len(text)}"
            )
        start = len(INVOCATION_PREFIX) + 2
        pk = _decode_fixed(body[:U64_CHARS], 8, "partition key", text, start)
        uuid = _decode_fixed(body[U64_CHARS:], UUID_BYTES, "uuid", text, start + U64_CHARS)
        return cls(pk, uuid.to_bytes(UUID_BYTES, "big"))

    @classmethod
    def from_bytes(cls, raw: bytes) -> InvocationId:
        """Decode the 24-byte wire form (``StartMessage.id``)."""
        if len(raw) != INVOCATION_ID_BYTES:
            raise ValueError(
                f"invocation id bytes must be {INVOCATION_ID_BYTES} long, got {len(raw)}"
            )
        return cls(int.from_bytes(raw[:8], "big"), bytes(raw[8:]))

    def to_bytes(self) -> bytes:
        """The 24-byte wire form: partition key (u64 BE) then uuid (u128 BE)."""
        return self.partition_key.to_bytes(8, "big") + self.uuid

    @property
    def uuid_int(self) -> int:
        """The uuid as an unsigned 128-bit integer."""
        return int.from_bytes(self.uuid, "big")

    def partition(self, partitions: int) -> int:
        """The partition (0-based) this invocation lives on among `partitions`."""
        return partition_of(self.partition_key, partitions)

    def __str__(self) -> str:
        return (
            f"{INVOCATION_PREFIX}_{ID_SCHEME_VERSION}"
            f"{_encode_fixed(self.partition_key, 8)}{_encode_fixed(self.uuid_int, UUID_BYTES)}"
        )


def new_invocation_id(partition_key: int) -> str:
    """Mint a fresh ``inv_1…`` id (ULID uuid) on the given partition key."""
    return str(InvocationId.new(partition_key))


def invocation_id_bytes(invocation_id: InvocationId | str | bytes) -> bytes:
    """The 24 raw bytes Restate sends as ``StartMessage.id`` for an invocation id."""
    return _coerce_invocation_id(invocation_id).to_bytes()


def _coerce_invocation_id(value: InvocationId | str | bytes) -> InvocationId:
    if isinstance(value, InvocationId):
        return value
    if isinstance(value, str):
        return InvocationId.parse(value)
    if isinstance(value, bytes | bytearray | memoryview):
        return InvocationId.from_bytes(bytes(value))
    raise TypeError(f"expected InvocationId, str or bytes, got {type(value).__name__}")


# --------------------------------------------------------------------------- awakeables / signals


def awakeable_id(
    invocation_id: InvocationId | bytes | str, index: int, *, legacy: bool = False
) -> str:
    """The awakeable id the official SDKs surface for ``ctx.awakeable()``.

    `invocation_id` is the object, its 24 raw bytes (``StartMessage.id``) or its text.
    With protocol V4+ the SDK uses ``sign_1`` and the awakeable's signal index (the first
    awakeable of an invocation gets 17); ``legacy=True`` gives the older ``prom_1`` form,
    whose index is the journal entry index.
    """
    if not isinstance(index, int) or isinstance(index, bool) or not 0 <= index < (1 << 32):
        raise ValueError(f"awakeable index must be a u32, got {index!r}")
    raw = _coerce_invocation_id(invocation_id).to_bytes() + index.to_bytes(4, "big")
    prefix = LEGACY_AWAKEABLE_PREFIX if legacy else SIGNAL_PREFIX
    encoded = base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")
    return f"{prefix}_{ID_SCHEME_VERSION}{encoded}"


def parse_awakeable_id(text: str) -> tuple[InvocationId, int]:
    """Parse a ``sign_1…`` or legacy ``prom_1…`` id into (invocation id, index).

    The prefix tells what the index means: a signal index for ``sign_``, a journal entry
    index for ``prom_``. Padding is accepted, as Restate accepts it.
    """
    _, body = _split_prefix(text, (SIGNAL_PREFIX, LEGACY_AWAKEABLE_PREFIX))
    if not _B64URL_RE.fullmatch(body):
        raise ValueError(f"invalid id {text!r}: body is not URL-safe base64")
    unpadded = body.rstrip("=")
    if len(unpadded) != AWAKEABLE_B64_CHARS:
        raise ValueError(
            f"invalid id {text!r}: expected {AWAKEABLE_B64_CHARS} base64 characters "
            f"({AWAKEABLE_RAW_BYTES} bytes), got {len(unpadded)}"
        )
    if body != unpadded and len(body) % 4:
        raise ValueError(f"invalid id {text!r}: wrong base64 padding")
    try:
        raw = base64.urlsafe_b64decode(unpadded + "=" * (-len(unpadded) % 4))
    except (binascii.Error, ValueError) as exc:  # pragma: no cover - guarded by the regex
        raise ValueError(f"invalid id {text!r}: bad base64 ({exc})") from None
    if base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii") != unpadded:
        raise ValueError(f"invalid id {text!r}: non-canonical base64 (trailing bits set)")
    invocation = InvocationId.from_bytes(raw[:INVOCATION_ID_BYTES])
    return invocation, int.from_bytes(raw[INVOCATION_ID_BYTES:], "big")


# ------------------------------------------------------------------ deployment / subscription


def new_deployment_id() -> str:
    """Mint a ``dp_1…`` deployment id (a ULID, 26 characters)."""
    return _ulid_id(DEPLOYMENT_PREFIX, _new_ulid())


def new_subscription_id() -> str:
    """Mint a ``sub_1…`` subscription id (a ULID, 27 characters)."""
    return _ulid_id(SUBSCRIPTION_PREFIX, _new_ulid())


def parse_deployment_id(text: str) -> bytes:
    """Validate a ``dp_1…`` id and return its 16 ULID bytes."""
    return _parse_ulid_id(text, DEPLOYMENT_PREFIX)


def parse_subscription_id(text: str) -> bytes:
    """Validate a ``sub_1…`` id and return its 16 ULID bytes."""
    return _parse_ulid_id(text, SUBSCRIPTION_PREFIX)


def _ulid_id(prefix: str, ulid: bytes) -> str:
    return f"{prefix}_{ID_SCHEME_VERSION}{_encode_fixed(int.from_bytes(ulid, 'big'), UUID_BYTES)}"


def _parse_ulid_id(text: str, prefix: str) -> bytes:
    _, body = _split_prefix(text, (prefix,))
    if len(body) != U128_CHARS:
        raise ValueError(
            f"invalid id {text!r}: a '{prefix}_' id has {len(prefix) + 1 + ULID_ID_BODY_LENGTH} "
            f"characters, got {len(text)}"
        )
    value = _decode_fixed(body, UUID_BYTES, "ulid", text, len(prefix) + 2)
    return value.to_bytes(UUID_BYTES, "big")


# --------------------------------------------------------------------------- partitioning


def hash_partition_key(value: str | bytes) -> int:
    """Restate's ``HashPartitioner`` for a string key: XXH3-64 of its UTF-8 bytes + ``0xff``."""
    data = value.encode("utf-8") if isinstance(value, str) else bytes(value)
    return xxh3_64(data + b"\xff")


def _service_bucket_partition_key(service: str, bucket: int) -> int:
    """Partition key of `bucket` in an unkeyed service's fixed set of 512 keys.

    Mirrors Rust hashing the tuple ``(service, "unscoped/service", bucket as u64)``.
    """
    data = (
        service.encode("utf-8")
        + b"\xff"
        + _UNSCOPED_BUCKET_TAG.encode("ascii")
        + b"\xff"
        + bucket.to_bytes(8, "little")
    )
    return xxh3_64(data)


def _idempotent_partition_key(service: str, idempotency_key: str, controlled_sharding: bool) -> int:
    if not controlled_sharding:
        return hash_partition_key(idempotency_key)
    bucket = hash_partition_key(idempotency_key) % UNSCOPED_SERVICE_PARTITION_KEY_FANOUT
    return _service_bucket_partition_key(service, bucket)


def partition_key_for(
    service: str,
    key: str | bytes | None,
    invocation_uuid: bytes | None = None,
    *,
    idempotency_key: str | None = None,
    controlled_sharding: bool = True,
) -> int:
    """Restate's partition key for an invocation of `service`.

    * Keyed targets (objects, workflows): hash of the key alone, so all of a key's
      invocations share one partition.
    * Unkeyed with an idempotency key: with ``controlled_sharding`` (Restate's default for new
      clusters) bucket ``hash(idempotency_key) % 512`` of the service's key set; without it,
      ``hash(idempotency_key)``.
    * Unkeyed otherwise: one of the service's 512 keys ``H((service, "unscoped/service", b))``.
      Restate picks the bucket at random; here it is ``uuid % 512`` when `invocation_uuid` is
      given (so the choice is reproducible), random otherwise.
    """
    if key is not None:
        return hash_partition_key(key)
    if idempotency_key is not None:
        return _idempotent_partition_key(service, idempotency_key, controlled_sharding)
    if invocation_uuid is not None:
        if len(invocation_uuid) != UUID_BYTES:
            raise ValueError(f"invocation_uuid must be {UUID_BYTES} bytes")
        bucket = int.from_bytes(invocation_uuid, "big") % UNSCOPED_SERVICE_PARTITION_KEY_FANOUT
    else:
        bucket = secrets.randbelow(UNSCOPED_SERVICE_PARTITION_KEY_FANOUT)
    return _service_bucket_partition_key(service, bucket)


def _check_partitions(partitions: int) -> None:
    if not 1 <= partitions <= MAX_PARTITIONS:
        raise ValueError(f"partitions must be in 1..{MAX_PARTITIONS}, got {partitions}")


def partition_of(partition_key: int, partitions: int) -> int:
    """Map a u64 partition key to one of `partitions` contiguous, near-equal key ranges."""
    _check_partitions(partitions)
    if not 0 <= partition_key <= MAX_PARTITION_KEY:
        raise ValueError(f"partition_key out of u64 range: {partition_key}")
    return (partition_key * partitions) >> 64


def partition_key_range(partition: int, partitions: int) -> tuple[int, int]:
    """Inclusive (first, last) partition keys of `partition`; lower partitions get any extra."""
    _check_partitions(partitions)
    if not 0 <= partition < partitions:
        raise ValueError(f"partition must be in 0..{partitions - 1}, got {partition}")
    space = 1 << 64
    start = -((-partition * space) // partitions)
    end = -((-(partition + 1) * space) // partitions) - 1
    return start, end


# --------------------------------------------------------------------------- deterministic ids


def _sha_uuid(parts: list[bytes]) -> bytes:
    """First 16 bytes of SHA-256 over `parts` (tag first, then separator-prefixed fields)."""
    h = hashlib.sha256(parts[0])
    for part in parts[1:]:
        h.update(_HASH_SEPARATOR)
        h.update(part)
    return h.digest()[:UUID_BYTES]


def _utf8(value: str | bytes) -> bytes:
    return value.encode("utf-8") if isinstance(value, str) else bytes(value)


def deterministic_invocation_id(
    service: str,
    handler: str,
    key: str | bytes | None,
    idempotency_key: str | None,
    *,
    workflow_run: bool = False,
    controlled_sharding: bool = True,
) -> str:
    """The invocation id Restate derives for an idempotent request or a workflow run.

    Workflow run (``workflow_run=True``, `key` required; handler and idempotency key ignored):
    uuid = SHA-256(``"wf" , service , key``)[:16]. Idempotent request: uuid =
    SHA-256(``"ik" , service [, key] , handler , idempotency_key``)[:16], where ``,`` is a
    0x2c byte. The partition key follows `partition_key_for`. Scoped targets are not modelled.
    """
    if workflow_run:
        if key is None:
            raise ValueError("a workflow run needs a key")
        uuid = _sha_uuid([b"wf", service.encode("utf-8"), _utf8(key)])
        return str(InvocationId(hash_partition_key(key), uuid))
    if idempotency_key is None:
        raise ValueError("an idempotency key is needed unless workflow_run=True")
    parts = [b"ik", service.encode("utf-8")]
    if key is not None:
        parts.append(_utf8(key))
    parts += [handler.encode("utf-8"), idempotency_key.encode("utf-8")]
    pk = partition_key_for(
        service, key, idempotency_key=idempotency_key, controlled_sharding=controlled_sharding
    )
    return str(InvocationId(pk, _sha_uuid(parts)))


def record_invocation_id(
    service: str, key: str | None, group: str, topic: str, partition: int, offset: int
) -> str:
    """The invocation id of the Kafka record at `offset` of `topic`/`partition`, consumed by
    `group`: uuid = SHA-256(``"kr" , group , topic , partition , offset``)[:16].

    Derived, not minted, so a record is the same invocation wherever its id is needed, and it is
    computed only where it is: most records finish in the express lane and never need one. The
    inputs are exactly what ingestion deduplicates on, so two records share an id only where
    they are one record.
    """
    uuid = _sha_uuid([
        b"kr", group.encode("utf-8"), topic.encode("utf-8"), str(partition).encode("ascii"),
        str(offset).encode("ascii"),
    ])  # fmt: skip
    return str(InvocationId(partition_key_for(service, key, uuid), uuid))


# --------------------------------------------------------------------------- XXH3-64 (seed 0)


def xxh3_64(data: bytes) -> int:
    """XXH3 64-bit hash with seed 0 and the default secret (as ``xxhash_rust::xxh3``)."""
    return xxhash.xxh3_64_intdigest(data)
