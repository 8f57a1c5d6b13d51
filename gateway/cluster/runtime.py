"""One instance of a partitioned deployment: the enterprises of the partitions it owns.

A deployment (``gateway.deployment``) is hashed into ``nats.partitions`` partitions by
enterprise code, as the NATS subject mapping hashes their subjects
(``edge.jetstream.partition_of``). Every ``cluster.lease_every_s`` the instance takes the
partitions its lease step gives it and gives up, drained, those another instance should
have (``gateway.cluster.lease``). An owned partition runs one gateway session per
enterprise in it (``gateway.app.gateway_session`` on the JetStream transport: its own
consumer, core, state, escalation); a partition given up is stopped like a clean stop
(what was taken is processed, written, saved and acknowledged), and only then released.

The state of an enterprise moves with its partition: it is saved under a name of the
enterprise alone (``<state dir>/<enterprise>-hazgw-<enterprise>.npz``), and the next owner
restores it and replays the enterprise's consumer from its ack floor: what the state has
seen is dropped as a duplicate, the rest evaluated from the state it found. The state
directory must therefore be shared by the instances (one machine, or a shared volume).

Losing the lease session (the database away) stops every partition at once, without
waiting to drain: another instance may own them already.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
from dataclasses import dataclass

from edge.jetstream import partition_of
from edge.supervise import describe, supervised
from gateway.app import Ingest, gateway_session
from gateway.cluster.lease import PartitionLeases
from gateway.deployment import Deployment
from gateway.settings import Settings
from gateway.stream.compiled import CompiledSite, as_compiled
from gateway.stream.core import Core
from gateway.stream.selfmetrics import snapshot, stats_line

log = logging.getLogger(__name__)



def partitions_of(dep: Deployment, partitions: int) -> dict[int, list[str]]:
    """The enterprise codes of each partition that holds any."""
    out: dict[int, list[str]] = {}
    for code in sorted(dep.sites):
        out.setdefault(partition_of(code, partitions), []).append(code)
    return out


def enterprise_settings(settings: Settings, code: str) -> Settings:
    """An enterprise's session settings: client ids and state name of the enterprise
    alone, so that the next owner finds its state and its outbox claims; a spool of its
    own (the instance's spool directory is the instance's: never shared)."""
    influx = settings.influx
    if influx.spool_dir is not None:
        # a spool per enterprise: the writers of one process would take each other's files
        influx = influx.model_copy(update={"spool_dir": influx.spool_dir / code})
    return settings.model_copy(update={
        "transport": "nats", "influx": influx,
        "mqtt": settings.mqtt.model_copy(update={"client_id": f"hazgw-{code}"})})


@dataclass
class Owned:
    """A partition this instance runs: its stop and its task."""

    stop: asyncio.Event
    task: asyncio.Task[None]


async def _run_partition(p: int, sites: list[CompiledSite], settings: Settings,
                         stop: asyncio.Event) -> None:
    async with contextlib.AsyncExitStack() as stack:
        sessions = [await stack.enter_async_context(
            gateway_session(site, enterprise_settings(settings, site.enterprise)))
            for site in sites]
        log.info("cluster: partition %d running (%s)", p,
                 ", ".join(s.enterprise for s in sites))
        async with asyncio.TaskGroup() as tg:
            for core, ingest in sessions:
                tg.create_task(supervised(core.loops, "stats", functools.partial(
                    _stats_step, core, ingest, settings.cluster.instance), stop,
                    settings.cluster.stats_every_s), name=f"stats-{core.enterprise}")
    log.info("cluster: partition %d drained", p)


async def _stats_step(core: Core, ingest: Ingest, instance: str) -> None:
    """The enterprise's ``gateway_stats`` line, tagged with this instance."""
    await core.writer.put(stats_line(core.enterprise, instance, snapshot(core, None, ingest),
                                     core.clock.now_ms()), 1)


async def run_instance(dep: Deployment, settings: Settings, stop: asyncio.Event) -> None:
    """Own partitions as the leases say until ``stop``; then drain and release them."""
    n = settings.nats.partitions
    by_partition = partitions_of(dep, n)
    compiled = {code: as_compiled(site) for code, site in dep.sites.items()}
    me = settings.cluster.instance
    leases = await asyncio.to_thread(PartitionLeases, settings.database_url, me, n)
    log.info("cluster: instance %s, %d enterprises in %d of %d partitions", me,
             len(dep.sites), len(by_partition), n)
    owned: dict[int, Owned] = {}
    failing = False
    try:
        async with asyncio.TaskGroup() as tg:
            while not stop.is_set():
                try:
                    step = await asyncio.to_thread(leases.step)
                except Exception as exc:     # the lease session is gone: so are the locks
                    if not failing:
                        log.error("cluster: lease lost (%s): every partition stopped now; "
                                  "retrying", describe(exc))
                        failing = True
                    await _stop_all(owned, drain=False)
                    leases.close()
                    await asyncio.sleep(settings.cluster.lease_every_s)
                    with contextlib.suppress(Exception):
                        leases = await asyncio.to_thread(PartitionLeases,
                                                         settings.database_url, me, n)
                    continue
                if failing:
                    log.warning("cluster: lease held again")
                    failing = False
                if step.give_up:            # drained together, then released
                    log.info("cluster: partitions %s go to other instances (alive: %s)",
                             ", ".join(map(str, step.give_up)), ", ".join(step.alive))
                    await asyncio.gather(*(_stop(owned.pop(p, None), drain=True)
                                           for p in step.give_up))
                    for p in step.give_up:
                        await asyncio.to_thread(leases.release, p)
                for p, epoch in step.gained.items():
                    sites = [compiled[c] for c in by_partition.get(p, [])]
                    ev = asyncio.Event()
                    owned[p] = Owned(ev, tg.create_task(
                        _run_partition(p, sites, settings, ev),
                        name=f"partition-{p}"))
                    log.info("cluster: partition %d taken (epoch %d)", p, epoch)
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(settings.cluster.lease_every_s):
                        await stop.wait()
            await _stop_all(owned, drain=True)
    finally:
        leases.close()


async def _stop(o: Owned | None, drain: bool) -> None:
    if o is None:
        return
    o.stop.set()
    if not drain:
        o.task.cancel()
    await asyncio.gather(o.task, return_exceptions=True)


async def _stop_all(owned: dict[int, Owned], drain: bool) -> None:
    await asyncio.gather(*(_stop(o, drain) for o in owned.values()))
    owned.clear()
