"""The one door to the Kubernetes API: the application's StatefulSet and its pods (lightkube).

Only the leader uses it, to read how far a refresh has rolled and to move
the StatefulSet's partition (``refresh.next_partition`` decides). It needs
the application trusted (``juju trust cratedb --scope=cluster``; the bundle
deploys with ``--trust``). lightkube is imported when first used: it costs a
hook ~0.2 s otherwise.
"""

from __future__ import annotations

import logging
from typing import Any

from exceptions import CharmError
from refresh import Rollout

logger = logging.getLogger(__name__)

REVISION_LABEL = "controller-revision-hash"


class StatefulSetDoor:
    """Reads and moves the rollout of ``app``'s StatefulSet in ``namespace``."""

    def __init__(self, app: str, namespace: str):
        self._app = app
        self._namespace = namespace

    def _client(self) -> Any | None:
        """A client; None outside a Kubernetes pod (no service account: a test host)."""
        from lightkube import Client, ConfigError

        try:
            return Client(namespace=self._namespace, field_manager=self._app)
        except ConfigError as err:
            logger.warning("no Kubernetes API here, the refresh is not controlled: %s", err)
            return None

    def _refused(self, err: Any, action: str) -> CharmError:
        code = getattr(getattr(err, "status", None), "code", None)
        if code == 403:
            return CharmError(
                f"not allowed to {action}: run 'juju trust {self._app} --scope=cluster'"
            )
        return CharmError(f"the Kubernetes API refused to {action} ({code}); retrying")

    def read(self) -> Rollout | None:
        """The partition, the newest template's revision, and each pod's (None: no API)."""
        from lightkube import ApiError
        from lightkube.resources.apps_v1 import StatefulSet
        from lightkube.resources.core_v1 import Pod

        client = self._client()
        if client is None:
            return None
        try:
            sts = client.get(StatefulSet, self._app)
            pods = list(client.list(Pod, labels={"app.kubernetes.io/name": self._app}))
        except ApiError as err:
            raise self._refused(err, "read the StatefulSet") from None
        strategy = sts.spec.updateStrategy
        rolling = strategy.rollingUpdate if strategy is not None else None
        partition = (rolling.partition if rolling is not None else None) or 0
        revisions = {}
        for pod in pods:
            name = str(pod.metadata.name)
            prefix, _, ordinal = name.rpartition("-")
            if prefix == self._app and ordinal.isdigit():
                revisions[int(ordinal)] = (pod.metadata.labels or {}).get(REVISION_LABEL, "")
        update = str(sts.status.updateRevision or "") if sts.status is not None else ""
        return Rollout(partition=int(partition), update_revision=update, pod_revisions=revisions)

    def set_partition(self, partition: int) -> None:
        """Let pods from ``partition`` on take the newest template."""
        from lightkube import ApiError
        from lightkube.resources.apps_v1 import StatefulSet
        from lightkube.types import PatchType

        patch = {
            "spec": {
                "updateStrategy": {
                    "type": "RollingUpdate",
                    "rollingUpdate": {"partition": partition},
                }
            }
        }
        client = self._client()
        if client is None:
            return
        try:
            client.patch(
                StatefulSet,
                self._app,
                patch,
                namespace=self._namespace,
                patch_type=PatchType.MERGE,
            )
        except ApiError as err:
            raise self._refused(err, "move the StatefulSet's partition") from None
        logger.info("StatefulSet %s: partition %d", self._app, partition)
