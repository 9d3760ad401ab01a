"""Durable timers: fire TimerFired entries when timers stored under `tm/` come due.

Only timers due within the next `window` are held in memory (a heap); the rest stay in RocksDB,
sorted by due time, and are loaded by a periodic scan. So a store holding millions of retention
timers costs nothing at start-up, and a timer that came due while the engine was down fires
on the first scan after restart.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import time
from collections.abc import Callable

from . import keys
from .entries import TimerFired
from .store import Store


class TimerService:
    """Loads due-soon timers and submits them when they come due."""

    def __init__(
        self, store: Store, submit: Callable[[TimerFired], object], window_ms: int = 60_000
    ) -> None:
        self.store = store
        self.submit = submit
        self.window_ms = window_ms
        self.horizon_ms = 0
        self.heap: list[tuple[int, bytes]] = []
        self.known: set[bytes] = set()
        self._changed = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._scan(int(time.time() * 1000))
        self._task = asyncio.get_running_loop().create_task(self._loop(), name="timers")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    @property
    def pending(self) -> int:
        return len(self.heap)

    def schedule(self, due_ms: int, timer_key: bytes) -> None:
        """A timer was just committed; hold it if it is due before the next scan."""
        if due_ms <= self.horizon_ms and timer_key not in self.known:
            heapq.heappush(self.heap, (due_ms, timer_key))
            self.known.add(timer_key)
            self._changed.set()

    def _scan(self, now_ms: int) -> None:
        self.horizon_ms = now_ms + self.window_ms
        end = keys.timer(self.horizon_ms, 0)
        for timer_key, _ in self.store.scan(keys.TIMER):
            if timer_key >= end:
                break
            if timer_key not in self.known:
                heapq.heappush(self.heap, (keys.timer_due(timer_key), timer_key))
                self.known.add(timer_key)

    async def _loop(self) -> None:
        next_scan = self.horizon_ms - self.window_ms // 2
        while True:
            now = int(time.time() * 1000)
            while self.heap and self.heap[0][0] <= now:
                _, timer_key = heapq.heappop(self.heap)
                self.known.discard(timer_key)
                self.submit(TimerFired(timer_key))
            if now >= next_scan:
                self._scan(now)
                next_scan = now + self.window_ms // 2
                continue
            wake = min(self.heap[0][0] if self.heap else next_scan, next_scan)
            self._changed.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), max(wake - now, 1) / 1000)
