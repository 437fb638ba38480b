"""Scaling the cluster down safely: drain a departing node, and say when replicas cannot fit.

Used by the charm on ``relation-departed`` and by the workload tests against
a real CrateDB cluster: the same code moves the shards in both.
"""

from __future__ import annotations

import logging
import time
from enum import StrEnum
from typing import Protocol

from exceptions import WorkloadError
from sql import exclude_node

logger = logging.getLogger(__name__)

POLL_SECONDS = 5.0


class SQL(Protocol):
    """What draining needs from ``sql.CrateSQL``."""

    def execute(self, statement: str) -> None: ...  # noqa: D102
    def shards_on(self, node: str) -> int: ...  # noqa: D102
    def primaries_on(self, node: str) -> int: ...  # noqa: D102
    def max_replicas(self) -> int: ...  # noqa: D102


class Drain(StrEnum):
    """How a drain ended."""

    DRAINED = "drained"
    PRIMARIES_MOVED = "primaries moved; replicas cannot fit"
    TIMED_OUT = "timed out"
    FAILED = "failed"


def replica_problem(max_replicas: int, nodes: int) -> str | None:
    """The status message when a table wants more replicas than ``nodes`` can hold."""
    if max_replicas >= max(1, nodes):
        return (
            f"tables want {max_replicas} replica(s), {nodes} node(s) cannot hold them: "
            "scale up or lower number_of_replicas"
        )
    return None


def drain(sql: SQL, node: str, remaining_nodes: int, timeout: float) -> Drain:
    """Move every shard off ``node`` (primaries at least, when replicas cannot fit).

    Excludes the node from allocation and waits until it holds no shard. When
    the remaining nodes cannot hold every replica, it stops once only replicas
    are left: the primaries are safe elsewhere, and waiting longer would wait
    forever.
    """
    try:
        sql.execute(exclude_node(node))
        replicas_fit = replica_problem(sql.max_replicas(), remaining_nodes) is None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            left = sql.shards_on(node)
            if left == 0:
                logger.info("%s drained", node)
                return Drain.DRAINED
            logger.info("%s: %d shard(s) still to move", node, left)
            if not replicas_fit and sql.primaries_on(node) == 0:
                logger.warning(
                    "%s: replicas cannot fit on %d node(s); primaries moved", node, remaining_nodes
                )
                return Drain.PRIMARIES_MOVED
            time.sleep(POLL_SECONDS)
        logger.error("%s: shards still present after %ss", node, timeout)
        return Drain.TIMED_OUT
    except WorkloadError as err:
        logger.error("could not drain %s: %s", node, err)
        return Drain.FAILED
