"""`frozen` records behave as the frozen dataclasses they stand in for, except at run time."""

from __future__ import annotations

import dataclasses

import pytest
from headway.engine.entries import Invoke
from headway.sdk.journal import Emit, Target


def test_records_compare_and_hash_by_their_fields() -> None:
    assert Target("Counter", "add", "k") == Target("Counter", "add", "k")
    assert Target("Counter", "add", "k") != Target("Counter", "add", "j")
    assert len({Target("Counter", "add", "k"), Target("Counter", "add", "k")}) == 1
    with pytest.raises(TypeError):  # as with frozen dataclasses: a dict field is unhashable
        hash(Emit("t", b"v", None, {}, None))


def test_records_are_slotted_dataclasses_that_replace_copies() -> None:
    target = Target("Counter", "add", "k")
    invoke = Invoke("inv_1", target, b"1", {"h": "v"})
    assert not hasattr(target, "__dict__")
    assert [f.name for f in dataclasses.fields(Target)] == ["service", "handler", "key"]
    moved = dataclasses.replace(invoke, target=dataclasses.replace(target, key="j"))
    assert moved.target.key == "j" and invoke.target.key == "k"
    assert moved.headers is invoke.headers and moved.input == b"1"
