"""``python -m edge [--config FILE] [--edge-id ID]``: one edge agent, on its own settings
(``edge.settings``); SIGTERM and Ctrl-C stop it cleanly."""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys

from pydantic import ValidationError

from edge.app import EdgeConfigError, load_edge, run_edge
from edge.config import EdgeConfig
from edge.settings import EdgeSettings


async def _run(code: str, edge_id: str, cfg: EdgeConfig, settings: EdgeSettings) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await run_edge(code, edge_id, cfg, settings, stop)


def main(argv: list[str] | None = None) -> int:
    """Run until SIGTERM or Ctrl-C; 2 for bad settings or config."""
    p = argparse.ArgumentParser(prog="python -m edge", description=__doc__)
    p.add_argument("--config", default=None, help="site or edge-only file (HAZGW_CONFIG)")
    p.add_argument("--edge-id", default=None, help="which edge (HAZGW_EDGE_ID)")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: "
                                                   "%(message)s")
    try:
        settings = EdgeSettings()
    except ValidationError as exc:
        print("environment settings (HAZGW_*): invalid", file=sys.stderr)
        for e in exc.errors(include_url=False):
            print(f"  HAZGW_{'.'.join(str(x) for x in e['loc'])}: {e['msg']}", file=sys.stderr)
        return 2
    edge_id = args.edge_id or settings.edge_id
    try:
        code, cfg = load_edge(args.config or settings.config, edge_id)
    except EdgeConfigError as exc:
        print(f"{exc.source}: {len(exc.errors)} error(s)", file=sys.stderr)
        for line in exc.errors:
            print(f"  {line}", file=sys.stderr)
        return 2
    asyncio.run(_run(code, edge_id, cfg, settings))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
