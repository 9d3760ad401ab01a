"""The partition store's key layout: one prefix per kind of record.

Keys sort so that range scans find what recovery needs without reading history: active
invocations under `ac/`, timers by due time under `tm/`.
"""

from __future__ import annotations

APPLIED = b"meta/applied"
TIMER_SEQ = b"meta/timer_seq"
LOG = b"log/"
INVOCATION = b"inv/"
JOURNAL = b"j/"
COMPLETION = b"cm/"
ACTIVE = b"ac/"
OBJECT_LOCK = b"vo/"
STATE = b"s/"
TIMER = b"tm/"
PROMISES = b"pr/"
NODE_ID = b"meta/node_id"
SUBSCRIPTION = b"sub/"
KAFKA_OFFSET = b"ko/"
KAFKA_CLUSTER = b"kc/"
OUTBOX = b"ob/"
OUTBOX_SEQ = b"meta/outbox_seq/"
DEPLOYMENT = b"dp/"


def log(lsn: int) -> bytes:
    return b"log/%016x" % lsn


def invocation(invocation_id: str) -> bytes:
    return INVOCATION + invocation_id.encode()


def journal(invocation_id: str, index: int) -> bytes:
    return b"j/%s/%08x" % (invocation_id.encode(), index)


def completion(invocation_id: str, index: int) -> bytes:
    return b"cm/%s/%08x" % (invocation_id.encode(), index)


def completion_prefix(invocation_id: str) -> bytes:
    return b"cm/%s/" % invocation_id.encode()


def active(invocation_id: str) -> bytes:
    return ACTIVE + invocation_id.encode()


def object_key(service: str, key: str) -> bytes:
    """Service and key joined by NUL, which neither may contain."""
    return f"{service}\x00{key}".encode()  # one encode: twice as fast as bytes formatting


# A lock and state key are made for each Kafka record, several times: formatted in one step.
def object_lock(service: str, key: str) -> bytes:
    return f"vo/{service}\x00{key}".encode()


def state(service: str, key: str) -> bytes:
    return f"s/{service}\x00{key}".encode()


def promises(workflow: str, key: str) -> bytes:
    return PROMISES + object_key(workflow, key)


def deployment(deployment_id: str) -> bytes:
    return DEPLOYMENT + deployment_id.encode()


def timer(due_ms: int, seq: int) -> bytes:
    return b"tm/%016x/%016x" % (due_ms, seq)


def timer_due(timer_key: bytes) -> int:
    return int(timer_key[3:19], 16)


def subscription(subscription_id: str) -> bytes:
    return SUBSCRIPTION + subscription_id.encode()


def kafka_offset(group: str, topic: str, partition: int) -> bytes:
    """The highest applied offset of one partition, for the subscription with this group."""
    return f"ko/{group}\x00{topic}\x00{partition}".encode()


def kafka_cluster(name: str) -> bytes:
    return KAFKA_CLUSTER + name.encode()


def outbox_prefix(cluster: str) -> bytes:
    return b"ob/%s\x00" % cluster.encode()


def outbox(cluster: str, seq: int) -> bytes:
    return f"ob/{cluster}\x00{seq:016x}".encode()  # one per emitted record: formatted in one step


def outbox_seq(cluster: str) -> bytes:
    """The sequence number of the last entry put in a cluster's outbox."""
    return OUTBOX_SEQ + cluster.encode()


def outbox_trimmed(cluster: str) -> bytes:
    """The sequence number up to which a cluster's outbox was shipped and deleted."""
    return b"meta/outbox_trimmed/" + cluster.encode()


def prefix_end(prefix: bytes) -> bytes:
    """The first key after every key that starts with `prefix`."""
    return prefix[:-1] + bytes([prefix[-1] + 1])
