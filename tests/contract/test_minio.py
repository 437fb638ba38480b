"""mlflow-tracking against Charmed Kubeflow's minio (``object-storage``), chained.

The stand-in (``minio_provider.py``, written from minio-operator's published
source) and the real mlflow-tracking charm feed each other's databags.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from ops import testing

from tests.contract.chain import context, handover, with_changes
from tests.contract.minio_provider import CONFIG, META, MinioStandIn
from tests.contract.test_contracts import mlflow_env, mlflow_state

# The doors the chained charms reach are stubbed by test_contracts' autouse fixture.
from tests.contract.test_contracts import doors  # noqa: F401  isort: skip


def relate(config: dict[str, Any] | None = None) -> tuple[testing.Context[Any], testing.State]:
    """`juju relate minio mlflow-tracking`: both sides' hooks, in order."""
    ml_ctx = context("mlflow-tracking", app_name="mlflow-tracking")
    asking = testing.Relation("object-storage", remote_app_name="minio")
    asked = ml_ctx.run(ml_ctx.on.relation_created(asking), mlflow_state(asking, config=config))

    minio_view, _ = handover(
        asked, asking.id, endpoint="object-storage", app_name="mlflow-tracking"
    )
    minio_ctx = testing.Context(MinioStandIn, meta=META, config=CONFIG, app_name="minio")
    answered = minio_ctx.run(
        minio_ctx.on.relation_changed(minio_view, remote_unit=0),
        testing.State(leader=True, relations={minio_view}, model=testing.Model(name="kubeflow")),
    )

    answer, _ = handover(
        answered,
        minio_view.id,
        endpoint="object-storage",
        app_name="minio",
        local_app_data=dict(asked.get_relation(asking.id).local_app_data),
    )
    answer = dataclasses.replace(answer, id=asking.id)
    final = ml_ctx.run(
        ml_ctx.on.relation_changed(answer, remote_unit=0),
        with_changes(asked, relations={answer}),
    )
    return ml_ctx, final


def test_mlflow_stores_artifacts_in_minio_at_the_service_address_minio_gives():
    ctx, final = relate()

    assert final.unit_status == testing.ActiveStatus(
        "metadata: embedded SQLite; artifacts: s3://mlflow-tracking (proxied)"
    )
    env = mlflow_env(ctx, final)
    assert env["MLFLOW_S3_ENDPOINT_URL"] == "http://minio.kubeflow:9000"
    assert env["AWS_ACCESS_KEY_ID"] == "minio"
    assert env["AWS_SECRET_ACCESS_KEY"] == "minio-generated-0123456789"


def test_the_configured_bucket_is_the_one_created():
    ctx, final = relate({"bucket": "mlflow", "bucket-path": "artifacts"})

    assert final.unit_status.message.endswith("artifacts: s3://mlflow/artifacts (proxied)")
    [created] = [
        c for c in ctx.exec_history["mlflow-server"] if "CHARM_BUCKET" in (c.environment or {})
    ]
    assert created.environment["CHARM_BUCKET"] == "mlflow"


def test_minio_sends_nothing_before_mlflow_lists_its_versions():
    relation = testing.Relation("object-storage", remote_app_name="mlflow-tracking")
    ctx = testing.Context(MinioStandIn, meta=META, config=CONFIG, app_name="minio")

    out = ctx.run(
        ctx.on.relation_created(relation), testing.State(leader=True, relations={relation})
    )

    assert dict(out.get_relation(relation.id).local_app_data) == {"_supported_versions": "- v1\n"}
