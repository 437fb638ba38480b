"""The exporter (metrics.py): what Prometheus parses from a node's sys tables.

The SQL door is the one boundary stubbed here: a function answering each
statement with rows shaped as CrateDB 6.4.0's ``/_sql`` gave them (recorded
from a real node; the workload tests run the exporter against one).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from in_container.metrics import collect, http_sql, render, scrape

YELLOW_NODE: dict[str, list[list[Any]]] = {
    "SELECT max(severity)": [[2]],
    "SELECT health, count(*)": [["YELLOW", 1]],
    "SELECT count(*) FROM sys.nodes": [[1]],
    'SELECT state, "primary"': [["UNASSIGNED", False, 2], ["STARTED", True, 2]],
    "SELECT heap['used']": [[185728400, 536870912, 270553174016, 78125551616, 142, 0.46]],
    "SELECT classification['type']": [["SELECT", 6, 0, 149], ["UNDEFINED", 1, 1, 0]],
}


def answering(answers: dict[str, list[list[Any]]]) -> Any:
    seen: list[tuple[str, list[Any]]] = []

    def sql(statement: str, args: Sequence[Any]) -> list[list[Any]]:
        seen.append((statement, list(args)))
        return next(rows for prefix, rows in answers.items() if statement.startswith(prefix))

    sql.seen = seen  # type: ignore[attr-defined]
    return sql


def parsed(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def test_a_yellow_one_node_cluster_reads_as_health_2_with_its_unassigned_replicas():
    values = parsed(render(collect(answering(YELLOW_NODE), "cratedb-0")))
    assert values[("cratedb_up", ())] == 1
    assert values[("cratedb_cluster_health", ())] == 2
    assert values[("cratedb_nodes", ())] == 1
    assert values[("cratedb_tables", (("health", "YELLOW"),))] == 1
    assert values[("cratedb_shards", (("primary", "false"), ("state", "UNASSIGNED")))] == 2
    assert values[("cratedb_node_heap_max_bytes", ())] == 536870912
    assert values[("cratedb_node_fs_available_bytes", ())] == 78125551616
    assert values[("cratedb_queries_total", (("type", "SELECT"),))] == 6
    assert values[("cratedb_query_failures_total", (("type", "UNDEFINED"),))] == 1
    assert values[("cratedb_query_duration_seconds_total", (("type", "SELECT"),))] == 0.149


def test_the_node_figures_are_read_for_this_node_only():
    sql = answering(YELLOW_NODE)
    collect(sql, "cratedb-3")
    node_args = [args for statement, args in sql.seen if "WHERE" in statement]
    assert node_args == [["cratedb-3"], ["cratedb-3"]]


def test_an_empty_sys_health_is_a_green_cluster():
    answers = {**YELLOW_NODE, "SELECT max(severity)": [[None]], "SELECT health, count(*)": []}
    values = parsed(render(collect(answering(answers), "cratedb-0")))
    assert values[("cratedb_cluster_health", ())] == 1


def test_a_node_not_yet_in_sys_nodes_still_reports_the_cluster():
    answers = {**YELLOW_NODE, "SELECT heap['used']": []}
    values = parsed(render(collect(answering(answers), "cratedb-0")))
    assert values[("cratedb_nodes", ())] == 1
    assert not any(name.startswith("cratedb_node_") for name, _ in values)


@pytest.mark.parametrize("error", [OSError("connection refused"), KeyError("rows")])
def test_a_node_that_does_not_answer_scrapes_as_cratedb_up_0_and_nothing_else(error: Exception):
    def sql(statement: str, args: Sequence[Any]) -> list[list[Any]]:
        raise error

    assert parsed(scrape(sql, "cratedb-0")) == {("cratedb_up", ()): 0}


def test_label_values_survive_quotes_and_backslashes():
    answers = {**YELLOW_NODE, "SELECT classification['type']": [['odd "type" \\ x', 1, 0, 5]]}
    values = parsed(render(collect(answering(answers), "cratedb-0")))
    assert values[("cratedb_queries_total", (("type", 'odd "type" \\ x'),))] == 1


def test_the_sql_door_speaks_only_http_or_https():
    with pytest.raises(ValueError, match="not an HTTP"):
        http_sql("file:///etc/passwd")
