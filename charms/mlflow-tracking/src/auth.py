"""MLflow's basic-auth app: who the users are, where they live, and the secret they come from.

The server runs ``--app-name basic-auth`` (config ``auth``, on by default).
Three values live in one Juju secret the leader creates (label
``mlflow-auth``), shared by every unit and never in relation data or logs:

- ``admin-password``: the admin's (user ``admin``), revealed by the
  ``get-admin-password`` action, rotated by ``rotate-admin-password``.
- ``notebook-password``: the non-admin user ``notebook`` whose credentials
  notebooks receive through the Kubernetes Secret of the pod defaults.
- ``flask-secret-key``: the key MLflow's auth app signs its forms with; every
  unit must share it.

MLflow ships a well-known default admin password and creates the admin with
whatever ``admin_password`` its config file says at the first start. The
config file the charm writes always says the generated password, and the
leader creates or updates both users (``users_argv``) before the server
starts: the default password is never valid.

Users live in the metadata database when it is CrateDB, PostgreSQL or MySQL
(every unit sees the same users), and otherwise in SQLite on the unit's
storage.

CrateDB: ``--app-name basic-auth`` would replace mlflow-cratedb's app in the
server's workers, which then lack its patches (every call failed "unsupported
URI 'crate://'", measured with mlflow-cratedb 3.12.0), and MLflow's auth store
runs Alembic migrations CrateDB cannot run. So on CrateDB the server runs the
app ``cratedb-basic-auth`` (``cratedb_app.py``, pushed by the charm): the same
basic-auth app in workers patched for CrateDB, its tables made by DDL.
"""

from __future__ import annotations

import configparser
import hashlib
import io
import secrets
import shlex
from dataclasses import dataclass, field, replace
from enum import StrEnum

import ops

from constants import AUTH_SQLITE_FILE
from state import MetadataStore, StoreKind

SECRET_LABEL = "mlflow-auth"  # noqa: S105 (a label)
ADMIN_USER = "admin"
NOTEBOOK_USER = "notebook"


class Permission(StrEnum):
    """What a user may do with a resource nobody granted them anything on."""

    READ = "READ"
    EDIT = "EDIT"
    MANAGE = "MANAGE"
    NO_PERMISSIONS = "NO_PERMISSIONS"


@dataclass(frozen=True)
class AuthSettings:
    """Everything the auth app's config file and the user script need. Holds secrets."""

    admin_password: str = field(repr=False)
    notebook_password: str = field(repr=False)
    flask_secret_key: str = field(repr=False)
    database_uri: str = field(repr=False)
    default_permission: Permission = Permission.READ
    # Seconds a worker trusts a login it has checked (MLflow's auth cache; 0: off).
    # Each check otherwise costs a scrypt hash, ~0.13 s of CPU here (measured).
    cache_seconds: int = 30

    @property
    def shared_across_units(self) -> bool:
        """True when every unit reads the same users (not SQLite on a unit's storage)."""
        return not self.database_uri.startswith("sqlite:")

    @property
    def restart_digest(self) -> str:
        """What, when it changes, the server must restart for (not the passwords).

        The admin password in the config file is read only when the admin does
        not exist yet; a rotation changes the database, not the running server.
        """
        relevant = f"{self.database_uri}\n{self.default_permission}\n{self.cache_seconds}"
        return hashlib.sha256(relevant.encode()).hexdigest()[:16]


def users_database_uri(store: MetadataStore, sqlite_file: str = AUTH_SQLITE_FILE) -> str:
    """Where users live: the metadata database, or SQLite on storage beside an embedded one."""
    if store.kind is not StoreKind.SQLITE:
        return store.uri
    return f"sqlite:///{sqlite_file}"


def auth_ini(settings: AuthSettings) -> str:
    """The auth app's config file (``MLFLOW_AUTH_CONFIG_PATH``; pushed with mode 0600).

    MLflow reads it with configparser's default interpolation, where ``%`` is
    special: a database password quoted into the URI (``%40``...) would make
    the server fail to start. Every ``%`` is written as ``%%``.
    """
    values = {
        "default_permission": str(settings.default_permission),
        "database_uri": settings.database_uri,
        "admin_username": ADMIN_USER,
        "admin_password": settings.admin_password,
        "authorization_function": "mlflow.server.auth:authenticate_request_basic_auth",
        "auth_cache_ttl_seconds": str(settings.cache_seconds),
    }
    config = configparser.ConfigParser(interpolation=None)
    config["mlflow"] = {key: value.replace("%", "%%") for key, value in values.items()}
    out = io.StringIO()
    config.write(out)
    return out.getvalue()


# Creates each user, or sets its password when it differs; prints what it did.
# Reads the database from the config file, the passwords from the environment.
# The notebook user may also edit MLflow's Default experiment (id 0, made by the
# server, owned by nobody): a notebook that calls only mlflow.start_run() logs
# its runs there, and with the default permission READ it would get 403.
_USERS = """
import os
from mlflow.server.auth.config import read_auth_config
uri = read_auth_config().database_uri
if uri.startswith("crate"):
    import cratedb_app
    cratedb_app.patch()
if uri.startswith("mysql"):
    # MLflow's first auth migration names two foreign keys fk_user_id, and MySQL
    # and MariaDB want a constraint name unique in its database: the second table
    # is refused (mlflow/mlflow#9642, #10964). Its key gets a name of its own.
    from sqlalchemy.ext.compiler import compiles
    from sqlalchemy.schema import ForeignKeyConstraint

    @compiles(ForeignKeyConstraint, "mysql")
    def _unique_fk_name(constraint, compiler, **kw):
        table = getattr(constraint.table, "name", "")
        if constraint.name == "fk_user_id" and table == "registered_model_permissions":
            constraint.name = "fk_user_id_registered_model_permissions"
        return compiler.visit_foreign_key_constraint(constraint, **kw)
from mlflow.exceptions import MlflowException
from mlflow.server.auth.sqlalchemy_store import SqlAlchemyStore
store = SqlAlchemyStore()
store.init_db(uri)
for name, variable, admin in (
    (os.environ["CHARM_ADMIN_USER"], "CHARM_ADMIN_PASSWORD", True),
    (os.environ["CHARM_NOTEBOOK_USER"], "CHARM_NOTEBOOK_PASSWORD", False),
):
    password = os.environ[variable]
    if not store.has_user(name):
        store.create_user(name, password, is_admin=admin)
        print("created", name)
    elif not store.authenticate_user(name, password) or store.get_user(name).is_admin != admin:
        store.update_user(name, password=password, is_admin=admin)
        print("updated", name)
notebook = os.environ["CHARM_NOTEBOOK_USER"]
try:
    current = store.get_experiment_permission("0", notebook).permission
except MlflowException:
    store.create_experiment_permission("0", notebook, "EDIT")
    print("granted", notebook, "EDIT on the Default experiment")
else:
    if current not in ("EDIT", "MANAGE"):
        store.update_experiment_permission("0", notebook, "EDIT")
        print("granted", notebook, "EDIT on the Default experiment")
"""


def users_argv() -> list[str]:
    """A command creating or updating the admin and notebook users, with the image's MLflow."""
    return [
        "sh",
        "-c",
        f'exec "$(command -v python3 || command -v python)" -c {shlex.quote(_USERS)}',
    ]


def users_env(settings: AuthSettings, config_file: str, apps_dir: str) -> dict[str, str]:
    """The environment ``users_argv`` reads: the config file and the passwords (not argv).

    ``apps_dir``: where ``cratedb_app.py`` is (on ``PYTHONPATH``).
    """
    return {
        "PYTHONPATH": apps_dir,
        "MLFLOW_AUTH_CONFIG_PATH": config_file,
        "CHARM_ADMIN_USER": ADMIN_USER,
        "CHARM_ADMIN_PASSWORD": settings.admin_password,
        "CHARM_NOTEBOOK_USER": NOTEBOOK_USER,
        "CHARM_NOTEBOOK_PASSWORD": settings.notebook_password,
    }


def users_digest(settings: AuthSettings) -> str:
    """Identifies what ``users_argv`` last applied (kept in the unit's state, not secret)."""
    # The script itself counts: a charm whose script does more runs it again.
    material = "\n".join(
        (settings.database_uri, settings.admin_password, settings.notebook_password, _USERS)
    )
    return hashlib.sha256(material.encode()).hexdigest()[:16]


def new_password() -> str:
    """A generated password (32 URL-safe characters, ~190 bits)."""
    return secrets.token_urlsafe(24)


@dataclass(frozen=True)
class AuthSecrets:
    """The generated values in the ``mlflow-auth`` Juju secret."""

    admin_password: str = field(repr=False)
    notebook_password: str = field(repr=False)
    flask_secret_key: str = field(repr=False)

    @classmethod
    def generate(cls) -> AuthSecrets:
        """Fresh values (the leader's, once)."""
        return cls(new_password(), new_password(), secrets.token_hex(32))

    @classmethod
    def from_content(cls, content: dict[str, str]) -> AuthSecrets:
        """Read from the Juju secret's content."""
        return cls(
            content["admin-password"], content["notebook-password"], content["flask-secret-key"]
        )

    def content(self) -> dict[str, str]:
        """The Juju secret's content."""
        return {
            "admin-password": self.admin_password,
            "notebook-password": self.notebook_password,
            "flask-secret-key": self.flask_secret_key,
        }


class AuthSecret:
    """The app's ``mlflow-auth`` secret: the leader creates and rotates it, every unit reads it."""

    def __init__(self, charm: ops.CharmBase):
        self._charm = charm

    def read(self) -> AuthSecrets | None:
        """The current values; the leader creates them on first use. None: not created yet."""
        try:
            secret = self._charm.model.get_secret(label=SECRET_LABEL)
            return AuthSecrets.from_content(secret.get_content(refresh=True))
        except ops.SecretNotFoundError:
            if not self._charm.unit.is_leader():
                return None
            values = AuthSecrets.generate()
            self._charm.app.add_secret(values.content(), label=SECRET_LABEL)
            return values

    def store_admin_password(self, password: str) -> None:
        """Keep a new admin password (leader only), once it is applied to the users."""
        secret = self._charm.model.get_secret(label=SECRET_LABEL)
        current = AuthSecrets.from_content(secret.get_content(refresh=True))
        secret.set_content(replace(current, admin_password=password).content())
