"""`frozen`: immutable records that cost no more to make than mutable ones.

`dataclass(frozen=True)` sets every field through `object.__setattr__` in `__init__`, which
made journal commands, log entries and actions several times dearer to create than plain
slotted dataclasses. The Kafka pipeline creates several of them per record: with them frozen
at run time they took a tenth of its per-record instructions. Classes decorated here are
slotted, hashable dataclasses that type checkers treat as frozen (PEP 681's
`frozen_default`): assigning to a field is an error under mypy, which checks this code, rather
than at run time.
"""

from __future__ import annotations

import dataclasses
from typing import TypeVar

from typing_extensions import dataclass_transform

T = TypeVar("T")


@dataclass_transform(frozen_default=True, field_specifiers=(dataclasses.field,))
def frozen(cls: type[T]) -> type[T]:
    """A slotted dataclass, hashed and compared by its fields, frozen to type checkers."""
    return dataclasses.dataclass(slots=True, unsafe_hash=True)(cls)
