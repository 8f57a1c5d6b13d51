"""Resident memory per point of a gateway core holding ``N`` points with every rule kind:
(RSS after compiling the config, building the engine and running a few batches − RSS before)
/ N.

    python -m bench.memory 100000   → bytes per point on stdout
"""

from __future__ import annotations

import asyncio
import gc
import sys

import numpy as np

from alerting.batch import ReadingBatch
from bench.workload import synthetic_site, values
from gateway.influx.targets import NullSink
from gateway.influx.writer import BatchingWriter
from gateway.stream.compiled import compile_in_child
from gateway.stream.core import Core
from gateway.stream.runtime import tune_allocator


def rss_bytes() -> int:
    """Resident set size of this process."""
    with open("/proc/self/statm") as f:
        pages = int(f.read().split()[1])
    import os
    return pages * os.sysconf("SC_PAGE_SIZE")


async def main_async(n: int) -> float:
    """Bytes per point."""
    tune_allocator()    # as running_core does at start-up
    before = rss_bytes()
    # as hazgw run does: the config is validated and compiled in a child process
    compiled = compile_in_child(synthetic_site, n)
    async with BatchingWriter(NullSink()) as writer:
        core = Core(compiled, writer)
        del compiled
        gc.collect()
        rng = np.random.default_rng(5)
        pts = np.arange(n, dtype=np.int32)
        for c in range(20):
            await core.process(ReadingBatch(pts, np.full(n, 1_790_000_000_000 + c * 1000),
                                            values(rng, n), np.zeros(n, np.uint8)))
            # as the running writer would: what was queued for the database is written
            await writer.flush()
        after = rss_bytes()
    return (after - before) / n


if __name__ == "__main__":
    print(f"{asyncio.run(main_async(int(sys.argv[1]))):.0f}")
