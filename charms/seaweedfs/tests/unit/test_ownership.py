"""The ownership rules (``ownership.py``, the same module in the cratedb charm).

Pure: ledgers in, ledgers out. The charms' own tests and the contract tests
show the rules at work on buckets and schemas.
"""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import ownership
from ownership import Ask, Claim


def nothing_there(_name: str) -> bool:
    return False


def settle(ledger, asks, live=None, holds=nothing_there, undecided=()):
    live = {a.relation_id for a in asks} if live is None else live
    return ownership.settle(ledger, asks, live, holds, undecided=undecided)


class TestFirstServedKeeps:
    def test_a_free_name_goes_to_the_one_relation_asking(self):
        out = settle({}, [Ask(7, "app-a", "data")])

        assert out.ledger == {"data": Claim("app-a", 7)}
        assert out.refused == {}

    def test_an_owned_name_is_refused_to_a_relation_with_a_lower_id(self):
        owned = {"data": Claim("victim", 9)}

        out = settle(owned, [Ask(9, "victim", "data"), Ask(2, "attacker", "data")])

        assert out.ledger["data"] == Claim("victim", 9)
        assert out.refused == {(2, "data"): "'data' is served to victim (relation 9)"}

    def test_an_older_relation_switching_to_a_taken_name_gives_up_its_own_and_gets_nothing(self):
        ledger = {"mine": Claim("attacker", 1), "theirs": Claim("victim", 5)}

        out = settle(ledger, [Ask(1, "attacker", "theirs"), Ask(5, "victim", "theirs")])

        assert out.ledger == {"mine": Claim("attacker"), "theirs": Claim("victim", 5)}
        assert out.released == (("mine", Claim("attacker", 1)),)
        assert (1, "theirs") in out.refused

    def test_several_asking_at_once_for_a_new_name_are_all_refused(self):
        out = settle({}, [Ask(3, "a", "data"), Ask(4, "b", "data")])

        assert out.ledger == {}
        assert set(out.refused) == {(3, "data"), (4, "data")}
        assert "a (relation 3), b (relation 4)" in out.refused[(3, "data")]

    def test_a_relation_repeating_its_ask_is_not_contested_with_itself(self):
        out = settle({}, [Ask(3, "a", "data"), Ask(3, "a", "data")])

        assert out.ledger == {"data": Claim("a", 3)}

    def test_the_asker_is_told_why_without_the_owners_name(self):
        out = settle(
            {"data": Claim("owner-app", 9)}, [Ask(9, "owner-app", "data"), Ask(2, "x", "data")]
        )

        assert "owner-app" in out.refused[(2, "data")]
        assert "owner-app" not in out.told[(2, "data")]
        assert out.told[(2, "data")] == "'data' belongs to another application; ask for another"

    def test_a_relation_with_an_unreadable_request_keeps_what_it_has(self):
        ledger = {"data": Claim("app-a", 7)}

        out = settle(ledger, [], live={7}, undecided={7})

        assert out.ledger == ledger
        assert out.released == ()


class TestRetained:
    def test_a_relation_that_leaves_leaves_its_name_retained(self):
        out = settle({"data": Claim("app-a", 7)}, [], live=set())

        assert out.ledger == {"data": Claim("app-a")}
        assert out.released == (("data", Claim("app-a", 7)),)

    def test_a_retained_name_is_not_handed_to_the_next_relation_asking(self):
        out = settle({"data": Claim("app-a")}, [Ask(8, "app-b", "data")])

        assert out.ledger == {"data": Claim("app-a")}
        assert "retained from app-a" in out.refused[(8, "data")]
        assert "grant-retained" in out.refused[(8, "data")]

    def test_the_same_application_related_again_needs_the_operator_too(self):
        out = settle({"data": Claim("app-a")}, [Ask(8, "app-a", "data")])

        assert not out.served(Ask(8, "app-a", "data"))

    def test_a_name_handed_over_is_served_to_that_application_only(self):
        ledger = ownership.hand_over({"data": Claim("app-a")}, "data", "app-c")

        out = settle(ledger, [Ask(8, "app-b", "data"), Ask(9, "app-c", "data")])

        assert out.ledger == {"data": Claim("app-c", 9)}
        assert "handed to app-c" in out.refused[(8, "data")]

    def test_a_name_holding_unknown_data_is_retained_not_served(self):
        out = settle({}, [Ask(8, "app-b", "old")], holds=lambda name: name == "old")

        assert out.ledger == {"old": Claim(ownership.UNKNOWN_OWNER)}
        assert "holds data of an unknown owner" in out.refused[(8, "old")]

    def test_only_retained_names_can_be_handed_over_or_purged(self):
        served = {"data": Claim("app-a", 7)}

        with pytest.raises(ValueError, match="only retained names can be handed over"):
            ownership.hand_over(served, "data", "app-b")
        with pytest.raises(ValueError, match="only retained names can be purged"):
            ownership.forget(served, "data")
        with pytest.raises(ValueError, match="not in the ledger"):
            ownership.hand_over({}, "data", "app-b")

    def test_purging_forgets_the_name(self):
        assert ownership.forget({"data": Claim("app-a"), "x": Claim("b", 1)}, "data") == {
            "x": Claim("b", 1)
        }


class TestLedgerRecord:
    def test_dump_and_load_round_trip(self):
        ledger = {"a": Claim("app", 3), "b": Claim("gone"), "c": Claim("", None, "new-app")}

        assert ownership.load(ownership.dump(ledger)) == ledger

    @pytest.mark.parametrize("raw", [None, "", "not json", "[]", '"x"'])
    def test_no_or_unreadable_record_is_no_ledger(self, raw):
        assert ownership.load(raw) is None

    def test_the_first_ledger_keeps_what_the_old_charm_served(self):
        seeded = ownership.seed([Ask(5, "b", "x"), Ask(2, "a", "x"), Ask(6, "c", "y")])

        assert seeded == {"x": Claim("a", 2), "y": Claim("c", 6)}


names = st.sampled_from(["n1", "n2", "n3"])
apps = st.sampled_from(["a", "b", "c", "d"])
rounds = st.lists(
    st.lists(st.tuples(st.integers(1, 6), apps, names), max_size=6),
    min_size=1,
    max_size=8,
)


@settings(max_examples=300, deadline=None)
@given(rounds)
def test_a_served_name_never_moves_while_its_relation_lives(history):
    """Whatever relations ask, in whatever order, an owner keeps its name until it gives it up."""
    ledger: dict[str, Claim] = {}
    apps_of: dict[int, str] = {}
    for asks_now in history:
        # A relation belongs to one application for its whole life.
        asks = [Ask(rel, apps_of.setdefault(rel, app), name) for rel, app, name in asks_now]
        asks = list({(a.relation_id, a.name): a for a in asks}.values())
        live = {a.relation_id for a in asks}
        before = dict(ledger)
        out = ownership.settle(ledger, asks, live, nothing_there)
        for name, claim in before.items():
            if claim.relation_id is None or (claim.relation_id, name) not in {
                (a.relation_id, a.name) for a in asks
            }:
                continue
            assert out.ledger[name] == claim
        for name, claim in out.ledger.items():
            if claim.relation_id is not None:
                assert any(a.relation_id == claim.relation_id and a.name == name for a in asks)
        for name, claim in before.items():
            if claim.retained and not claim.handed_to:
                assert out.ledger[name].retained
        ledger = out.ledger
