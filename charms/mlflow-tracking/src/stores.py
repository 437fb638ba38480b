"""Which stores the server should run on, from what the relations offer: pure, no I/O."""

from __future__ import annotations

from dataclasses import dataclass, field

from relations.database import StoreReading
from relations.s3 import ArtifactReading
from state import LOCAL_ARTIFACTS, ArtifactStore, MetadataStore, StoreKind
from workload import sqlite_store


@dataclass
class StoreChoice:
    """The desired stores, or why they cannot be had yet."""

    store: MetadataStore | None = None
    artifacts: ArtifactStore | None = None
    blocked: list[str] = field(default_factory=list)
    waiting: list[str] = field(default_factory=list)


def choose_stores(
    databases: list[StoreReading],
    artifacts: list[tuple[str, ArtifactReading]],
    *,
    planned_units: int,
    serve_artifacts: bool = True,
) -> StoreChoice:
    """The stores for the related databases and ``(endpoint, reading)`` artifact stores.

    Nothing related means the embedded SQLite and local artifacts (one unit).
    Two of a kind is a conflict for the user to resolve, never a silent choice.
    ``serve_artifacts=False`` (notebooks reach the artifact store themselves)
    needs an S3 store: with local artifacts each notebook would write into its
    own pod's filesystem and lose them.
    """
    choice = StoreChoice()
    if len(databases) > 1:
        names = " and ".join(f"{r.endpoint} ({r.app})" for r in databases)
        choice.blocked.append(f"two metadata stores related: {names}; remove one")
    for reading in databases:
        if reading.problem:
            choice.blocked.append(f"{reading.endpoint}: {reading.problem}")
        elif reading.waiting:
            choice.waiting.append(f"{reading.endpoint}: {reading.waiting}")
    if len(databases) == 1 and databases[0].store is not None:
        choice.store = databases[0].store
    elif not databases:
        choice.store = sqlite_store()

    _choose_artifacts(choice, artifacts)
    if not serve_artifacts and choice.artifacts is not None and not choice.artifacts.is_s3:
        choice.blocked.append(
            "serve-artifacts=false needs an S3 store (notebooks would keep artifacts in "
            "their own pods): relate s3-credentials or object-storage, or set "
            "serve-artifacts=true"
        )

    if planned_units > 1:
        if choice.store is not None and choice.store.kind is StoreKind.SQLITE:
            choice.blocked.append(
                "embedded SQLite serves one unit: relate a database or scale to 1"
            )
        if choice.artifacts is not None and not choice.artifacts.is_s3:
            choice.blocked.append(
                "local artifacts serve one unit: relate s3-credentials or scale to 1"
            )
    return choice


def _choose_artifacts(choice: StoreChoice, readings: list[tuple[str, ArtifactReading]]) -> None:
    """Where artifacts go: s3-credentials, object-storage (minio), or local storage."""
    if len(readings) > 1:
        names = " and ".join(f"{endpoint} ({r.app})" for endpoint, r in readings)
        choice.blocked.append(f"two artifact stores related: {names}; remove one")
        return
    if not readings:
        choice.artifacts = LOCAL_ARTIFACTS
        return
    [(endpoint, reading)] = readings
    if reading.problem:
        choice.blocked.append(f"{endpoint}: {reading.problem}")
    elif reading.waiting:
        choice.waiting.append(f"{endpoint}: {reading.waiting}")
    else:
        choice.artifacts = reading.artifacts
