"""Does a synced RocksDB write (rocksdict) hold the GIL? Prints the evidence.

A worker thread does `--writes` small synced write batches (like the committer's, through
`asyncio.to_thread`), with a pause between them, while the main thread spins and records every
stall longer than 0.1 ms. If the write released the GIL, the main thread would keep running
during the fsync (stalls near zero); if it holds the GIL, the main thread's stalls match the
write's duration. Also shows the same with `sync=False` (no fsync) for comparison, and one
large synced write (`--large` entries), where the verdict does not depend on a quiet machine:
the main thread is stalled for (nearly) the whole write if the GIL is held.

Runtime: a few seconds.  python bench/gil_probe.py
"""

from __future__ import annotations

import argparse
import tempfile
import threading
import time

from rocksdict import Options, Rdict, WriteBatch, WriteOptions


def probe(db: Rdict, sync: bool, writes: int, entries: int) -> tuple[list[float], list[float]]:
    options = WriteOptions()
    options.sync = sync
    durations: list[float] = []
    done = threading.Event()

    def writer() -> None:
        for i in range(writes):
            batch = WriteBatch(raw_mode=True)
            for j in range(entries):
                batch.put(b"k%d-%d-%d" % (sync, i, j), b"x" * 100)
            started = time.perf_counter()
            db.write(batch, options)
            durations.append(time.perf_counter() - started)
            time.sleep(0.003)
        done.set()

    stalls: list[float] = []
    thread = threading.Thread(target=writer)
    thread.start()
    last = time.perf_counter()
    while not done.is_set():
        now = time.perf_counter()
        if now - last > 0.0001:
            stalls.append(now - last)
        last = now
    thread.join()
    return sorted(durations), sorted(stalls)


def large_write(db: Rdict, entries: int) -> tuple[float, float]:
    """One synced write of `entries` entries in a thread: (its duration, main-thread stall)."""
    options = WriteOptions()
    options.sync = True
    batch = WriteBatch(raw_mode=True)
    for i in range(entries):
        batch.put(b"large-%08d" % i, b"x" * 100)
    took: list[float] = []

    def write() -> None:
        started = time.perf_counter()
        db.write(batch, options)
        took.append(time.perf_counter() - started)

    thread = threading.Thread(target=write)
    stalled = 0.0
    last = time.perf_counter()
    thread.start()
    while thread.is_alive():
        now = time.perf_counter()
        if now - last > 0.001:
            stalled += now - last
        last = now
    thread.join()
    return took[0], stalled


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description="Shows whether a synced rocksdict write holds the GIL (a few seconds)."
    )
    parser.add_argument("--writes", type=int, default=200, help="write batches (200)")
    parser.add_argument("--entries", type=int, default=20, help="entries per batch (20)")
    parser.add_argument("--large", type=int, default=200_000, help="entries of the large write")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        options = Options(raw_mode=True)
        options.create_if_missing(True)
        db = Rdict(f"{tmp}/store", options)
        try:
            for sync in (True, False):
                durations, stalls = probe(db, sync, args.writes, args.entries)
                p50 = durations[len(durations) // 2] * 1e3
                s50 = stalls[len(stalls) // 2] * 1e3 if stalls else 0.0
                print(
                    f"sync={sync!s:5}: write p50 {p50:.3f} ms; main thread stalled "
                    f"{len(stalls)} times > 0.1 ms, p50 {s50:.3f} ms, "
                    f"total {sum(stalls) * 1e3:.0f} ms vs {sum(durations) * 1e3:.0f} ms writing"
                )
            took, stalled = large_write(db, args.large)
            print(
                f"one synced write of {args.large:,} entries took {took * 1e3:.0f} ms; the main "
                f"thread was stalled {stalled * 1e3:.0f} ms of it "
                f"({'GIL held' if stalled > took / 2 else 'GIL released'})"
            )
        finally:
            db.close()


if __name__ == "__main__":
    main()
