"""Resident memory per point of a gateway core holding ``N`` points with every rule kind:
(RSS after building the config, the engine and running a few batches − RSS before) / N.

    python -m bench.memory 100000   → bytes per point on stdout
"""

from __future__ import annotations

import asyncio
import gc
import sys

import numpy as np

from alerting.batch import ReadingBatch
from bench.workload import synthetic_site, values
from gateway.core import Core
from gateway.influx import NullSink
from gateway.writer import BatchingWriter


def rss_bytes() -> int:
    """Resident set size of this process."""
    with open("/proc/self/statm") as f:
        pages = int(f.read().split()[1])
    import os
    return pages * os.sysconf("SC_PAGE_SIZE")


async def main_async(n: int) -> float:
    """Bytes per point."""
    before = rss_bytes()
    site = synthetic_site(n)
    async with BatchingWriter(NullSink()) as writer:
        core = Core(site, writer)
        # The core runs on the compiled plant: the service drops the config model after
        # start-up, as hazgw run does.
        del site
        gc.collect()
        rng = np.random.default_rng(5)
        pts = np.arange(n, dtype=np.int32)
        for c in range(20):
            await core.process(ReadingBatch(pts, np.full(n, 1_790_000_000_000 + c * 1000),
                                            values(rng, n), np.zeros(n, np.uint8)))
        after = rss_bytes()
    return (after - before) / n


if __name__ == "__main__":
    print(f"{asyncio.run(main_async(int(sys.argv[1]))):.0f}")
