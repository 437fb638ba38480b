"""What the unit says about itself: every status that applies, for collect-status.

It reads the world through the charm's public readers, the same ones the
reconcile and the actions use, so the status never disagrees with what the
charm does. ops shows the most severe one (Blocked before Waiting before
Maintenance before Active).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import ops

from constants import PORT, SERVICE, STORE_ENV
from exceptions import CharmError
from relations.ingress import ui_url
from state import StoreKind

if TYPE_CHECKING:
    from charm import MlflowTrackingCharm


def unit_statuses(charm: MlflowTrackingCharm) -> list[ops.StatusBase]:
    """Every status that applies to the unit now."""
    try:
        config = charm.typed_config()
        charm.require_workload()
    except CharmError as err:
        return [err.status]
    error = charm.reconcile_error
    statuses: list[ops.StatusBase] = [error.status] if error is not None else []
    choice = charm.stores()
    ingress = charm.ingress.read()
    if ingress is not None and ingress.problem:
        statuses.append(ops.BlockedStatus(f"{ingress.endpoint}: {ingress.problem}"))
    statuses += [ops.BlockedStatus(message) for message in choice.blocked]
    note = _current_store_note(charm.container)
    statuses += [ops.WaitingStatus(f"{message} ({note})") for message in choice.waiting]
    if choice.store is None or choice.artifacts is None:
        return statuses
    store, artifacts = choice.store, choice.artifacts
    if not charm.store_reachable(store):
        statuses.append(
            ops.WaitingStatus(
                f"{store.kind.label} at {store.host}:{store.port} unreachable; retrying"
            )
        )
    if (
        artifacts.is_s3
        and artifacts.endpoint
        and not charm.probe.url_reachable(artifacts.endpoint)
    ):
        statuses.append(
            ops.WaitingStatus("S3 endpoint unreachable; artifact calls fail until it answers")
        )
    if error is not None:
        pass  # The reconcile stopped before (re)starting the server: its status says why.
    elif not charm.service_running():
        statuses.append(ops.MaintenanceStatus("starting MLflow"))
    elif not charm.probe.server_ready(PORT, _running_ca(charm)):
        statuses.append(ops.WaitingStatus("waiting for MLflow to answer /health"))
    where = artifacts.s3_uri if artifacts.is_s3 else "local storage"
    mode = "proxied" if config.serve_artifacts else "direct"
    ui = f"; UI at {ui_url(ingress.url)}" if ingress is not None and ingress.url else ""
    statuses.append(
        ops.ActiveStatus(f"metadata: {store.kind.label}; artifacts: {where} ({mode}){ui}")
    )
    return statuses


def _running_ca(charm: MlflowTrackingCharm) -> str | None:
    """The CA of the certificate the running server presents, None when it speaks HTTP."""
    services = charm.container.get_plan().services
    if SERVICE not in services or "CHARM_TLS_SHA256" not in services[SERVICE].environment:
        return None
    tls = charm.tls.read().tls
    return tls.ca if tls else None


def _current_store_note(container: ops.Container) -> str:
    """Which store the running server uses, for a Waiting message about another one."""
    services = container.get_plan().services
    current = services[SERVICE].environment.get(STORE_ENV) if SERVICE in services else None
    if not current:
        return "server not started yet"
    return f"server still on {StoreKind(current).label}"
