"""Fills a data directory with N completed `Counter/add` invocations, through the engine's own
group commit and processor (no HTTP, no handler execution), for the recovery benchmark.

For each invocation it submits exactly the log entries the engine writes when the real
`Counter.add` handler runs: `Invoke` (takes the key's lock, status running), `Append GetState`,
`Append SetState`, `End` (status completed with the result, lock released, a retention timer
24 h out). They go through `Committer` -> `Processor` -> one fsynced RocksDB write batch per
group of `--batch` entries, so the store holds what a long-running engine would hold: N
invocation statuses with their journals, per-key state, N retention timers, the tail of the
log. With `--no-journal` only `Invoke` + `End` are written (faster, smaller store).

Runtime: about 35-40 µs per entry on this kind of machine (4 entries per invocation), so
roughly 2.5 min for 1,000,000 invocations, plus a key count at the end (`--verify`).

    python bench/build_history.py /tmp/hist --history 1000000
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from pathlib import Path

from headway.engine import keys
from headway.engine.committer import Committer
from headway.engine.entries import Append, End, Invoke
from headway.engine.processor import Processor
from headway.engine.registry import Registry
from headway.engine.store import Store
from headway.sdk import ids
from headway.sdk.journal import GetState, Outcome, SetState, Target

sys.path.insert(0, str(Path(__file__).resolve().parent))
import apps


async def build(data_dir: Path, history: int, keys_count: int, batch: int, journal: bool) -> None:
    store = Store(data_dir)
    committer = Committer(
        store, Processor(Registry(apps.app)), lambda actions: None, max_batch=batch
    )
    committer.start()
    totals = [0] * keys_count
    chunk = max(batch // 4, 1) * 16
    started = time.perf_counter()
    last_report = started
    done = 0
    try:
        while done < history:
            last = None
            for n in range(done, min(done + chunk, history)):
                k = n % keys_count
                key = f"k{k}"
                inv = ids.new_invocation_id(ids.partition_key_for("Counter", key))
                committer.submit_nowait(Invoke(inv, Target("Counter", "add", key), b"1", {}))
                before = totals[k]
                totals[k] += 1
                if journal:
                    old = str(before).encode() if before else None
                    committer.submit_nowait(Append(inv, 1, 0, GetState("total", old)))
                    committer.submit_nowait(
                        Append(inv, 1, 1, SetState("total", str(totals[k]).encode()))
                    )
                last = committer.submit(End(inv, 1, Outcome.ok(str(totals[k]).encode())))
            assert last is not None
            await last
            done = min(done + chunk, history)
            now = time.perf_counter()
            if now - last_report >= 5 or done == history:
                last_report = now
                rate = done / (now - started)
                print(
                    f"build_history: {done:,}/{history:,} invocations "
                    f"({rate:,.0f}/s, {committer.batches} commits)",
                    file=sys.stderr, flush=True,
                )  # fmt: skip
    finally:
        await committer.stop()
        store.close()


def count(data_dir: Path) -> dict[str, int]:
    """Counts completed invocation statuses, retention timers and active ones, by scanning."""
    store = Store(data_dir)
    try:
        completed = timers = active = 0
        for _, status in store.scan(keys.INVOCATION):
            completed += status["st"] == "completed"
        it = store.db.iter()
        it.seek(keys.TIMER)
        while it.valid() and it.key().startswith(keys.TIMER):
            timers += 1
            it.next()
        it = store.db.iter()
        it.seek(keys.ACTIVE)
        while it.valid() and it.key().startswith(keys.ACTIVE):
            active += 1
            it.next()
        return {"completed": completed, "timers": timers, "active": active}
    finally:
        store.close()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description="Fill DATA_DIR with N completed Counter/add invocations through the "
        "engine's committer and processor (fsync per batch). ~2.5 min per million.",
    )
    parser.add_argument("data_dir", type=Path, help="the engine's --data-dir (created)")
    parser.add_argument("--history", type=int, default=1_000_000, help="invocations (1000000)")
    parser.add_argument("--keys", type=int, default=1000, help="Counter keys used (1000)")
    parser.add_argument("--batch", type=int, default=8192, help="entries per commit (8192)")
    parser.add_argument("--no-journal", action="store_true", help="only Invoke + End entries")
    parser.add_argument("--verify", action="store_true", help="count what the store holds")
    args = parser.parse_args(argv)
    started = time.perf_counter()
    asyncio.run(build(args.data_dir, args.history, args.keys, args.batch, not args.no_journal))
    built = time.perf_counter() - started
    result: dict[str, float | int] = {"history": args.history, "build_seconds": round(built, 1)}
    if args.verify:
        result.update(count(args.data_dir))
    print(json.dumps(result))


if __name__ == "__main__":
    main()
