"""A CrateDB store's tables against this image's mlflow-cratedb (run in the container).

    python3 cratedb_schema.py state     # prints the state as schema.py does
    python3 cratedb_schema.py upgrade   # brings older tables to this image's DDL

mlflow-cratedb has no migrations: its server runs its DDL file
(``mlflow_cratedb/adapter/ddl/cratedb.sql``, ``CREATE TABLE IF NOT EXISTS``)
when a table is missing and never alters one that exists. A store written by
mlflow-cratedb 2.14.1 therefore keeps its 2.x tables under a 3.x server, which
refuses to start ("Column workspace unknown"): 3.12 added ``workspace`` to the
experiments and the five model-registry tables (in their primary keys), ``step``
to ``inputs``, and reshaped ``trace_info``.

``upgrade`` brings each existing table whose columns differ from the image's
DDL forward by copy: the DDL's table created as ``<table>__new``, every row
copied (columns both have; a new column takes its DDL default, as MLflow's own
migration gives existing rows), the row counts compared, then
``<table>`` renamed ``<table>__premigration`` and the copy renamed into its
place. The old tables stay (drop them once the new server is verified); a
count that differs (rows a new primary key would merge, or a NULL a new NOT
NULL refuses) stops before any rename, naming the table. ``experiments``
goes last: its ``workspace`` column is what ``state`` reads. Then the DDL
runs as the server would run it, for the tables 2.x never had.

The URI comes from MLFLOW_BACKEND_STORE_URI (``crate://...?schema=...``) and
never reaches argv or output.
"""

from __future__ import annotations

import json
import os
import re
import sys
from typing import Any

SUFFIX_NEW = "__new"
SUFFIX_OLD = "__premigration"
# Values 3.x reads differently from what 2.x wrote, by (table, column).
REWRITES = {
    ("trace_info", "status"): (
        "CASE WHEN status IS NULL OR status = 'TRACE_STATUS_UNSPECIFIED' "
        "THEN 'STATE_UNSPECIFIED' ELSE status END"
    ),
}
_TABLE = re.compile(r'CREATE TABLE IF NOT EXISTS "?([a-z_]+)"?', re.IGNORECASE)


def ddl() -> dict[str, str]:
    """Table -> its CREATE statement, from this image's mlflow-cratedb, in file order."""
    import sqlparse
    from mlflow_cratedb.adapter.setup_db import read_ddl

    tables: dict[str, str] = {}
    for statement in sqlparse.split(read_ddl("cratedb.sql")):
        match = _TABLE.search(statement)
        if match:
            tables[match.group(1)] = statement.strip().rstrip(";")
    return tables


def head() -> str:
    """What a store at this image's tables is called (the state's ``head``)."""
    from importlib.metadata import version

    return f"mlflow-cratedb {version('mlflow-cratedb')}"


class Store:
    """The store's schema, through SQLAlchemy and the image's crate dialect."""

    def __init__(self, uri: str):
        import sqlalchemy

        self._sa = sqlalchemy
        self.engine = sqlalchemy.create_engine(uri)
        self.schema = str(self.engine.url.query.get("schema") or "doc")

    def run(self, statement: str, **params: Any) -> list[tuple]:
        """One statement, committed; its rows."""
        with self.engine.connect() as connection:
            result = connection.execute(self._sa.text(statement), params)
            rows = [tuple(r) for r in result] if result.returns_rows else []
            connection.commit()
        return rows

    def columns(self, table: str) -> list[str]:
        """The table's top-level columns, in order."""
        rows = self.run(
            "SELECT column_name FROM information_schema.columns WHERE table_schema = :s "
            "AND table_name = :t AND column_name NOT LIKE '%[%' ORDER BY ordinal_position",
            s=self.schema,
            t=table,
        )
        return [str(r[0]) for r in rows]

    def generated(self, table: str) -> set[str]:
        """The table's generated columns (never copied: CrateDB computes them)."""
        rows = self.run(
            "SELECT column_name FROM information_schema.columns WHERE table_schema = :s "
            "AND table_name = :t AND is_generated <> 'NEVER'",
            s=self.schema,
            t=table,
        )
        return {str(r[0]) for r in rows}

    def tables(self) -> set[str]:
        """Every table in the store's schema."""
        rows = self.run(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = :s",
            s=self.schema,
        )
        return {str(r[0]) for r in rows}

    def count(self, table: str) -> int:
        """Rows in the table, once refreshed (names come from the image's DDL)."""
        self.run(f'REFRESH TABLE "{table}"')
        return int(self.run(f'SELECT count(*) FROM "{table}"')[0][0])  # noqa: S608


def outdated(store: Store, statements: dict[str, str]) -> list[str]:
    """The existing tables whose columns differ from the DDL's, ``experiments`` last."""
    present = store.tables()
    found = []
    for table in statements:
        if table not in present:
            continue
        probe = f"{table}{SUFFIX_NEW}"
        if probe in present:
            store.run(f'DROP TABLE "{probe}"')  # a copy an interrupted run left
        store.run(_renamed(statements[table], table, probe))
        try:
            wanted = set(store.columns(probe))
        finally:
            store.run(f'DROP TABLE "{probe}"')
        if set(store.columns(table)) != wanted:
            found.append(table)
    return sorted(found, key=lambda t: t == "experiments")


def _renamed(statement: str, table: str, new_name: str) -> str:
    return _TABLE.sub(f'CREATE TABLE IF NOT EXISTS "{new_name}"', statement, count=1)


def bring_forward(store: Store, table: str, statement: str) -> int:
    """Copy one table into the DDL's shape and swap it in; the rows copied."""
    new, old = f"{table}{SUFFIX_NEW}", f"{table}{SUFFIX_OLD}"
    if old in store.tables():
        raise RuntimeError(f"{old} exists already: a table cannot be set aside twice")
    store.run(_renamed(statement, table, new))
    try:
        have = set(store.columns(table))
        wanted = [c for c in store.columns(new) if c not in store.generated(new)]
        common = [c for c in wanted if c in have]
        values = ", ".join(REWRITES.get((table, c), f'"{c}"') for c in common)
        names = ", ".join(f'"{c}"' for c in common)
        # Names from the image's DDL and the store's catalogue, never from a client.
        store.run(f'INSERT INTO "{new}" ({names}) SELECT {values} FROM "{table}"')  # noqa: S608
        before, after = store.count(table), store.count(new)
        if before != after:
            raise RuntimeError(
                f"{table}: {before} rows, {after} copied (duplicates its new primary key "
                "merges, or NULLs a new NOT NULL refuses): nothing renamed"
            )
    except Exception:
        store.run(f'DROP TABLE IF EXISTS "{new}"')
        raise
    store.run(f'ALTER TABLE "{table}" RENAME TO "{old}"')
    try:
        store.run(f'ALTER TABLE "{new}" RENAME TO "{table}"')
    except Exception:
        store.run(f'ALTER TABLE "{old}" RENAME TO "{table}"')
        raise
    return after


def state(uri: str) -> dict[str, Any]:
    """As schema.py prints it: ``current`` names the layout the tables have.

    Read from one marker, cheap enough for every start: ``experiments`` has
    ``workspace`` from 3.x on (``upgrade`` brings it forward last).
    """
    store = Store(uri)
    try:
        if "experiments" not in store.tables():
            return {"current": None, "head": head(), "known": True, "tables": False}
        layout_3 = "workspace" in store.columns("experiments")
    finally:
        store.engine.dispose()
    current = head() if layout_3 else "mlflow-cratedb 2.x"
    return {"current": current, "head": head(), "known": True, "tables": True}


def upgrade(uri: str) -> dict[str, Any]:
    """Bring every outdated table forward, then create the missing ones; what was done."""
    store = Store(uri)
    statements = ddl()
    done: dict[str, int] = {}
    try:
        for table in outdated(store, statements):
            done[table] = bring_forward(store, table, statements[table])
            print(f"{table}: {done[table]} rows copied into the new layout", file=sys.stderr)
        missing = [t for t in statements if t not in store.tables()]
        for table in missing:
            store.run(statements[table])
    finally:
        store.engine.dispose()
    return {"copied": done, "created": missing, "kept": [f"{t}{SUFFIX_OLD}" for t in done]}


def main(argv: list[str]) -> int:
    """``state`` or ``upgrade`` the store named by MLFLOW_BACKEND_STORE_URI."""
    uri = os.environ.get("MLFLOW_BACKEND_STORE_URI", "")
    if not uri or not argv or argv[0] not in ("state", "upgrade"):
        print("usage: cratedb_schema.py state|upgrade (URI in the environment)", file=sys.stderr)
        return 2
    try:
        result = state(uri) if argv[0] == "state" else upgrade(uri)
    except Exception as err:  # what went wrong, without the URI (it holds a password)
        said = str(err).replace(uri, "<uri>")
        print(f"cratedb_schema.py: {type(err).__name__}: {said}", file=sys.stderr)
        return 1
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
