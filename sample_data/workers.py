"""Running groups of shards, in this process or one worker process per group.

A group steps its shards in lockstep (month 0 of each, then month 1, ...) and reports each
step's parts as soon as it is done, so the assembler can append a step once every group has
reported it and the part files on disk stay a step or two deep. Workers are started with
`spawn` (no state inherited from the parent) and rebuild the practice from the settings,
which the seed makes identical.
"""

from __future__ import annotations

import gc
import multiprocessing
import queue as queues
import traceback
from collections import Counter, defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

from sample_data.location_shard import LocationShard
from sample_data.parts import PartInfo
from sample_data.phone_shard import PhoneShard
from sample_data.practice import Params, Practice, build_practice
from sample_data.shards import Shard, ShardResult, ShardSpec

StepReport = Callable[[int, dict[int, dict[str, PartInfo]]], None]  # (step, shard -> its parts)
POLL_SECONDS = 1.0


def make_shard(practice: Practice, spec: ShardSpec, parts: Path) -> Shard:
    if spec.kind == "phones":
        return PhoneShard(practice, spec.index, parts)
    return LocationShard(practice, spec.location, spec.index, parts)


def run_group(practice: Practice, parts: Path, group: list[ShardSpec], report: StepReport) -> dict[int, ShardResult]:
    """Step every shard of `group` through the run, reporting after each step; return their results.

    The cyclic garbage collector is paused meanwhile: the simulator's records form no reference
    cycles (refcounting frees them; a test checks it), yet with millions of live objects at
    scale the collector's passes cost a tenth of the run.
    """
    shards = [(spec.index, make_shard(practice, spec, parts)) for spec in group]
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        for k in range(practice.params.months + 1):
            report(k, {index: shard.step(k) for index, shard in shards})
    finally:
        if was_enabled:
            gc.enable()
    return {index: shard.result for index, shard in shards}


def run(practice: Practice, parts: Path, groups: list[list[ShardSpec]], report: StepReport) -> dict[int, ShardResult]:
    """Run the groups (one in this process, several in worker processes) and return every shard's result.

    `report` is called in this process for each step, in order, once all groups have done it.
    """
    if len(groups) == 1:
        return run_group(practice, parts, groups[0], report)
    context = multiprocessing.get_context("spawn")
    inbox: Any = context.Queue()
    processes = [
        context.Process(target=_worker, args=(practice.params, parts, group, inbox), daemon=True) for group in groups
    ]
    for process in processes:
        process.start()
    try:
        return _collect(inbox, processes, practice.params.months + 1, report)
    finally:
        for process in processes:
            if process.is_alive():
                process.terminate()
            process.join()


def _worker(params: Params, parts: Path, group: list[ShardSpec], outbox: Any) -> None:
    try:
        practice = build_practice(params)
        results = run_group(practice, parts, group, lambda k, done: outbox.put(("step", k, done)))
        outbox.put(("done", results))
    except BaseException:  # noqa: BLE001 - every failure must reach the parent, which re-raises it
        outbox.put(("error", traceback.format_exc()))


def _collect(inbox: Any, processes: list[Any], steps: int, report: StepReport) -> dict[int, ShardResult]:
    received: defaultdict[int, dict[int, dict[str, PartInfo]]] = defaultdict(dict)
    reported: Counter[int] = Counter()
    results: dict[int, ShardResult] = {}
    next_step = finished = 0
    while finished < len(processes):
        try:
            message = inbox.get(timeout=POLL_SECONDS)
        except queues.Empty:
            dead = [p.exitcode for p in processes if p.exitcode not in (None, 0)]
            if dead:
                raise RuntimeError(f"a simulation worker stopped unexpectedly (exit code {dead[0]})") from None
            continue
        if message[0] == "step":
            _, k, done = message
            received[k].update(done)
            reported[k] += 1
            while next_step < steps and reported[next_step] == len(processes):
                report(next_step, received.pop(next_step))
                next_step += 1
        elif message[0] == "done":
            results.update(message[1])
            finished += 1
        else:
            raise RuntimeError(f"a simulation worker failed:\n{message[1]}")
    return results
