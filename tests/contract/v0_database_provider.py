"""A stand-in for today's database charms: a v0 ``database`` provider.

Written from the protocol as postgresql-k8s and mysql-k8s speak it (read
from their published source with the search tool's fetch, 2026-11): their
``src/relations/postgresql_provider.py`` / ``mysql_provider.py`` on top of
data-platform-libs' ``charms.data_platform_libs.v0.data_interfaces``
``DatabaseProvides`` (LIBPATCH 58 in postgresql-k8s, 41 in mysql-k8s). The
facts carried over, not the code:

- The provider acts only when the requirer's application databag *gains*
  ``database`` (the library diffs the databag against its own copy, kept in
  the provider's ``data`` field). Nothing else in the request triggers it.
- It reads ``requested-secrets`` (a JSON list) from the requirer's
  application databag. Fields named there go into Juju secrets, grouped:
  ``username``/``password``/``uris`` in ``secret-user``, ``tls``/``tls-ca`` in
  ``secret-tls``. Without that list, ``username`` and ``password`` are
  written in plain data.
- Its answer is flat: ``endpoints`` (postgresql-k8s: ``<app>-primary.<model>
  .svc.cluster.local:5432``; mysql-k8s: the same FQDN with a trailing dot,
  port 3306), ``read-only-endpoints``, ``database``, and ``version``, which is
  the engine's version (``14.15``, ``8.0.41``), not a protocol tag.
- postgresql-k8s also writes ``uris`` (``postgresql://user:pw@host:5432/db``)
  and the TLS flag ``"True"``/``"False"``; mysql-k8s writes neither.
- A password rotation is a new revision of the ``secret-user`` secret.
- Until its cluster is up, postgresql-k8s defers the request and writes
  nothing (``answer: false`` here).
"""

from __future__ import annotations

import json
from typing import Any

import ops

ENGINES: dict[str, dict[str, Any]] = {
    "postgresql": {"port": 5432, "version": "16.6", "uris": True, "tls_flag": True, "dot": ""},
    "mysql": {"port": 3306, "version": "8.0.41", "uris": False, "tls_flag": False, "dot": "."},
}

META = {
    "name": "v0-database",
    "provides": {"database": {"interface": "database_client"}},
}
CONFIG = {
    "options": {
        "engine": {"type": "string", "default": "postgresql"},
        "answer": {"type": "boolean", "default": True},
        "tls-ca": {"type": "string", "default": ""},
    }
}
ACTIONS = {"rotate-password": {"params": {"relation-id": {"type": "integer"}}}}
SECRET_GROUPS = {
    "username": "user",
    "password": "user",
    "uris": "user",
    "tls": "tls",
    "tls-ca": "tls",
}


class V0DatabaseProvider(ops.CharmBase):
    """Answers v0 database requests the way data-platform-libs' DatabaseProvides does."""

    def __init__(self, framework: ops.Framework):
        super().__init__(framework)
        framework.observe(self.on.database_relation_changed, self._on_changed)
        framework.observe(self.on.rotate_password_action, self._on_rotate)

    @property
    def _engine(self) -> dict[str, Any]:
        return ENGINES[str(self.config["engine"])]

    def _on_changed(self, event: ops.RelationChangedEvent) -> None:
        if not self.unit.is_leader() or event.app is None:
            return
        remote = dict(event.relation.data[event.app])
        mine = event.relation.data[self.app]
        before = json.loads(mine.get("data", "{}"))
        # The library's diff bookkeeping: a copy of the requirer's databag.
        mine["data"] = json.dumps(remote)
        added = set(remote) - set(before)
        if "database" not in added or not self.config["answer"]:
            return
        self._answer(event.relation, remote)

    def _answer(self, relation: ops.Relation, remote: dict[str, str]) -> None:
        engine = self._engine
        database = remote["database"]
        user = f"relation_id_{relation.id}"
        password = f"pw-{relation.id}-initial-0001"
        host = f"{self.app.name}-primary.{self.model.name}.svc.cluster.local{engine['dot']}"
        endpoint = f"{host}:{engine['port']}"
        fields = {"username": user, "password": password}
        if engine["uris"]:
            fields["uris"] = f"postgresql://{user}:{password}@{endpoint}/{database}"
        ca = str(self.config["tls-ca"])
        if engine["tls_flag"]:
            fields["tls"] = "True" if ca else "False"
            if ca:
                fields["tls-ca"] = ca
        requested = json.loads(remote.get("requested-secrets", "[]"))
        data = relation.data[self.app]
        grouped: dict[str, dict[str, str]] = {}
        for key, value in fields.items():
            if key in requested:
                grouped.setdefault(SECRET_GROUPS[key], {})[key] = value
            else:
                data[key] = value
        for group, content in grouped.items():
            secret = self.app.add_secret(content, label=f"database.{relation.id}.{group}.secret")
            secret.grant(relation)
            data[f"secret-{group}"] = str(secret.id)
        data.update(
            {
                "endpoints": endpoint,
                "read-only-endpoints": endpoint,
                "database": database,
                "version": engine["version"],
            }
        )

    def _on_rotate(self, event: ops.ActionEvent) -> None:
        relation_id = int(event.params["relation-id"])
        secret = self.model.get_secret(label=f"database.{relation_id}.user.secret")
        content = secret.get_content(refresh=True)
        content["password"] = f"pw-{relation_id}-rotated-0002"
        if "uris" in content:
            userinfo, _, location = content["uris"].partition("@")
            scheme_user = userinfo.rsplit(":", 1)[0]
            content["uris"] = f"{scheme_user}:{content['password']}@{location}"
        secret.set_content(content)
