"""The register's closed loop as pure rules: every transition, the refusals, five in place."""

from __future__ import annotations

import pytest

from alerting.register import STATES, TRANSITIONS, Entry, Five, RegisterError, transition

FULL = Five(measures="replace gasket", funds_cny=12000.0, responsible_person="Li Wei",
            deadline_ms=2_000, contingency_plan="EP-7")


@pytest.mark.parametrize(("state", "action"), sorted(TRANSITIONS))
def test_every_allowed_transition(state: str, action: str) -> None:
    e = Entry(state=state, level="major", five=FULL)  # type: ignore[arg-type]
    five = Five(measures="m2") if action in ("start", "update_five") else None
    after = transition(e, action, five=five,  # type: ignore[arg-type]
                       verifier="Zhang", comment="ok")
    assert after.state == TRANSITIONS[(state, action)]  # type: ignore[index]


@pytest.mark.parametrize(("state", "action"), [
    (s, a) for s in STATES for a in ("start", "submit", "verify_pass", "verify_fail",
                                     "update_five") if (s, a) not in TRANSITIONS])
def test_every_other_transition_is_refused_with_what_is_allowed(state: str, action: str) -> None:
    with pytest.raises(RegisterError, match=f"cannot {action} an entry that is {state}"):
        transition(Entry(state=state, level="general"), action)  # type: ignore[arg-type]


def test_a_major_hazard_needs_the_five_in_place_before_rectification() -> None:
    e = Entry(state="registered", level="major", five=Five(measures="m", funds_cny=1.0))
    with pytest.raises(RegisterError, match="missing: responsible_person, deadline_ms, "
                                            "contingency_plan"):
        transition(e, "start")
    e = transition(e, "update_five", five=Five(responsible_person="Li", deadline_ms=5,
                                               contingency_plan="EP"))
    assert e.five.measures == "m" and e.five.missing() == []
    assert transition(e, "start").state == "rectifying"
    # a general hazard may start without them
    assert transition(Entry(state="registered", level="general"), "start").state == "rectifying"


def test_rectification_starts_with_the_five_brought_in_the_same_step() -> None:
    e = Entry(state="registered", level="major", five=Five(measures="m"))
    with pytest.raises(RegisterError, match="missing: deadline_ms"):
        transition(e, "start", five=Five(funds_cny=2.0, responsible_person="Li",
                                         contingency_plan="EP"))
    started = transition(e, "start", five=Five(funds_cny=2.0, responsible_person="Li",
                                               deadline_ms=5, contingency_plan="EP"))
    assert started.state == "rectifying" and started.five.measures == "m"
    assert started.five.missing() == []
    # the five come only with start or update_five
    with pytest.raises(RegisterError, match="not with submit"):
        transition(started, "submit", five=Five(measures="x"))


def test_verification_needs_a_verifier_and_comment_and_failure_returns_to_rectifying() -> None:
    e = Entry(state="pending_verification", level="general")
    with pytest.raises(RegisterError, match="needs the verifier and a comment"):
        transition(e, "verify_pass", verifier="Zhang")
    assert transition(e, "verify_fail", verifier="Zhang", comment="leak persists").state == \
        "rectifying"


def test_overdue_and_supervised_listing() -> None:
    general = Entry(state="rectifying", level="general", five=FULL)
    assert not general.overdue(2_000) and general.overdue(2_001)
    assert not general.supervised(1_000) and general.supervised(3_000)
    major = Entry(state="registered", level="major")
    assert major.supervised(0) and not major.overdue(10**15)     # no deadline yet
    closed = Entry(state="closed", level="major", five=FULL)
    assert not closed.overdue(10**15) and not closed.supervised(10**15)
