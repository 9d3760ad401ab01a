"""Where signals (awakeables, cancellation) land in an invocation's completions.

The protocol addresses a completion of a command by its completion id, and a signal by its
signal index (1 = cancel, awakeables from 17). The journal keys completions by journal index,
so a signal gets a slot of its own above every journal index: `SIGNAL_BASE + signal index`.
A named signal's slot is derived from its name (`named_signal_slot`, above every indexed
one), so an attempt can say which slot a suspension waits on before the signal exists; the
name itself is stored with the completion, for the notification that replays it.
Awakeable ids say which space they address: ``sign_1…`` carries a signal index, the legacy
``prom_1…`` (minted by Headway's in-process SDK) a journal index.
"""

from __future__ import annotations

from headway.sdk import ids

SIGNAL_BASE = 1 << 31
NAMED_SIGNAL_BASE = 1 << 33  # above SIGNAL_BASE + every uint32 signal index
CANCEL_SIGNAL = 1


def signal_slot(signal_index: int) -> int:
    return SIGNAL_BASE + signal_index


def is_signal_slot(index: int) -> bool:
    return index >= SIGNAL_BASE


def named_signal_slot(name: str) -> int:
    """The slot of the signal called `name`: a 62-bit hash, so collisions are not a concern."""
    return NAMED_SIGNAL_BASE + (ids.xxh3_64(name.encode()) >> 2)


def is_named_signal_slot(index: int) -> bool:
    return index >= NAMED_SIGNAL_BASE


def awakeable_slot(awakeable_id: str) -> tuple[str, int]:
    """(owning invocation id, completion slot) of an awakeable id; ValueError if malformed."""
    owner, index = ids.parse_awakeable_id(awakeable_id)
    if awakeable_id.startswith(ids.SIGNAL_PREFIX + "_"):
        if index < ids.FIRST_SIGNAL_INDEX:
            raise ValueError(
                f"invalid id {awakeable_id!r}: signal index {index} is reserved (below "
                f"{ids.FIRST_SIGNAL_INDEX})"
            )
        return str(owner), signal_slot(index)
    return str(owner), index
