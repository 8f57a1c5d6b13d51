"""The README's configuration examples stay valid as the models change."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from alerting.escalation import Contacts, EscalationConfig
from edge.config import EdgeConfig

README = Path(__file__).resolve().parent.parent / "README.md"
EXAMPLES = re.findall(r"```yaml\n(.*?)```", README.read_text(), re.S)


def test_there_are_edge_examples() -> None:
    assert sum("edges:" in e for e in EXAMPLES) >= 2


@pytest.mark.parametrize("example", [e for e in EXAMPLES if "edges:" in e])
def test_edge_examples_validate(example: str) -> None:
    for agent in yaml.safe_load(example)["edges"].values():
        EdgeConfig.model_validate(agent)


def test_escalation_example_validates() -> None:
    example = next(e for e in EXAMPLES if e.startswith("escalation:"))
    doc = yaml.safe_load(example)
    cfg = EscalationConfig.model_validate(doc["escalation"])
    contacts = Contacts.model_validate(doc["contacts"])
    assert cfg.policy_for("dust_workshop", 1) is not None
    assert contacts.of("lpg_farm", "regulator")
