from __future__ import annotations

from gateway.stream.sequence import MAX_BOOTS_PER_EDGE, SequenceTracker


def test_replayed_messages_fill_holes_once_while_live_ones_continue() -> None:
    t = SequenceTracker()
    assert [t.fresh("e", 1, s) for s in (0, 1, 2)] == [True] * 3
    # outage: 3..6 go to the edge's spool; live traffic resumes at 7
    assert t.fresh("e", 1, 7) and t.fresh("e", 1, 8)
    assert (t.gaps(), t.missing()) == (1, 4)
    # the spool is replayed after newer live messages: each old one is fresh exactly once
    assert [t.fresh("e", 1, s) for s in (3, 4, 4, 6, 5, 5)] == [True, True, False, True,
                                                               True, False]
    assert (t.gaps(), t.missing(), t.duplicates) == (0, 0, 2)
    assert not t.fresh("e", 1, 8) and not t.fresh("e", 1, 0)


def test_a_restarted_edge_starts_a_new_boot_and_old_boot_replays_still_count() -> None:
    t = SequenceTracker()
    assert t.fresh("e", 1, 0) and t.fresh("e", 1, 5)          # 1..4 in the old spool
    assert t.fresh("e", 2, 0)                                  # the edge restarted
    assert t.fresh("e", 1, 3) and not t.fresh("e", 1, 3)       # old spool replayed after
    assert t.missing() == 3
    for boot in range(3, 3 + MAX_BOOTS_PER_EDGE):
        t.fresh("e", boot, 0)
    assert 1 not in t.edges["e"]                               # only the newest boots kept
    assert len(t.edges["e"]) == MAX_BOOTS_PER_EDGE


def test_edges_are_independent() -> None:
    t = SequenceTracker()
    assert t.fresh("a", 1, 0) and t.fresh("b", 1, 0) and not t.fresh("a", 1, 0)


def test_a_gateway_restart_does_not_count_the_previous_process_messages() -> None:
    """Seen 953 → 5 444 missing after a restart: the numbers below the first one met belong
    to the previous process, and are not missing; replayed ones still come once."""
    t = SequenceTracker()
    assert t.fresh("e", 1, 5000) and t.fresh("e", 1, 5001)
    assert (t.missing(), t.gaps()) == (0, 1)
    assert t.fresh("e", 1, 17) and not t.fresh("e", 1, 17)     # the edge's spool replayed
    assert t.fresh("e", 1, 5005) and t.missing() == 3          # a real gap counts


def test_the_jump_past_the_highest_number() -> None:
    t = SequenceTracker()
    assert t.jump("e", 1, 10**18) == 0                         # nothing seen: no jump
    t.fresh("e", 1, 7)
    assert (t.jump("e", 1, 8), t.jump("e", 1, 3), t.jump("e", 1, 1007)) == (1, 0, 1000)
