"""A stand-in for Charmed Kubeflow's minio charm on its ``object-storage`` endpoint.

Written from canonical/minio-operator's published source (read with the search
tool's fetch, 2026-11): ``metadata.yaml`` (``object-storage`` provides, schema
v1) and ``src/charm.py``, which hands the relation to charmed-kubeflow-chisme's
``SdiRelationBroadcasterComponent``: on relation-created and relation-changed
the leader calls serialized-data-interface's ``send_data`` with one mapping,
the same for every related application. The facts carried over:

- Both sides write ``_supported_versions`` (a YAML list, ``- v1``) in their
  application databags; minio sends nothing until the requirer's is there.
- The data is one YAML mapping under ``data``: ``access-key`` (minio's config,
  default ``minio``), ``secret-key`` (config, or generated), ``port`` (config,
  default 9000), ``secure`` (always false in minio's code), ``namespace`` (the
  model's name) and ``service`` (the application's name). In plain data.
"""

from __future__ import annotations

import contextlib

import ops
import serialized_data_interface as sdi

SCHEMAS = {
    "v1": {
        "provides": {
            "type": "object",
            "properties": {
                "access-key": {"type": "string"},
                "namespace": {"type": ["string", "null"]},
                "port": {"type": "number"},
                "secret-key": {"type": "string"},
                "secure": {"type": "boolean"},
                "service": {"type": "string"},
            },
            "required": ["access-key", "port", "secret-key", "secure", "service"],
        }
    }
}
META = {"name": "minio", "provides": {"object-storage": {"interface": "object-storage"}}}
CONFIG = {
    "options": {
        "port": {"type": "int", "default": 9000},
        "access-key": {"type": "string", "default": "minio"},
        "secret-key": {"type": "string", "default": "minio-generated-0123456789"},
    }
}


class MinioStandIn(ops.CharmBase):
    """Broadcasts minio's object-storage data the way chisme's component does."""

    def __init__(self, framework: ops.Framework):
        super().__init__(framework)
        for event in (
            self.on["object-storage"].relation_created,
            self.on["object-storage"].relation_changed,
        ):
            framework.observe(event, self._broadcast)

    def _broadcast(self, _event: ops.EventBase) -> None:
        if not self.unit.is_leader():
            return
        interface = sdi.SerializedDataInterface(
            self, "object-storage", SCHEMAS, {"v1"}, "provides"
        )
        for relation in self.model.relations["object-storage"]:
            interface.send_versions(relation)
        # Until the requirer lists its versions there is nothing to send to.
        with contextlib.suppress(sdi.errors.UnversionedRelation):
            interface.send_data(
                {
                    "port": self.config["port"],
                    "secure": False,
                    "access-key": self.config["access-key"],
                    "secret-key": self.config["secret-key"],
                    "namespace": self.model.name,
                    "service": self.app.name,
                }
            )
