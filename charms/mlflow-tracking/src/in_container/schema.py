"""Where the metadata store's schema stands against this image's MLflow (run in the container).

    python3 schema.py          # MLFLOW_BACKEND_STORE_URI in the environment

Prints one JSON object and changes nothing:

- ``current``: the store's Alembic revision, null when it has none;
- ``head``: the newest revision this image's MLflow knows;
- ``known``: ``current`` is one of this MLflow's revisions (false: the store
  was written by a newer MLflow than the image's);
- ``tables``: the store holds MLflow's tables (false: a new, empty store,
  which the server sets up itself).

A CrateDB store has no revision: ``cratedb_schema.py`` names its tables'
layout instead (an mlflow-cratedb 2.x layout, or this image's).

The charm runs it before a server starts (``migration.next_step`` decides).
It uses the image's MLflow and SQLAlchemy; the URI never reaches argv or output.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any


def _sqlite_missing(uri: str) -> bool:
    """True for a SQLite store whose file does not exist yet (connecting would create it)."""
    if not uri.startswith("sqlite:///"):
        return False
    return not Path(uri.removeprefix("sqlite:///").split("?", 1)[0]).exists()


def state(uri: str) -> dict[str, Any]:
    """The store's schema state, as printed."""
    if uri.startswith("crate://"):
        # mlflow-cratedb has no Alembic revisions: its tables' layout stands in.
        import cratedb_schema

        return cratedb_schema.state(uri)
    import sqlalchemy
    from alembic.runtime.migration import MigrationContext
    from alembic.script import ScriptDirectory
    from alembic.util import CommandError

    # MLflow's own Alembic configuration (the function ``mlflow db upgrade`` uses;
    # it has this name in MLflow 2.x and 3.x).
    from mlflow.store.db.utils import _get_alembic_config
    from sqlalchemy.pool import NullPool

    script = ScriptDirectory.from_config(_get_alembic_config(""))
    heads = script.get_heads()
    if len(heads) != 1:
        raise RuntimeError(f"this MLflow has {len(heads)} schema heads, expected 1")
    if _sqlite_missing(uri):
        return {"current": None, "head": heads[0], "known": True, "tables": False}
    engine = sqlalchemy.create_engine(uri, poolclass=NullPool)
    try:
        with engine.connect() as connection:
            current = MigrationContext.configure(connection).get_current_revision()
            tables = "experiments" in sqlalchemy.inspect(connection).get_table_names()
    finally:
        engine.dispose()
    known = True
    if current is not None:
        try:
            known = script.get_revision(current) is not None
        except CommandError:
            known = False
    return {"current": current, "head": heads[0], "known": known, "tables": tables}


def main() -> int:
    """Print the state of the store named by MLFLOW_BACKEND_STORE_URI."""
    uri = os.environ.get("MLFLOW_BACKEND_STORE_URI", "")
    if not uri:
        print("schema.py: MLFLOW_BACKEND_STORE_URI is not set", file=sys.stderr)
        return 2
    try:
        found = state(uri)
    except Exception as err:  # what went wrong, without the URI (it holds a password)
        print(
            f"schema.py: {type(err).__name__}: {str(err).replace(uri, '<uri>')}", file=sys.stderr
        )
        return 1
    print(json.dumps(found))
    return 0


if __name__ == "__main__":
    sys.exit(main())
