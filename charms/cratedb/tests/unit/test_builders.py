"""The pure builders: SQL statements, discovery settings, heap, restart detection."""

from __future__ import annotations

import pytest

from sql import create_repository, create_user, grant_schema, ident, literal, restore_snapshot
from state import BackupTarget, Peer
from workload import (
    CrateSettings,
    crate_command,
    discovery_settings,
    heap_size,
    parse_heap,
    restart_relevant,
)


class TestSQL:
    @pytest.mark.parametrize("name", ['a"b', "A", "1abc", "a b", "a;drop", "", "x" * 64, "ü"])
    def test_unsafe_identifiers_are_refused(self, name: str):
        with pytest.raises(ValueError, match="unsafe identifier"):
            ident(name)

    def test_literals_double_single_quotes(self):
        assert literal("it's") == "'it''s'"

    def test_password_is_a_literal_and_user_an_identifier(self):
        assert (
            create_user("relation_3", "p'w")
            == "CREATE USER \"relation_3\" WITH (password = 'p''w')"
        )

    def test_grant_is_limited_to_one_schema(self):
        statement = grant_schema("relation_3", "mlflow")

        assert statement == 'GRANT DQL, DML, DDL ON SCHEMA "mlflow" TO "relation_3"'
        assert "CLUSTER" not in statement
        assert "AL," not in statement

    def test_https_endpoint_without_a_scheme_defaults_to_https(self):
        target = BackupTarget("b", "p", "s3.example.com", "K", "S")

        assert "protocol = 'https'" in create_repository(target)

    def test_restore_quotes_schema_and_table(self):
        assert '"doc"."t"' in restore_snapshot("s1", ["doc.t"])


class TestClusterPlan:
    me = Peer("cratedb-1", "cratedb-1.x")

    def test_seeds_include_every_peer_and_itself_without_duplicates(self):
        discovery = discovery_settings(
            "c", self.me, [Peer("cratedb-0", "cratedb-0.x"), self.me], 2, True, "cratedb-0"
        )

        assert discovery.seed_hosts == ("cratedb-1.x:4300", "cratedb-0.x:4300")

    @pytest.mark.parametrize(("planned", "recover"), [(1, 1), (2, 2), (3, 2), (5, 3)])
    def test_recovery_waits_for_a_majority(self, planned: int, recover: int):
        discovery = discovery_settings("c", self.me, [], planned, True, "cratedb-0")

        assert (discovery.expected_data_nodes, discovery.recover_after_data_nodes) == (
            planned,
            recover,
        )

    def test_only_the_bootstrap_node_before_bootstrap_names_initial_masters(self):
        assert discovery_settings(
            "c", self.me, [], 3, False, "cratedb-1"
        ).initial_master_nodes == ("cratedb-1",)
        assert (
            discovery_settings("c", self.me, [], 3, False, "cratedb-0").initial_master_nodes == ()
        )
        assert (
            discovery_settings("c", self.me, [], 3, True, "cratedb-1").initial_master_nodes == ()
        )

    def test_membership_flags_do_not_count_as_a_restart_reason(self):
        a = crate_command(
            CrateSettings(discovery=discovery_settings("c", self.me, [], 1, False, "cratedb-1"))
        )
        b = crate_command(
            CrateSettings(
                discovery=discovery_settings(
                    "c", self.me, [Peer("cratedb-0", "y")], 3, True, "cratedb-1"
                )
            )
        )

        assert a != b
        assert restart_relevant(" ".join(a)) == restart_relevant(" ".join(b))


class TestHeap:
    @pytest.mark.parametrize(("value", "mb"), [("512m", 512), ("4g", 4096), ("1G", 1024)])
    def test_parse(self, value: str, mb: int):
        assert parse_heap(value) == mb

    @pytest.mark.parametrize("value", ["", "4", "4gb", "-1g", "0m", "1.5g"])
    def test_parse_refuses(self, value: str):
        with pytest.raises(ValueError, match="512m or 4g"):
            parse_heap(value)

    def test_unlimited_container_gets_the_default(self):
        assert heap_size(None) == "1024m"


def test_the_crate_clients_statement_log_is_silenced_so_no_password_reaches_juju():
    """The crate client logs each statement (CREATE USER ... password) at DEBUG."""
    import logging

    import sql  # noqa: F401  (importing it is what sets the level)

    assert logging.getLogger("crate.client.http").getEffectiveLevel() >= logging.WARNING


def test_pebble_durations_compare_by_value_not_by_text():
    """Pebble reports a layer's 60s as 1m0s: the plan must still equal the layer."""
    from container import duration_seconds

    assert duration_seconds("60s") == duration_seconds("1m0s") == 60.0
    assert duration_seconds("1h2m3.5s") == 3723.5
    assert duration_seconds("500ms") == 0.5
