"""MLflow's basic-auth app on a CrateDB store: the part mlflow-cratedb 3.12.0 leaves out.

This file runs in the workload container, never in the charm: the charm pushes
it, with a ``.dist-info`` that registers ``create_app`` as the MLflow app
``cratedb-basic-auth``, into a folder on the server's ``PYTHONPATH``. The
server then runs ``mlflow-cratedb server --app-name cratedb-basic-auth``.
Every change below applies to ``crate://`` databases only; on any other store
this module is never loaded.

What it changes, and why:

1. **The workers are patched.** ``mlflow-cratedb`` patches MLflow in the CLI's
   process and names its own app for the uvicorn workers, which import it
   again. ``--app-name basic-auth`` replaces that app, so the workers never
   import ``mlflow_cratedb`` and every call fails ("unsupported URI
   'crate://'"). ``create_app`` imports it first, then builds MLflow's own
   basic-auth app unchanged.
2. **The auth tables are made by DDL.** MLflow makes them with Alembic
   migrations, which CrateDB cannot run (no transactions, no unique or
   foreign keys). ``AUTH_DDL`` creates the same tables and columns as
   MLflow 3.12's auth models, ``IF NOT EXISTS``, in the store's schema; every
   unit shares them, so every unit knows the same users and permissions.
3. **Ids.** CrateDB has no autoincrement: a new row gets a random 31-bit id
   (a collision, about one in a billion per pair of rows, fails that one
   write with a duplicate-key error).
4. **Uniqueness.** A check before each insert on the auth tables
   mlflow-cratedb does not cover, as it does for users and permissions.
5. **Reads after writes.** ``REFRESH TABLE`` after each insert, update and
   delete on the auth tables, as mlflow-cratedb does for the tracking tables:
   a user created is found by the next request.
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


def _is_crate(engine: Any) -> bool:
    return engine.dialect.name == "crate"


def _new_id(_mapper: Any, _connection: Any, target: Any) -> None:
    if hasattr(type(target), "id") and getattr(target, "id", None) is None:
        target.id = secrets.randbelow(2**31 - 1) + 1


@functools.cache
def patch() -> None:
    """Patch MLflow's auth store for CrateDB (idempotent); imports mlflow_cratedb first."""
    import mlflow_cratedb  # noqa: F401 (its import patches MLflow for crate://)
    import sqlalchemy as sa
    from mlflow.server.auth.db import models
    from mlflow.server.auth.db import utils as auth_db_utils
    from mlflow_cratedb.patch.mlflow.model import do_refresh
    from sqlalchemy.event import listen
    from sqlalchemy_cratedb.support import check_uniqueness_factory

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
        for event in ("after_insert", "after_update", "after_delete"):
            listen(cls, event, do_refresh)


def create_app() -> Any:
    """MLflow's basic-auth app in a worker patched for CrateDB (app ``cratedb-basic-auth``)."""
    patch()
    from mlflow.server.auth import create_app as basic_auth_app

    return basic_auth_app()
