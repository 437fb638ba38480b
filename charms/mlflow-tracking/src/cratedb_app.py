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
2. **One REFRESH per flush, not per row.** mlflow-cratedb runs ``REFRESH
   TABLE`` after every row SQLAlchemy inserts, updates or deletes: a
   ``log_batch`` of 1,000 metrics was 1,000 refreshes of ``metrics``. Here
   those listeners are removed, and after each flush one ``REFRESH TABLE``
   names every table the flush wrote; an ORM ``INSERT``/``UPDATE``/``DELETE``
   statement (which no row listener ever saw) is followed by a refresh of its
   table too. What a call wrote is readable by the time it returns, as
   before (a write-then-read test checks it on CrateDB and PostgreSQL).
3. **The auth tables are made by DDL.** MLflow makes them with Alembic
   migrations, which CrateDB cannot run (no transactions, no unique or
   foreign keys). ``AUTH_DDL`` creates the same tables and columns as
   MLflow 3.12's auth models, ``IF NOT EXISTS``, in the store's schema; every
   unit shares them, so every unit knows the same users and permissions.
4. **Ids.** CrateDB has no autoincrement: a new auth row gets a random 31-bit
   id (a collision, about one in a billion per pair of rows, fails that one
   write with a duplicate-key error).
5. **Uniqueness.** A check before each insert on the auth tables
   mlflow-cratedb does not cover, as it does for users and permissions.
"""

from __future__ import annotations

import functools
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


def _is_crate(bind: Any) -> bool:
    return getattr(getattr(bind, "dialect", None), "name", "") == "crate"


def _refresh(session: Any, tables: set[str]) -> None:
    import sqlalchemy as sa

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


def _new_id(_mapper: Any, _connection: Any, target: Any) -> None:
    if hasattr(type(target), "id") and getattr(target, "id", None) is None:
        target.id = secrets.randbelow(2**31 - 1) + 1


@functools.cache
def patch() -> None:
    """Every change above (idempotent); imports mlflow_cratedb first."""
    import mlflow_cratedb  # noqa: F401 (its import patches MLflow for crate://)
    import sqlalchemy as sa
    from mlflow.server.auth.db import models
    from mlflow.server.auth.db import utils as auth_db_utils
    from mlflow.store.db.base_sql_model import Base
    from mlflow_cratedb.patch.mlflow.model import do_refresh
    from sqlalchemy import event
    from sqlalchemy.event import listen
    from sqlalchemy.orm import Session
    from sqlalchemy_cratedb.support import check_uniqueness_factory

    for mapper in Base.registry.mappers:
        for name in ("after_insert", "after_update", "after_delete"):
            if event.contains(mapper.class_, name, do_refresh):
                event.remove(mapper.class_, name, do_refresh)
    listen(Session, "after_flush", _refresh_flushed)
    listen(Session, "do_orm_execute", _refresh_after_orm_dml)

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


def create_app() -> Any:
    """MLflow's own server app in a worker patched for CrateDB (app ``cratedb``)."""
    patch()
    from mlflow.server.fastapi_app import app

    return app


def create_auth_app() -> Any:
    """MLflow's basic-auth app in a worker patched for CrateDB (app ``cratedb-basic-auth``)."""
    patch()
    from mlflow.server.auth import create_app as basic_auth_app

    return basic_auth_app()
