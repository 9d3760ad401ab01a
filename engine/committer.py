"""Group commit: the one place that orders durable writes on the embedded log.

Entries from every source (ingress, invoker, timers) queue here. Each batch:

1. Take every queued entry (up to `max_batch`).
2. Stamp the batch with one timestamp and consecutive log positions, and apply each entry with
   the processor over an in-memory view; follow-up entries the processor produces (a call's
   invocation, a result for a caller) join the same batch.
3. Write one RocksDB batch: the log record (the batch's entries, in order, under the first
   one's position: a record batch, as in Kafka's log, so the log costs one key per commit and
   not one per entry), every store change, and the applied position; fsync it. Then update
   the committed-read copy (`reads`) with the batch's changes to object locks and state, and
   hand observers (metrics, traces) the batch's before and after values (`on_commit`); they
   only count, and a failing observer is logged, not retried.
4. Resolve the submitters' futures (the entries are durable), then run the actions in order.

If step 2 or 3 fails (an entry the log cannot encode, a processor error, a write error),
nothing was written: the entries are committed again one at a time, so a bad entry fails its
own submitter only and its batch-mates still land.

If we crash before step 3 completes, nothing of the batch exists and nobody was told: HTTP
clients see a dropped connection and retry, attempts re-run from their journal. If we crash
after step 3, everything of the batch is durable; the actions are re-derived on recovery from
the store (active invocations are re-run, timers rescanned). Because the log records and their
effects share one write batch, the applied position always equals the end of the log here.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable

from rocksdict import WriteBatch

from . import keys
from .actions import Action
from .commit_record import CommittedBatch, FirstReads
from .entries import Entry
from .hot_reads import HELD_PREFIXES, HotReads
from .processor import Effects, Processor
from .store import Store, StoreView, pack, pack_array

log = logging.getLogger("headway.commit")


class Committer:
    """Batches entries into atomic, fsynced writes and runs the resulting actions."""

    def __init__(
        self,
        store: Store,
        processor: Processor,
        on_actions: Callable[[list[Action]], None],
        *,
        max_batch: int = 4096,
        keep_log: int = 100_000,
    ) -> None:
        self.store = store
        # The committed object locks and state, for the processor and the express lanes.
        self.reads = HotReads(store)
        self.processor = processor
        self.on_actions = on_actions
        self.max_batch = max_batch
        self.keep_log = keep_log
        self.lsn: int = store.get(keys.APPLIED) or 0
        self._queue: list[tuple[Entry, asyncio.Future[None] | None]] = []
        self._wakeup = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self.batches = 0
        self.entries = 0
        self.fsync_seconds = 0.0
        self.on_commit: Callable[[CommittedBatch], None] | None = None
        # Submitted entries are numbered 1, 2, ...; those up to `settled` are written (or
        # failed): the store shows their effects.
        self.submitted = 0
        self.settled = 0

    def submit(self, entry: Entry) -> asyncio.Future[None]:
        """Queues an entry; the future resolves once it is durable."""
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._queue.append((entry, fut))
        self.submitted += 1
        self._wakeup.set()
        return fut

    def submit_nowait(self, entry: Entry) -> int:
        """Queues an entry whose durability nobody waits for (it is still ordered); returns its
        number, which `settled` reaches once the entry is written."""
        self._queue.append((entry, None))
        self.submitted += 1
        self._wakeup.set()
        return self.submitted

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._loop(), name="group-commit")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _loop(self) -> None:
        while True:
            await self._wakeup.wait()
            self._wakeup.clear()
            while self._queue:
                taken = self._queue[: self.max_batch]
                del self._queue[: self.max_batch]
                await self._commit_or_split(taken)

    async def _commit_or_split(
        self, taken: list[tuple[Entry, asyncio.Future[None] | None]]
    ) -> None:
        """Commits `taken`; if that fails, commits its entries one at a time instead, so that an
        entry the log cannot hold (or the processor cannot apply) fails alone and does not drop
        its batch-mates, some of which (attempt ends, run results, timers) nobody would resend.
        """
        lsn = self.lsn
        try:
            effects = await self._commit(taken)
        except Exception as e:  # nothing was written and nobody was told
            self.lsn = lsn
            if len(taken) > 1:
                log.warning("group commit of %d entries failed (%s: %s); committing them one "
                            "at a time", len(taken), type(e).__name__, e)  # fmt: skip
                for item in taken:
                    await self._commit_or_split([item])
                return
            entry, fut = taken[0]
            log.exception("a %s entry could not be committed and was dropped", type(entry).__name__)
            self.settled += 1
            if fut is not None and not fut.done():
                fut.set_exception(e)
            return
        self.settled += len(taken)
        for _, fut in taken:
            if fut is not None and not fut.done():
                fut.set_result(None)
        try:
            self.on_actions(effects.actions)
        except Exception:  # the batch is durable: recovery re-derives what did not run
            log.exception("running the actions of a committed batch failed")

    async def _commit(self, taken: list[tuple[Entry, asyncio.Future[None] | None]]) -> Effects:
        """Applies and durably writes one batch; returns its effects (actions not yet run)."""
        now_ms = int(time.time() * 1000)
        reads = FirstReads(self.reads) if self.on_commit is not None else None
        view = StoreView(reads or self.reads)
        effects = Effects()
        batch = WriteBatch(raw_mode=True)
        first_lsn = self.lsn + 1
        logged: list[bytes] = []
        for entry, _ in taken:
            self._apply(entry, view, now_ms, effects, logged)
            while effects.entries:
                self._apply(effects.entries.popleft(), view, now_ms, effects, logged)
        batch.put(keys.log(first_lsn), pack_array([pack(now_ms), pack_array(logged)]))
        held_changes = view.to_batch(batch, HELD_PREFIXES)
        batch.put(keys.APPLIED, pack(self.lsn))
        if self.keep_log and first_lsn > self.keep_log and first_lsn % 1024 < len(taken):
            batch.delete_range(keys.LOG, keys.log(first_lsn - self.keep_log))
        started = time.perf_counter()
        await asyncio.to_thread(self.store.write, batch)
        fsync_seconds = time.perf_counter() - started
        self.reads.committed(held_changes)
        self.fsync_seconds += fsync_seconds
        self.batches += 1
        self.entries += self.lsn - first_lsn + 1
        if self.on_commit is not None and reads is not None:
            record = CommittedBatch(
                self.lsn - first_lsn + 1, fsync_seconds, now_ms, view, reads.statuses,
                reads.queues, effects.expressed, effects.finished,
            )  # fmt: skip
            try:
                self.on_commit(record)
            except Exception:  # observers count; they must never fail a durable batch
                log.exception("a commit observer failed")
        return effects

    def _apply(
        self, entry: Entry, view: StoreView, now_ms: int, effects: Effects, logged: list[bytes]
    ) -> None:
        self.lsn += 1
        logged.append(pack(entry.encode()))
        self.processor.apply(entry, view, now_ms, effects)
