"""Group commit over a real RocksDB store: one bad entry must not drop its batch-mates."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from headway.engine import keys
from headway.engine.actions import Action, RunAttempt
from headway.engine.committer import Committer
from headway.engine.entries import Invoke, decode_entry
from headway.engine.processor import Processor
from headway.engine.registry import Registry
from headway.engine.store import Store
from headway.sdk import Context, Service
from headway.sdk.ids import new_invocation_id
from headway.sdk.journal import Target

echo = Service("Echo")


@echo.handler()
async def say(ctx: Context, text: str) -> str:
    """Never run here: the committer only needs a known target."""
    return text


def _invoke(headers: dict[str, str]) -> Invoke:
    return Invoke(new_invocation_id(1), Target("Echo", "say"), b'"hi"', headers)


async def test_an_unencodable_entry_fails_alone(tmp_path: Path) -> None:
    """A batch holding an entry msgpack cannot encode (a lone surrogate in a header, as aiohttp
    hands over non-UTF-8 header bytes) is split: the good entries, waited for or not, are
    written and their actions run; only the bad entry's submitter sees the error."""
    store = Store(tmp_path)
    actions: list[Action] = []
    committer = Committer(store, Processor(Registry([echo])), actions.extend)
    good, unwaited, bad = _invoke({}), _invoke({"x": "ok"}), _invoke({"x": "caf\udce9"})
    # Queued before the loop runs, so all three land in one batch.
    good_done = committer.submit(good)
    bad_done = committer.submit(bad)
    committer.submit_nowait(unwaited)
    committer.start()
    try:
        await asyncio.wait_for(good_done, 5)
        with pytest.raises(UnicodeEncodeError):
            await asyncio.wait_for(bad_done, 5)
        while committer._queue or len(actions) < 2:
            await asyncio.sleep(0.01)
    finally:
        await committer.stop()
    assert store.get(keys.invocation(good.invocation_id))["st"] == "running"
    assert store.get(keys.invocation(unwaited.invocation_id))["st"] == "running"
    assert store.get(keys.invocation(bad.invocation_id)) is None
    assert actions == [RunAttempt(good.invocation_id), RunAttempt(unwaited.invocation_id)]
    # Log positions stay dense: the failed batch's positions were given back.
    assert committer.lsn == store.get(keys.APPLIED) == 2
    assert [k for k, _ in store.scan(keys.LOG)] == [keys.log(1), keys.log(2)]
    store.close()


async def test_a_group_commit_logs_its_entries_as_one_record_batch(tmp_path: Path) -> None:
    """The log holds one record per group commit, under the position of its first entry: the
    entries in order, each decodable as it was submitted; the next batch starts after them."""
    store = Store(tmp_path)
    committer = Committer(store, Processor(Registry([echo])), lambda actions: None)
    first = [_invoke({"n": str(n)}) for n in range(3)]
    waits = [committer.submit(entry) for entry in first]  # queued together: one batch
    committer.start()
    try:
        await asyncio.wait_for(asyncio.gather(*waits), 5)
        second = _invoke({"n": "3"})
        await asyncio.wait_for(committer.submit(second), 5)
    finally:
        await committer.stop()
    logged = list(store.scan(keys.LOG))
    assert [key for key, _ in logged] == [keys.log(1), keys.log(4)]
    assert [[decode_entry(raw) for raw in record[1]] for _, record in logged] == [first, [second]]
    assert committer.lsn == store.get(keys.APPLIED) == 4
    store.close()
