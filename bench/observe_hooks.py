"""What tracing's per-invocation hooks cost an unsampled invocation, alone, in one process.

Runs, for `-n` invocations at a 1 % sample ratio, what the engine runs for each one whose
trace is not sampled: the attempt's start and end, and the completion's check in committed
batches of 16 (spans go to a sink that keeps nothing). Prints the best of `--repeat` timings
per invocation. Under callgrind, the instructions per invocation are the difference between a
run and one with `--skip` (which sets up the same data and runs nothing), divided by `-n`:

    valgrind --tool=callgrind python bench/observe_hooks.py -n 20000 --repeat 1 [--skip]
"""

from __future__ import annotations

import argparse
import time

from headway.engine import keys
from headway.engine.commit_record import CommittedBatch
from headway.engine.spans import AttemptFinished, InvocationFinished
from headway.engine.store import StoreView
from headway.engine.tracing import Tracing
from headway.sdk.journal import Target

TARGET = Target("Counter", "add", "k")
BATCH = 16


class _Discard:
    def attempt_finished(self, fact: AttemptFinished) -> None:
        pass

    def invocations_finished(self, facts: list[InvocationFinished]) -> None:
        pass

    def shutdown(self) -> None:
        pass


def batches(invocation_ids: list[str]) -> list[CommittedBatch]:
    """Batches of `BATCH` invocations, each created and completed with a value."""
    made = []
    for start in range(0, len(invocation_ids), BATCH):
        view = StoreView({})
        finished = []
        for invocation_id in invocation_ids[start : start + BATCH]:
            status = {
                "st": "completed", "h": {}, "t": TARGET.encode(), "ca": 1, "ma": 2, "rc": 0,
                "o": [0, b"1"],
            }  # fmt: skip
            view.put(keys.invocation(invocation_id), status)
            finished.append((invocation_id, status))
        made.append(
            CommittedBatch(entries=BATCH, fsync_seconds=0.0, now_ms=2, view=view, finished=finished)
        )
    return made


def run(invocation_ids: list[str], committed: list[CommittedBatch]) -> float:
    """Seconds for every invocation's hooks, on a fresh `Tracing` (nothing kept yet)."""
    tracing = Tracing(_Discard(), sample_ratio=0.01)
    started = time.perf_counter()
    for number, batch in enumerate(committed):
        for invocation_id in invocation_ids[number * BATCH : (number + 1) * BATCH]:
            span = tracing.attempt_started(invocation_id, {}, 1)
            tracing.attempt_ended(span, invocation_id, {}, TARGET, 1, None)
        tracing.batch_committed(batch)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--invocations", "-n", type=int, default=20_000)
    parser.add_argument("--repeat", type=int, default=7, help="timings, best kept (7)")
    parser.add_argument("--skip", action="store_true", help="set up only (callgrind baseline)")
    args = parser.parse_args()
    invocation_ids = [f"inv_1{i:026d}" for i in range(args.invocations)]
    committed = batches(invocation_ids)
    if args.skip:
        return
    best = min(run(invocation_ids, committed) for _ in range(args.repeat))
    print(f"{1e6 * best / args.invocations:.2f} µs per unsampled invocation")


if __name__ == "__main__":
    main()
