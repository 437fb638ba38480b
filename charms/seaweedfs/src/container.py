"""The one door to commands run inside the workload container.

Every ``container.exec`` goes through ``WeedShell`` so there is one place for
timeouts and error mapping, and unit tests match the calls with ``testing.Exec``.
"""

from __future__ import annotations

import contextlib
import logging
import shlex
from dataclasses import replace
from datetime import datetime
from typing import cast

import ops

from client import WorkloadClient
from cluster import (
    Drain,
    Topology,
    drain_moves,
    drain_script,
    parse_volume_list,
    raft_remove_script,
    repair_script,
    replication_script,
    with_slots,
)
from constants import (
    DATA_DIR,
    LAYER_LABEL,
    MIGRATION_RECORD,
    RECORDS_DIR,
    SERVICE,
    VERSION_RECORD,
)
from exceptions import CharmError, WaitingError, WorkloadError
from upgrades import (
    Migration,
    aside_path,
    downgrade_problem,
    highest_volume_id,
    master_state_dir,
    one_unit_raft_id,
    raft_names,
    weed_version,
    written_by_one_unit_charm,
)
from workload import (
    Member,
    WeedSettings,
    bucket_create_script,
    bucket_delete_script,
    bucket_list_script,
    parse_bucket_list,
    restart_relevant,
    weed_shell_argv,
)

logger = logging.getLogger(__name__)

SHELL_TIMEOUT = 30.0
# Moving volumes and repairing replicas copies data: give it time.
LONG_SHELL_TIMEOUT = 900.0


class Workload:
    """The weed service under Pebble: its files, its layer, its signals."""

    def __init__(self, container: ops.Container):
        self._container = container

    def service_running(self) -> bool:
        """True when the weed service runs."""
        services = self._container.get_services(SERVICE)
        return SERVICE in services and services[SERVICE].is_running()

    def push_if_changed(self, path: str, content: str) -> bool:
        """Write ``path`` (owner-only) unless it already holds ``content``; True if written."""
        try:
            if self._container.pull(path).read() == content:
                return False
        except (ops.pebble.PathError, FileNotFoundError):
            pass
        self._container.push(path, content, make_dirs=True, permissions=0o600)
        return True

    def apply_layer(self, layer: dict) -> bool:
        """Apply the layer; True when the service was (re)started.

        A change of start-only flags alone (master peers, default replication)
        goes into the plan for the next start without restarting weed.
        """
        wanted = ops.pebble.Layer(cast(ops.pebble.LayerDict, layer))
        plan = self._container.get_plan()
        spec = wanted.services[SERVICE]
        current = plan.services.get(SERVICE)
        same_checks = all(
            name in plan.checks and plan.checks[name].to_dict() == check.to_dict()
            for name, check in wanted.checks.items()
        ) and set(plan.checks) == set(wanted.checks)
        # The services beside weed (the ready notice's): new or changed ones are
        # added and started by a replan, which leaves an unchanged weed running.
        same_others = all(
            name in plan.services and plan.services[name].to_dict() == service.to_dict()
            for name, service in wanted.services.items()
            if name != SERVICE
        )
        if same_checks and current is not None and current.to_dict() == spec.to_dict():
            if not same_others:
                self._container.add_layer(LAYER_LABEL, wanted, combine=True)
            if not self.service_running():
                self._container.replan()
                return True
            if not same_others:
                self._container.replan()
            return False
        self._container.add_layer(LAYER_LABEL, wanted, combine=True)
        deferred = (
            same_checks
            and current is not None
            and self.service_running()
            and restart_relevant(current.command) == restart_relevant(spec.command)
            and {**current.to_dict(), "command": ""} == {**spec.to_dict(), "command": ""}
        )
        if deferred:
            logger.info("master peers or replication updated for the next start; no restart")
            return False
        self._container.replan()
        logger.info("Pebble layer applied")
        return True

    def reload_identities(self) -> None:
        """SeaweedFS re-reads -s3.config on SIGHUP: identities change without a restart."""
        self._container.send_signal("SIGHUP", SERVICE)
        logger.info("S3 identities reloaded")

    def runs_one_unit_form(self) -> bool:
        """True when weed runs the one-unit charm's command (no master peers)."""
        service = self._container.get_plan().services.get(SERVICE)
        command = service.command if service is not None else ""
        return self.service_running() and "-master.peers=" not in command

    def stop(self) -> None:
        """Stop weed (it flushes volumes and the filer store first)."""
        self._container.stop(SERVICE)
        logger.info("weed stopped")

    # -- the data weed starts on (``upgrades``) ------------------------------

    def settle_data(
        self,
        me: Member,
        app: str,
        now: datetime,
        data_dir: str = DATA_DIR,
        weed: str = "weed",
    ) -> Migration | None:
        """Before weed starts on this unit's data: refuse an older weed, move a one-unit state.

        Raises CharmError (Blocked) when the image's weed is older than the one
        that last served the data, touching nothing. A master state written by
        the one-unit charm is moved aside (never deleted), recorded first.
        Returns the move this data is in, made now or earlier, until it is sealed.
        """
        image = self.image_weed_version(weed)
        served = weed_version(self._read(f"{data_dir}/{RECORDS_DIR}/{VERSION_RECORD}"))
        if problem := downgrade_problem(image, served, app):
            raise CharmError(problem)
        record = f"{data_dir}/{RECORDS_DIR}/{MIGRATION_RECORD}"
        migration = Migration.load(self._read(record))
        state = master_state_dir(data_dir, me)
        if written_by_one_unit_charm(raft_names(self._raft_files(state)), me):
            migration = Migration(moved_to=aside_path(state, now))
            # Recorded before the move: no move goes unsealed, even if the pod dies now.
            self.push_if_changed(record, migration.dump())
            self._exec(["mv", state, migration.moved_to], f"move {state} aside")
            logger.warning(
                "the one-unit charm's master state (member %s) moved aside to %s; "
                "weed starts as %s",
                one_unit_raft_id(me),
                migration.moved_to,
                me.raft_id,
            )
        return migration if migration is not None and not migration.sealed_at else None

    def image_weed_version(self, weed: str = "weed") -> str | None:
        """What ``weed version`` says in the container; None if it says nothing usable.

        A ``weed version`` that fails refuses nothing (logged): only a version
        known to be older than the data's is refused.
        """
        try:
            return weed_version(self._exec([weed, "version"], "read the image's weed version"))
        except WorkloadError:
            return None

    def seal_volume_ids(self, door: WorkloadClient, data_dir: str = DATA_DIR) -> Migration | None:
        """Once weed serves a moved store: make the new raft log record its highest volume id.

        Grows one empty volume while the master knows this unit's volumes: the
        id the log records is then above every id here. Raises WaitingError until
        the master has registered them. Returns the (sealed) record.
        """
        record = f"{data_dir}/{RECORDS_DIR}/{MIGRATION_RECORD}"
        migration = Migration.load(self._read(record))
        if migration is None or migration.sealed_at:
            return migration
        highest = highest_volume_id(f.name for f in self._container.list_files(data_dir))
        known = door.max_volume_id()
        if known is None or known < highest:
            raise WaitingError("waiting for the master to register this unit's volumes")
        sealed = door.max_volume_id() if door.grow_volume() else None
        if sealed is None or sealed <= highest:
            raise WorkloadError("could not record the volume ids in the new master; retrying")
        migration = replace(migration, sealed_at=sealed)
        self.push_if_changed(record, migration.dump())
        logger.info("volume ids recorded in the new master state (up to %d)", sealed)
        return migration

    def _read(self, path: str) -> str | None:
        try:
            return str(self._container.pull(path).read())
        except (ops.pebble.PathError, FileNotFoundError, UnicodeDecodeError):
            return None

    def _raft_files(self, state_dir: str) -> list[str]:
        """The text of a master's raft files (its log is binary: read byte for byte)."""
        paths = [f"{state_dir}/conf", f"{state_dir}/log"]
        with contextlib.suppress(ops.pebble.APIError, ops.pebble.PathError):
            paths += [f.path for f in self._container.list_files(f"{state_dir}/snapshot")]
        texts = []
        for path in paths:
            try:
                texts.append(self._container.pull(path, encoding=None).read().decode("latin-1"))
            except (ops.pebble.PathError, FileNotFoundError):
                continue
        return texts

    def _exec(self, argv: list[str], doing: str) -> str:
        """Run ``argv`` in the container; WorkloadError (retried) if it could not ``doing``."""
        try:
            stdout, _ = self._container.exec(argv, timeout=SHELL_TIMEOUT).wait_output()
        except ops.pebble.ExecError as err:
            logger.warning("%s: exit %s: %s", shlex.join(argv), err.exit_code, err.stderr)
            raise WorkloadError(f"could not {doing}; retrying") from None
        except (ops.pebble.ChangeError, ops.pebble.TimeoutError, ops.pebble.APIError) as err:
            logger.warning("%s could not run: %s", shlex.join(argv), err)
            raise WorkloadError(f"could not {doing}; retrying") from None
        return str(stdout)


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

    def delete_bucket(self, bucket: str) -> None:
        """Delete one bucket with every object in it (its name already validated)."""
        self._run(bucket_delete_script(bucket), timeout=LONG_SHELL_TIMEOUT)
        logger.info("deleted bucket %s and its objects", bucket)

    def ensure_buckets(self, wanted: set[str], existing: set[str] | None = None) -> set[str]:
        """Create the wanted buckets that are missing; return those created.

        ``existing``: the buckets listed earlier in this hook, if they were.
        """
        missing = wanted - (self.buckets() if existing is None else existing)
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

    def repair(self) -> None:
        """Make the copies that volumes short of their replication lack."""
        self._run(repair_script(), timeout=LONG_SHELL_TIMEOUT)
        logger.info("missing volume copies made")

    def drain(self, leaving: str, slots: dict[str, tuple[int, int]]) -> Drain:
        """Move ``leaving``'s volumes to units that lack them, then let it go; the drain used.

        ``slots`` is every server's (volumes, max) as the master reports it.
        Nothing moves when the drain has a problem (no room): the caller reports it.
        """
        drain = drain_moves(with_slots(self.topology(), slots), leaving)
        if drain.problem is None:
            self._run(drain_script(drain, leaving), timeout=LONG_SHELL_TIMEOUT)
            logger.info("%s drained: %d volume(s) moved", leaving, len(drain.moves))
        return drain

    def leave_raft(self, raft_id: str) -> None:
        """Take a departing master out of the raft group."""
        self._run(raft_remove_script(raft_id))
        logger.info("master %s left the raft group", raft_id)
