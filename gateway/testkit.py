"""The maintenance teams' test kit: the one public module their suites import, kept stable.

Everything here is re-exported from ``gateway.sim``; the fixtures ``simulated_site``,
``gateway_under_test`` and ``run_scenario`` come with the package's pytest plugin
(``gateway.sim.pytest_plugin``, entry point ``hazgw``). A name is removed from here only
after a release that warns of it.
"""

from __future__ import annotations

from gateway.sim.expect import expect_alarms
from gateway.sim.kit import RunResult, SimulatedSite, TimelineRow, run, run_site
from gateway.sim.ports import free_port

__all__ = ["RunResult", "SimulatedSite", "TimelineRow", "expect_alarms", "free_port", "run",
           "run_site"]
