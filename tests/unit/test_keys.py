"""The store's key layout is on disk: the hot-path key makers must produce exactly it."""

from __future__ import annotations

import pytest
from headway.engine import keys


@pytest.mark.parametrize("service, key", [("Counts", "k1"), ("Cart", "ünïcode/ключ"), ("S", "")])
def test_object_keys_join_service_and_key_with_nul_under_their_prefix(
    service: str, key: str
) -> None:
    joined = service.encode() + b"\x00" + key.encode()
    assert keys.object_key(service, key) == joined
    assert keys.object_lock(service, key) == keys.OBJECT_LOCK + joined
    assert keys.state(service, key) == keys.STATE + joined
    assert keys.promises(service, key) == keys.PROMISES + joined


def test_a_kafka_offset_key_names_group_topic_and_partition() -> None:
    assert keys.kafka_offset("grp", "clicks", 12) == b"ko/grp\x00clicks\x0012"
    assert keys.kafka_offset("g", "ü", 0) == b"ko/g\x00" + "ü".encode() + b"\x000"


@pytest.mark.parametrize("cluster", ["local", "", "ünï"])
def test_outbox_keys_sort_by_sequence_under_their_cluster_prefix(cluster: str) -> None:
    prefix = keys.outbox_prefix(cluster)
    assert prefix == keys.OUTBOX + cluster.encode() + b"\x00"
    assert keys.outbox(cluster, 255) == prefix + b"00000000000000ff"
    made = [keys.outbox(cluster, seq) for seq in (1, 9, 10, 255, 4096, 2**40)]
    assert made == sorted(made) and all(key.startswith(prefix) for key in made)
