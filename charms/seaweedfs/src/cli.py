"""The one door to commands run inside the workload container.

Every ``container.exec`` goes through ``WeedShell`` so there is one place for
timeouts and error mapping, and unit tests match the calls with ``testing.Exec``.
"""

from __future__ import annotations

import logging

import ops

from cluster import (
    DrainPlan,
    Topology,
    drain_script,
    parse_volume_list,
    plan_drain,
    raft_remove_script,
    replication_script,
    with_slots,
)
from exceptions import WorkloadError
from workload import (
    WeedSettings,
    bucket_create_script,
    bucket_list_script,
    parse_bucket_list,
    weed_shell_argv,
)

logger = logging.getLogger(__name__)

SHELL_TIMEOUT = 30.0
# Moving volumes and repairing replicas copies data: give it time.
LONG_SHELL_TIMEOUT = 900.0


class WeedShell:
    """Administrative commands through ``weed shell`` in the workload container."""

    def __init__(self, container: ops.Container, settings: WeedSettings):
        self._container = container
        self._settings = settings

    def _run(self, script: str, timeout: float = SHELL_TIMEOUT) -> str:
        try:
            process = self._container.exec(
                weed_shell_argv(self._settings), stdin=script, timeout=timeout
            )
            stdout, _ = process.wait_output()
        except ops.pebble.ExecError as err:
            logger.warning("weed shell failed (exit %s): %s", err.exit_code, err.stderr)
            raise WorkloadError("SeaweedFS did not accept an admin command; retrying") from None
        except (ops.pebble.ChangeError, ops.pebble.TimeoutError, ops.pebble.APIError) as err:
            logger.warning("weed shell could not run: %s", err)
            raise WorkloadError("SeaweedFS admin shell unavailable; retrying") from None
        return stdout

    def buckets(self) -> set[str]:
        """Names of the buckets that exist."""
        return parse_bucket_list(self._run(bucket_list_script()))

    def create_bucket(self, bucket: str) -> None:
        """Create one bucket (its name already validated)."""
        self._run(bucket_create_script(bucket))
        logger.info("created bucket %s", bucket)

    def ensure_buckets(self, wanted: set[str]) -> set[str]:
        """Create the wanted buckets that are missing; return those created."""
        missing = wanted - self.buckets()
        for bucket in sorted(missing):
            self.create_bucket(bucket)
        return missing

    def topology(self) -> Topology:
        """Every volume replica and each server's slots (``volume.list``)."""
        return parse_volume_list(self._run("volume.list\n"))

    def apply_replication(self, replication: str) -> None:
        """Make new writes and every existing volume keep ``replication`` (copies made now)."""
        self._run(replication_script(replication), timeout=LONG_SHELL_TIMEOUT)
        logger.info("replication %s applied to every volume", replication)

    def drain(self, leaving: str, slots: dict[str, tuple[int, int]]) -> DrainPlan:
        """Move ``leaving``'s volumes to units that lack them, then let it go; the plan used.

        ``slots`` is every server's (volumes, max) as the master reports it.
        Nothing moves when the plan has a problem (no room): the caller reports it.
        """
        plan = plan_drain(with_slots(self.topology(), slots), leaving)
        if plan.problem is None:
            self._run(drain_script(plan, leaving), timeout=LONG_SHELL_TIMEOUT)
            logger.info("%s drained: %d volume(s) moved", leaving, len(plan.moves))
        return plan

    def leave_raft(self, raft_id: str) -> None:
        """Take a departing master out of the raft group."""
        self._run(raft_remove_script(raft_id))
        logger.info("master %s left the raft group", raft_id)
