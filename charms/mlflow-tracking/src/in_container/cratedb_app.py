"""MLflow on CrateDB as the charm's server runs it: what it changes in mlflow-cratedb 3.12.0.

This file runs in the workload container, never in the charm: the charm pushes
it, with a ``.dist-info`` that registers two MLflow apps, into a folder on the
server's ``PYTHONPATH``: ``cratedb`` (auth off) and ``cratedb-basic-auth``.
The server runs ``mlflow-cratedb server --app-name <one of them>``; on any
other store this module is never loaded. Each uvicorn worker builds its app
with ``create_app`` or ``create_auth_app``, which apply every change below
first. What changes, and why:

1. **The workers are patched.** ``mlflow-cratedb`` patches MLflow in the CLI's
   process and names its own app for the uvicorn workers, which import it
   again. ``--app-name basic-auth`` replaces that app, so the workers never
   import ``mlflow_cratedb`` and every call fails ("unsupported URI
   'crate://'"). Both apps here import it first.
2. **Refreshes where MLflow needs them, not after every row.** CrateDB shows
   a write to queries only after a ``REFRESH TABLE`` (about 20 ms after a
   write, measured on 6.4.0 here); reads by the whole primary key ("Get") see
   every write at once. mlflow-cratedb refreshes after every row SQLAlchemy
   inserts, updates or deletes: a ``log_metric`` paid two refreshes, a
   ``log_batch`` of 1,000 metrics 1,000. Here those listeners are removed, and:

   - the tables a training loop writes on every step (``HOT``: ``metrics``,
     ``latest_metrics``) are refreshed *before* any statement that reads them
     other than a Get (``before_execute`` on every engine, ORM or not), never
     after a write. ``IN`` lists of strings on their primary-key columns are
     rendered as literals, which CrateDB runs as a Get (with parameters it
     runs ``= ANY(?)``, a search), so that ``log_metric``'s own lookups of
     ``latest_metrics`` need no refresh;
   - every other table is refreshed after each flush that wrote it (one
     ``REFRESH TABLE`` naming them all), and after an ORM ``INSERT``/
     ``UPDATE``/``DELETE`` statement, which no row listener ever saw.

   What a call wrote is returned by the very next read, on any unit (a
   write-then-read test checks it on CrateDB and PostgreSQL).
3. **The auth tables are made by DDL.** MLflow makes them with Alembic
   migrations, which CrateDB cannot run (no transactions, no unique or
   foreign keys). ``AUTH_DDL`` creates the same tables and columns as
   MLflow 3.12's auth models, ``IF NOT EXISTS``, in the store's schema; every
   unit shares them, so every unit knows the same users and permissions.
4. **Ids.** CrateDB has no autoincrement: a new auth row gets a random 31-bit
   id (a collision, about one in a billion per pair of rows, fails that one
   write with a duplicate-key error).
5. **Auth reads a run's row, not the whole run.** To check a call on a run,
   MLflow's auth app loads the run with its metrics, params, tags and inputs
   (``get_run``) and keeps only its experiment id; on CrateDB that load read
   ``latest_metrics`` by search, a refresh on every ``log_metric``. Its
   tracking store here answers ``get_run`` with the run's row alone (a Get):
   the run id and experiment id, which is all the auth app reads.
6. **Uniqueness.** A check before each insert on the auth tables
   mlflow-cratedb does not cover, as it does for users and permissions.
7. **No ping before a statement.** Each time a session took a connection,
   MLflow's engine sent ``SELECT 1`` (``pool_pre_ping``): one HTTP round trip
   of a ``log_metric``'s seven, four of twenty with auth. The crate client has
   no connection that could go stale for a ping to find (urllib3 reconnects,
   and a server that is down fails the statement as it failed the ping), so
   the engine here does not ping. mlflow-cratedb's ``SET
   error_on_unknown_object_key=false`` at each checkout stays: over the
   client's keep-alive connection CrateDB 6.4 keeps it for the statements
   that follow (a test shows it), and trace searches need it.
"""

from __future__ import annotations

import functools
import re
import secrets
from typing import Any

AUTH_DDL = (
    """CREATE TABLE IF NOT EXISTS "users" (
        "id" INTEGER PRIMARY KEY, "username" TEXT, "password_hash" TEXT,
        "is_admin" BOOLEAN DEFAULT false)""",
    """CREATE TABLE IF NOT EXISTS "experiment_permissions" (
        "id" INTEGER PRIMARY KEY, "experiment_id" TEXT NOT NULL,
        "user_id" INTEGER NOT NULL, "permission" TEXT)""",
    """CREATE TABLE IF NOT EXISTS "registered_model_permissions" (
        "id" INTEGER PRIMARY KEY, "workspace" TEXT NOT NULL DEFAULT 'default',
        "name" TEXT NOT NULL, "user_id" INTEGER NOT NULL, "permission" TEXT)""",
    """CREATE TABLE IF NOT EXISTS "scorer_permissions" (
        "id" INTEGER PRIMARY KEY, "experiment_id" TEXT NOT NULL,
        "scorer_name" TEXT NOT NULL, "user_id" INTEGER NOT NULL, "permission" TEXT)""",
    """CREATE TABLE IF NOT EXISTS "gateway_secret_permissions" (
        "id" INTEGER PRIMARY KEY, "secret_id" TEXT NOT NULL,
        "user_id" INTEGER NOT NULL, "permission" TEXT)""",
    """CREATE TABLE IF NOT EXISTS "gateway_endpoint_permissions" (
        "id" INTEGER PRIMARY KEY, "endpoint_id" TEXT NOT NULL,
        "user_id" INTEGER NOT NULL, "permission" TEXT)""",
    """CREATE TABLE IF NOT EXISTS "gateway_model_definition_permissions" (
        "id" INTEGER PRIMARY KEY, "model_definition_id" TEXT NOT NULL,
        "user_id" INTEGER NOT NULL, "permission" TEXT)""",
    """CREATE TABLE IF NOT EXISTS "workspace_permissions" (
        "workspace" TEXT NOT NULL, "user_id" INTEGER NOT NULL, "permission" TEXT NOT NULL,
        PRIMARY KEY ("workspace", "user_id"))""",
    """CREATE TABLE IF NOT EXISTS "roles" (
        "id" INTEGER PRIMARY KEY, "name" TEXT NOT NULL, "workspace" TEXT NOT NULL,
        "description" TEXT)""",
    """CREATE TABLE IF NOT EXISTS "role_permissions" (
        "id" INTEGER PRIMARY KEY, "role_id" INTEGER NOT NULL, "resource_type" TEXT NOT NULL,
        "resource_pattern" TEXT NOT NULL, "permission" TEXT NOT NULL)""",
    """CREATE TABLE IF NOT EXISTS "user_role_assignments" (
        "id" INTEGER PRIMARY KEY, "user_id" INTEGER NOT NULL, "role_id" INTEGER NOT NULL)""",
)

# Unique columns of the auth models that mlflow-cratedb 3.12.0 does not check.
UNIQUE = {
    "SqlScorerPermission": ("experiment_id", "scorer_name", "user_id"),
    "SqlGatewaySecretPermission": ("secret_id", "user_id"),
    "SqlGatewayEndpointPermission": ("endpoint_id", "user_id"),
    "SqlGatewayModelDefinitionPermission": ("model_definition_id", "user_id"),
    "SqlRole": ("workspace", "name"),
    "SqlRolePermission": ("role_id", "resource_type", "resource_pattern"),
    "SqlUserRoleAssignment": ("user_id", "role_id"),
}


# The tables a training loop writes on every step: refreshed before reads, not after writes.
HOT = frozenset({"metrics", "latest_metrics"})
_READS = re.compile(r"^\s*\(?\s*(SELECT|UPDATE|DELETE|WITH)\b", re.IGNORECASE)
_HOT_NAME = re.compile(r'(?<![\w"])"?(' + "|".join(sorted(HOT)) + r')"?(?![\w"])')


def _is_crate(bind: Any) -> bool:
    return getattr(getattr(bind, "dialect", None), "name", "") == "crate"


def _quoted(table: Any) -> str:
    schema = getattr(table, "schema", None)
    return f'"{schema}"."{table.name}"' if schema else f'"{table.name}"'


def _refresh(session: Any, tables: set[str]) -> None:
    import sqlalchemy as sa

    tables = tables - HOT
    if tables and _is_crate(session.get_bind()):
        names = ", ".join(f'"{name}"' for name in sorted(tables))
        session.connection().execute(sa.text(f"REFRESH TABLE {names}"))


def _refresh_flushed(session: Any, _flush_context: Any) -> None:
    """After a flush: refresh every table it inserted into, updated or deleted from."""
    written = {
        obj.__table__.name
        for obj in (*session.new, *session.dirty, *session.deleted)
        if hasattr(obj, "__table__")
    }
    _refresh(session, written)


def _refresh_after_orm_dml(state: Any) -> Any:
    """An ORM INSERT/UPDATE/DELETE statement: run it, then refresh its table."""
    if not (state.is_insert or state.is_update or state.is_delete):
        return None
    result = state.invoke_statement().freeze()
    table = getattr(state.statement, "table", None)
    if table is not None and hasattr(table, "name"):
        _refresh(state.session, {table.name})
    return result()


def _hot_tables(statement: Any) -> dict[str, Any]:
    """The HOT tables a statement reads, by name (every column's and FROM's table)."""
    from sqlalchemy import Table
    from sqlalchemy.sql import visitors

    found: dict[str, Any] = {}
    for element in visitors.iterate(statement):
        table = element if isinstance(element, Table) else getattr(element, "table", None)
        if isinstance(table, Table) and table.name in HOT:
            found.setdefault(table.name, table)
    return found


def _primary_key_lookup(statement: Any) -> bool:
    """True when CrateDB runs ``statement`` as a Get, which sees every write.

    That is: one table, a WHERE of only ``=`` (a parameter) or ``IN`` (a list
    of strings) on every primary-key column. Such ``IN`` lists are marked to be
    rendered as literals (CrateDB plans ``IN (?, ?)`` as a search).
    """
    from sqlalchemy import Column, String, Table
    from sqlalchemy.sql import Delete, Select, Update, operators
    from sqlalchemy.sql.elements import BinaryExpression, BindParameter, BooleanClauseList

    if isinstance(statement, Select):
        sources = statement.get_final_froms()
        table = sources[0] if len(sources) == 1 else None
    elif isinstance(statement, (Update, Delete)):
        table = statement.table
    else:
        return False
    where = statement.whereclause
    if not isinstance(table, Table) or where is None:
        return False
    conditions = (
        list(where.clauses)
        if isinstance(where, BooleanClauseList) and where.operator is operators.and_
        else [where]
    )
    keys = {column.name for column in table.primary_key.columns}
    named: set[str] = set()
    lists: list[Any] = []
    for condition in conditions:
        if not isinstance(condition, BinaryExpression):
            return False
        left, right = condition.left, condition.right
        if not (
            isinstance(left, Column)
            and getattr(left.table, "name", None) == table.name
            and left.name in keys
            and isinstance(right, BindParameter)
        ):
            return False
        if condition.operator is operators.eq and not right.expanding:
            named.add(left.name)
        elif (
            condition.operator is operators.in_op
            and right.expanding
            and isinstance(right.type, String)
        ):
            named.add(left.name)
            lists.append(right)
        else:
            return False
    if named != keys:
        return False
    for values in lists:
        values.literal_execute = True
    return True


def _refresh_before_reading(
    connection: Any, statement: Any, _multiparams: Any, _params: Any, _options: Any
) -> None:
    """Before a statement that reads a HOT table other than by a Get: refresh it."""
    if not _is_crate(connection):
        return
    if isinstance(statement, str) or getattr(statement, "is_text", False):
        text = statement if isinstance(statement, str) else str(statement.text)
        if not _READS.match(text):
            return
        tables = ", ".join(f'"{name}"' for name in sorted(set(_HOT_NAME.findall(text))))
    elif any(getattr(statement, kind, False) for kind in ("is_select", "is_update", "is_delete")):
        hot = _hot_tables(statement)
        if not hot or _primary_key_lookup(statement):
            return
        tables = ", ".join(_quoted(hot[name]) for name in sorted(hot))
    else:  # INSERT, DDL: nothing read
        return
    if tables:
        cursor = connection.connection.dbapi_connection.cursor()
        try:
            cursor.execute(f"REFRESH TABLE {tables}")
        finally:
            cursor.close()


def _new_id(_mapper: Any, _connection: Any, target: Any) -> None:
    if hasattr(type(target), "id") and getattr(target, "id", None) is None:
        target.id = secrets.randbelow(2**31 - 1) + 1


def _engine_without_pings(create_engine: Any) -> Any:
    """mlflow-cratedb's ``create_sqlalchemy_engine``, without a ping per checkout on CrateDB."""

    def create(db_uri: str) -> Any:
        engine = create_engine(db_uri)
        if _is_crate(engine):
            # SQLAlchemy reads the flag at each checkout; there is no public setter.
            engine.pool._pre_ping = False
        return engine

    return create


@functools.cache
def patch() -> None:
    """Every change above (idempotent); imports mlflow_cratedb first."""
    import mlflow_cratedb  # noqa: F401 (its import patches MLflow for crate://)
    import sqlalchemy as sa
    from mlflow.server.auth.db import models
    from mlflow.server.auth.db import utils as auth_db_utils
    from mlflow.store.db import utils as db_utils
    from mlflow.store.db.base_sql_model import Base
    from mlflow_cratedb.patch.mlflow.model import do_refresh
    from sqlalchemy import event
    from sqlalchemy.engine import Engine
    from sqlalchemy.event import listen
    from sqlalchemy.orm import Session
    from sqlalchemy_cratedb.support import check_uniqueness_factory

    for mapper in Base.registry.mappers:
        for name in ("after_insert", "after_update", "after_delete"):
            if event.contains(mapper.class_, name, do_refresh):
                event.remove(mapper.class_, name, do_refresh)
    listen(Session, "after_flush", _refresh_flushed)
    listen(Session, "do_orm_execute", _refresh_after_orm_dml)
    listen(Engine, "before_execute", _refresh_before_reading)
    # mlflow-cratedb's engine (MLflow's, plus its SET at each checkout), without the ping.
    db_utils.create_sqlalchemy_engine = _engine_without_pings(db_utils.create_sqlalchemy_engine)

    migrate_if_needed = auth_db_utils.migrate_if_needed

    def create_or_migrate(engine: Any, revision: str) -> None:
        if not _is_crate(engine):
            migrate_if_needed(engine, revision)
            return
        with engine.connect() as connection:
            for statement in AUTH_DDL:
                connection.execute(sa.text(statement))
            connection.commit()

    auth_db_utils.migrate_if_needed = create_or_migrate
    for mapper in models.Base.registry.mappers:
        cls = mapper.class_
        listen(cls, "before_insert", _new_id)
        if cls.__name__ in UNIQUE:
            listen(cls, "before_insert", check_uniqueness_factory(cls, *UNIQUE[cls.__name__]))


class _AuthTrackingStore:
    """The tracking store as the auth app sees it: ``get_run`` reads the run's row only."""

    def __init__(self, store: Any):
        self._store = store

    def __getattr__(self, name: str) -> Any:
        return getattr(self._store, name)

    def get_run(self, run_id: str) -> Any:
        from types import SimpleNamespace

        with self._store.ManagedSessionMaker() as session:
            run = self._store._get_run(session=session, run_uuid=run_id, eager=False)
            info = SimpleNamespace(run_id=run.run_uuid, experiment_id=str(run.experiment_id))
        return SimpleNamespace(info=info)


def create_app() -> Any:
    """MLflow's own server app in a worker patched for CrateDB (app ``cratedb``)."""
    patch()
    from mlflow.server.fastapi_app import app

    return app


def create_auth_app() -> Any:
    """MLflow's basic-auth app in a worker patched for CrateDB (app ``cratedb-basic-auth``)."""
    patch()
    from mlflow.server import auth, handlers
    from mlflow.server.auth import create_app as basic_auth_app

    tracking_store = handlers._get_tracking_store
    auth._get_tracking_store = lambda: _AuthTrackingStore(tracking_store())  # type: ignore[attr-defined]
    return basic_auth_app()
