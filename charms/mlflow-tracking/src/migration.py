"""Whether a server may start on the metadata store, or its schema must move first: pure.

MLflow refuses to serve a store whose schema is older than its own ("Detected
out-of-date database schema"), and a schema it does not know was written by a
newer MLflow. Before a server starts, the charm reads the store's state
(``in_container/schema.py``) and ``next_step`` decides:

- a new store, or one at this MLflow's head: serve;
- a schema newer than the image's: Blocked, nothing touched (a downgrade);
- an older schema, on the leader:
  - embedded SQLite: migrate, after copying the file aside on the unit's
    storage; a failed migration puts the copy back, so the old image still
    serves it;
  - PostgreSQL or MySQL: Blocked until the operator has backed the database
    up with its charm's action and says go (``juju run ... migrate-store``):
    ``mlflow db upgrade`` is not transactional on MySQL, and on no store can
    the charm take the backup itself;
- an older schema on another unit: Waiting until the leader migrated it (the
  leader's peer data says so), never serving a schema it does not match.

A CrateDB store has no Alembic revision (mlflow-cratedb has no migrations):
``in_container/cratedb_schema.py`` names its tables' layout instead, and an
mlflow-cratedb 2.x layout is brought forward by copy, after the operator's go,
like PostgreSQL and MySQL (the cratedb charm's ``create-backup`` first).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from enum import Enum

from exceptions import CharmError, WaitingError
from state import StoreKind

MIGRATE_ACTION = "migrate-store"
# Each database charm's backup action, as its published charmcraft.yaml names it
# (postgresql-k8s and mysql-k8s: create-backup, after an s3 relation; cratedb too).
BACKUP_ACTION = "create-backup"


class Step(Enum):
    """What the charm does with the store before the server starts."""

    SERVE = "serve"
    MIGRATE = "migrate"


@dataclass(frozen=True)
class SchemaState:
    """The store's Alembic revision against the image's MLflow (see ``schema.py``)."""

    current: str | None
    head: str
    known: bool = True
    tables: bool = True

    @classmethod
    def parse(cls, text: str) -> SchemaState:
        """The script's JSON; ValueError for anything else."""
        try:
            raw = json.loads(text)
            current = raw["current"]
            head = raw["head"]
        except (ValueError, TypeError, KeyError) as err:
            raise ValueError(f"unreadable schema state: {err}") from None
        if not isinstance(head, str) or not (current is None or isinstance(current, str)):
            raise ValueError("unreadable schema state: revisions must be strings")
        return cls(current, head, bool(raw.get("known", True)), bool(raw.get("tables", True)))

    @property
    def step_name(self) -> str:
        """``<current> -> <head>``: what a migration would do, also what approves it."""
        return f"{self.current or 'none'} -> {self.head}"

    @property
    def newer(self) -> bool:
        """Written by an MLflow newer than the image's."""
        return self.current is not None and not self.known

    @property
    def behind(self) -> bool:
        """MLflow's tables at an older revision than the image's (or none at all)."""
        return self.tables and self.known and self.current != self.head


def next_step(
    state: SchemaState,
    kind: StoreKind,
    *,
    leader: bool,
    approved: str,
    database_app: str,
    app: str,
) -> Step:
    """SERVE or MIGRATE; CharmError (Blocked) or WaitingError when neither may happen yet.

    ``approved``: the ``step_name`` the operator said go for (the action), or "".
    """
    if state.newer:
        raise CharmError(
            f"the store's schema {state.current} is newer than this image's MLflow "
            f"({state.head}): refresh {app} back to the image that wrote it"
        )
    if not state.behind:
        return Step.SERVE
    if not leader:
        raise WaitingError(f"waiting for the leader to migrate the store ({state.step_name})")
    if kind is StoreKind.SQLITE or approved == state.step_name:
        return Step.MIGRATE
    raise CharmError(
        f"the {kind.label} store's schema must be migrated ({state.step_name}): back it up "
        f"(juju run {database_app}/leader {BACKUP_ACTION}), then juju run {app}/leader "
        f"{MIGRATE_ACTION}"
    )


def sqlite_copy_path(path: str, state: SchemaState) -> str:
    """Where the SQLite file is copied before a migration: beside it, named for the revision."""
    return f"{path}.before-{state.head}-from-{state.current or 'none'}"
