"""Validation of an express run when its entry is applied: did the handler see the state as it
is now?

The express lane runs a Kafka record's handler before the record is logged, against the state
it could read then. Its journal records every read with the value it got. Replaying that
journal over the key's state as it is when the entry is applied tells whether every read would
return the same value now; if so, the handler (which sees nothing but its input and those
reads) would do exactly what it did, and its writes and emits apply as recorded. This is
optimistic concurrency control validated by value. Pure: a dict and commands in, a verdict out.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TypeGuard

from headway.sdk.definitions import Handler
from headway.sdk.journal import (
    ClearAllState,
    ClearState,
    Command,
    Emit,
    GetState,
    SetState,
    StateKeys,
)

from .registry import ServiceInfo

# The commands an express run may issue; any other one sends the record the durable way.
EXPRESS_COMMANDS = (GetState, StateKeys, SetState, ClearState, ClearAllState, Emit)


def runs_ahead(found: tuple[ServiceInfo, Handler] | None) -> TypeGuard[tuple[ServiceInfo, Handler]]:
    """Whether a handler's invocations may run ahead of the log: in-process, not a workflow's
    run (which must run once per workflow id)."""
    return found is not None and found[0].deployment is None and found[1].kind != "workflow"


def replay_reads(
    state: dict[str, bytes], journal: Iterable[Command]
) -> tuple[dict[str, bytes], list[Emit]] | None:
    """The state after the run and its emits, in order; None if a read saw something else."""
    working = dict(state)
    emits: list[Emit] = []
    for command in journal:
        if isinstance(command, GetState):
            if working.get(command.name) != command.value:
                return None
        elif isinstance(command, StateKeys):
            if sorted(working) != list(command.keys):
                return None
        elif isinstance(command, SetState):
            working[command.name] = command.value
        elif isinstance(command, ClearState):
            working.pop(command.name, None)
        elif isinstance(command, ClearAllState):
            working.clear()
        elif isinstance(command, Emit):
            emits.append(command)
        else:
            return None
    return working, emits
