"""The pytest plugin of the maintenance teams' test kit (entry point ``hazgw``: installing the
package is enough, no conftest needed).

Fixtures:

- ``simulated_site(config, scenario=None, *, speed=100, seed=None, duration_s=None)``: a site
  config's devices and sensors driven by a scenario (paths relative to the test file);
- ``gateway_under_test(site, influx=None)``: the edge and the gateway core against it, in
  lockstep with its simulated clock; ``.run()`` returns the ``RunResult``;
- ``run_scenario(config, scenario, **kw)``: both, and the scenario's own ``expect:`` checked.

Assertion helper: ``gateway.testkit.expect_alarms(result, ["HH on T101_level at 300s ±30s"])``.
``--hazgw-speed X`` overrides every speed (1 to watch a scenario in real time, 1000 to hurry).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from gateway.settings import InfluxSettings
from gateway.sim.expect import expect_alarms
from gateway.sim.kit import RunResult, SimulatedSite, run


def pytest_addoption(parser: pytest.Parser) -> None:
    """``--hazgw-speed``."""
    parser.addoption("--hazgw-speed", type=float, default=None,
                     help="hazgw kit: run every simulated scenario at this speed")


class GatewayUnderTest:
    """The edge agent's pollers and the gateway core, run against a simulated site."""

    def __init__(self, site: SimulatedSite, influx: InfluxSettings | None = None) -> None:
        self.site = site
        self.influx = influx
        self.result: RunResult | None = None

    def run(self, duration_s: float | None = None) -> RunResult:
        """Run the scenario (its whole duration by default); once per simulated site."""
        if self.result is not None:
            raise RuntimeError("a simulated site runs once: ask simulated_site for another")
        self.result = run(self.site, duration_s, self.influx)
        return self.result


@pytest.fixture
def simulated_site(request: pytest.FixtureRequest) -> Callable[..., SimulatedSite]:
    """Factory of simulated sites; relative paths start at the test file's folder."""
    here = request.path.parent
    forced = request.config.getoption("--hazgw-speed")

    def make(config: str | Path, scenario: str | Path | None = None, *,
             speed: float = 100, seed: int | None = None,
             duration_s: float | None = None) -> SimulatedSite:
        return SimulatedSite.from_files(here / config,
                                        None if scenario is None else here / scenario,
                                        speed=forced or speed, seed=seed, duration_s=duration_s)
    return make


@pytest.fixture
def gateway_under_test() -> Callable[..., GatewayUnderTest]:
    """Factory of gateways under test, one per simulated site."""
    def make(site: SimulatedSite, influx: InfluxSettings | None = None) -> GatewayUnderTest:
        return GatewayUnderTest(site, influx)
    return make


@pytest.fixture
def run_scenario(simulated_site: Callable[..., SimulatedSite],
                 gateway_under_test: Callable[..., GatewayUnderTest],
                 ) -> Callable[..., RunResult]:
    """Run a scenario file against a site config and check the scenario's ``expect:``."""
    def go(config: str | Path, scenario: str | Path, **kw: Any) -> RunResult:
        site = simulated_site(config, scenario, **kw)
        result = gateway_under_test(site).run()
        expect_alarms(result, site.scenario.expect)
        return result
    return go
