"""What state a remote attempt sends up front: the rest the SDK reads with lazy commands."""

from __future__ import annotations

from headway.engine.deployments.attempt import eager_state
from headway.sdk.protocol import messages as m


def test_eager_state_is_sent_in_key_order_while_it_fits() -> None:
    state = {"b": b"22", "a": b"1", "c": b"333"}
    every = [m.StateEntry(b"a", b"1"), m.StateEntry(b"b", b"22"), m.StateEntry(b"c", b"333")]
    assert eager_state(state, 100) == (every, False)
    assert eager_state(state, 9) == (every, False)  # keys and values: exactly 9 bytes
    assert eager_state(state, 8) == (every[:2], True)
    assert eager_state(state, 4) == (every[:1], True)
    assert eager_state(state, 0) == ([], True)
    assert eager_state({}, 0) == ([], False)
