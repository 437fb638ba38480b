"""Scheduled CrateDB snapshots, run by Pebble beside the leader's node.

    python3 backup_runner.py CRATE_URL STATE_FILE SCHEDULE RETENTION

Juju has no timer a charm can use, so the charm pushes this file (standard
library only, like ``metrics.py``) into the leader's container and runs it as
the ``backup-schedule`` service. Every ``POLL`` seconds it asks the cluster
which snapshots exist (``sys.snapshots``), takes one when ``schedule.is_due``
says so, prunes what ``schedule.to_prune`` lets go, and writes what happened
to ``STATE_FILE`` (JSON) - the charm's status and the exporter's
``cratedb_scheduled_backup_*`` metrics read it. It talks to the node as the
superuser over the pod's loopback, like the exporter; the snapshot repository
is the one the charm defines from the ``s3-parameters`` relation.
"""

from __future__ import annotations

import json
import os
import sys
import time
import urllib.error
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from metrics import Sql, http_sql
from schedule import (
    PREFIX,
    Retention,
    Schedule,
    Snapshot,
    is_due,
    parse_retention,
    parse_schedule,
    snapshot_name,
    to_prune,
)

REPOSITORY = "backups"
POLL = 30.0
# A snapshot of a large cluster takes a while; the HTTP call waits for it.
SNAPSHOT_TIMEOUT = 6 * 3600.0


@dataclass
class RunnerState:
    """What the runner last did, as ``STATE_FILE`` keeps it (times in ISO 8601, UTC)."""

    schedule: str = ""
    last_attempt: str = ""
    last_success: str = ""
    last_snapshot: str = ""
    failed: bool = False
    error: str = ""
    pruned: list[str] = field(default_factory=list)

    @classmethod
    def load(cls, path: Path) -> RunnerState:
        """The state written last, or a fresh one."""
        try:
            raw = json.loads(path.read_text())
        except (OSError, ValueError):
            return cls()
        known = {k: v for k, v in raw.items() if k in cls.__dataclass_fields__}
        return cls(**known)

    def save(self, path: Path) -> None:
        """Write atomically (the charm and the exporter may read it at any time)."""
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_suffix(".partial")
        partial.write_text(json.dumps(asdict(self), indent=1, sort_keys=True))
        os.replace(partial, path)


def _quoted(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _time(value: str) -> datetime | None:
    return datetime.fromisoformat(value) if value else None


def _error_text(err: Exception) -> str:
    """CrateDB's own message when it sent one, else the exception's; one line."""
    if isinstance(err, urllib.error.HTTPError):
        try:
            body = json.loads(err.read())
            return str(body["error"]["message"]).splitlines()[0][:300]
        except (OSError, ValueError, KeyError, TypeError):
            pass
    return f"{type(err).__name__}: {err}".splitlines()[0][:300]


def snapshots(sql: Sql) -> list[Snapshot]:
    """The repository's snapshots, oldest first."""
    rows = sql(
        "SELECT name, state, started FROM sys.snapshots WHERE repository = ? ORDER BY started",
        [REPOSITORY],
    )
    return [
        Snapshot(str(name), str(state), datetime.fromtimestamp(int(started) / 1000, UTC))
        for name, state, started in rows
    ]


def run_once(
    sql: Sql,
    schedule: Schedule,
    retention: Retention,
    state: RunnerState,
    now: datetime,
    snapshot_sql: Sql | None = None,
) -> RunnerState:
    """One look: snapshot when due, prune, and say what happened."""
    state.schedule = schedule.text
    try:
        existing = snapshots(sql)
        last_failure = _time(state.last_attempt) if state.failed else None
        if is_due(schedule, now, existing, last_failure):
            name = snapshot_name(now)
            state.last_attempt = now.isoformat()
            (snapshot_sql or sql)(
                f"CREATE SNAPSHOT {_quoted(REPOSITORY)}.{_quoted(name)} ALL "
                "WITH (wait_for_completion = true)",
                [],
            )
            made = {s.name: s.state for s in snapshots(sql)}.get(name, "MISSING")
            if made != "SUCCESS":
                raise RuntimeError(f"snapshot {name} ended {made}")
            state.last_success, state.last_snapshot = now.isoformat(), name
            state.failed, state.error = False, ""
            print(f"snapshot {name} made", flush=True)
            existing = snapshots(sql)
        for name in to_prune(retention, now, existing):
            if not name.startswith(PREFIX):
                continue  # never: to_prune keeps to its own; checked twice all the same
            sql(f"DROP SNAPSHOT {_quoted(REPOSITORY)}.{_quoted(name)}", [])
            state.pruned = [*state.pruned[-19:], name]
            print(f"snapshot {name} pruned ({retention.text})", flush=True)
    except (OSError, ValueError, KeyError, RuntimeError) as err:
        state.failed, state.error = True, _error_text(err)
        print(f"scheduled backup failed: {state.error}", file=sys.stderr, flush=True)
    return state


def main(argv: list[str]) -> None:
    """Run forever (Pebble restarts it if it dies)."""
    crate_url, state_file, schedule_text, retention_text = argv
    schedule = parse_schedule(schedule_text)
    if schedule is None:
        raise SystemExit("no schedule given")
    retention = parse_retention(retention_text)
    sql = http_sql(crate_url)
    snapshot_sql = http_sql(crate_url, timeout=SNAPSHOT_TIMEOUT)
    path = Path(state_file)
    state = RunnerState.load(path)
    if state.schedule != schedule.text:
        state.error, state.failed = "", False  # a new schedule starts with a clean slate
    while True:
        state = run_once(sql, schedule, retention, state, datetime.now(UTC), snapshot_sql)
        state.save(path)
        time.sleep(POLL)


if __name__ == "__main__":
    main(sys.argv[1:])
