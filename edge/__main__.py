"""``python -m edge [--config FILE] [--edge-id ID]``: one edge agent, on its own settings
(``edge.settings``); SIGTERM and Ctrl-C stop it cleanly."""

from __future__ import annotations

import argparse
import logging
import sys

from pydantic import ValidationError
from pydantic_settings import SettingsError

from edge.app import EdgeConfigError, load_edge, run_edge
from edge.settings import EdgeSettings
from edge.supervise import run_until_signal


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
    except SettingsError as exc:
        print(f"environment settings (HAZGW_*): {exc} (not valid JSON?)", file=sys.stderr)
        return 2
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
    return run_until_signal(lambda stop: run_edge(code, edge_id, cfg, settings, stop),
                            f"edge {edge_id}")


if __name__ == "__main__":
    raise SystemExit(main())
