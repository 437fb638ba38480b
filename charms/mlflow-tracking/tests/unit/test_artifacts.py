"""The artifact stores under ops.testing: any S3 (s3-credentials) and Charmed Kubeflow's minio."""

from __future__ import annotations

import base64
import dataclasses
import json
from typing import Any

from ops import testing

from constants import CONTAINER, SERVICE
from helpers import (
    MINIO_KEYS,
    FakeNetwork,
    command,
    container,
    env_file,
    make_state,
    object_storage_relation,
    s3_relation,
    sent_manifests,
)
from workload import ensure_bucket_argv

Ctx = testing.Context[Any]


class TestArtifacts:
    def test_s3_relation_moves_artifacts_to_the_bucket(self, ctx: Ctx, s3_ready):
        relation, secret = s3_ready

        out = ctx.run(
            ctx.on.relation_changed(relation, remote_unit=0),
            make_state(relation, secrets=(secret,)),
        )

        assert "--serve-artifacts --artifacts-destination s3://mlflow-tracking" in command(out)
        env = env_file(ctx, out)
        assert "AWS_ACCESS_KEY_ID='AKEY1234567890'" in env
        assert "AWS_SECRET_ACCESS_KEY='SKEY-very-secret'" in env
        assert "MLFLOW_S3_ENDPOINT_URL='http://seaweedfs.model.svc.cluster.local:8333'" in env
        assert out.unit_status == testing.ActiveStatus(
            "metadata: embedded SQLite; artifacts: s3://mlflow-tracking (proxied)"
        )

    def test_direct_mode_points_clients_at_the_bucket(self, ctx: Ctx):
        relation, secret = s3_relation(path="team-a")
        state = make_state(relation, secrets=(secret,), config={"serve-artifacts": False})

        out = ctx.run(ctx.on.relation_changed(relation, remote_unit=0), state)

        assert (
            "--no-serve-artifacts --default-artifact-root s3://mlflow-tracking/team-a"
            in command(out)
        )

    def test_direct_mode_without_an_s3_store_blocks_and_starts_no_server(self, ctx: Ctx):
        out = ctx.run(ctx.on.config_changed(), make_state(config={"serve-artifacts": False}))

        assert out.unit_status == testing.BlockedStatus(
            "serve-artifacts=false needs an S3 store (notebooks would keep artifacts in "
            "their own pods): relate s3-credentials or object-storage, or set "
            "serve-artifacts=true"
        )
        assert out.get_container(CONTAINER).plan.services == {}

    def test_removing_s3_in_direct_mode_blocks_and_keeps_the_running_server(self, ctx: Ctx):
        relation, secret = s3_relation()
        on_s3 = ctx.run(
            ctx.on.relation_changed(relation, remote_unit=0),
            make_state(relation, secrets=(secret,), config={"serve-artifacts": False}),
        )

        out = ctx.run(ctx.on.relation_broken(on_s3.get_relation(relation.id)), on_s3)

        assert out.unit_status.name == "blocked"
        assert "relate s3-credentials or object-storage" in out.unit_status.message
        # The server keeps the bucket it had; it is not moved to local storage.
        assert "--default-artifact-root s3://mlflow-tracking" in command(out)

    def test_configured_bucket_and_path_are_requested(self, ctx: Ctx, s3_bare):
        state = make_state(s3_bare, config={"bucket": "ml-artifacts", "bucket-path": "prod"})

        out = ctx.run(ctx.on.config_changed(), state)

        sent = out.get_relation(s3_bare.id).local_app_data
        assert (sent["bucket"], sent["path"]) == ("ml-artifacts", "prod")

    def test_bare_s3_relation_waits(self, ctx: Ctx, s3_bare):
        out = ctx.run(ctx.on.relation_changed(s3_bare, remote_unit=0), make_state(s3_bare))

        assert out.unit_status.name == "waiting"
        assert out.unit_status.message.startswith("s3-credentials: waiting for seaweedfs")

    def test_provider_refusal_is_shown(self, ctx: Ctx):
        relation, secret = s3_relation(extra={"error": "bucket name 'X' must be lowercase"})

        out = ctx.run(
            ctx.on.relation_changed(relation, remote_unit=0),
            make_state(relation, secrets=(secret,)),
        )

        assert out.unit_status == testing.BlockedStatus(
            "s3-credentials: seaweedfs refused the bucket request: bucket name 'X' must be lowercase"
        )

    def test_unreachable_s3_is_waiting_and_metadata_keeps_working(
        self, ctx: Ctx, network: FakeNetwork, s3_ready
    ):
        relation, secret = s3_ready
        network.unreachable.add("http://seaweedfs.model.svc.cluster.local:8333")

        out = ctx.run(ctx.on.update_status(), make_state(relation, secrets=(secret,)))

        assert out.unit_status == testing.WaitingStatus(
            "S3 endpoint unreachable; artifact calls fail until it answers"
        )
        assert SERVICE in out.get_container(CONTAINER).plan.services

    def test_tls_ca_chain_is_written_and_used(self, ctx: Ctx):
        relation, secret = s3_relation(
            extra={
                "tls-ca-chain": json.dumps(
                    ["-----BEGIN CERTIFICATE-----\nX\n-----END CERTIFICATE-----"]
                )
            }
        )

        out = ctx.run(
            ctx.on.relation_changed(relation, remote_unit=0),
            make_state(relation, secrets=(secret,)),
        )

        # In the layer: the env file never overrides a variable the image already sets.
        environment = out.get_container(CONTAINER).plan.services[SERVICE].environment
        assert environment["AWS_CA_BUNDLE"] == "/etc/mlflow/s3-ca.pem"
        assert "AWS_CA_BUNDLE" not in env_file(ctx, out)
        root = out.get_container(CONTAINER).get_filesystem(ctx)
        assert "BEGIN CERTIFICATE" in (root / "etc/mlflow/s3-ca.pem").read_text()


class TestMinioObjectStorage:
    """Charmed Kubeflow's minio on ``object-storage``, instead of s3-credentials."""

    def _bucket_calls(self, ctx: Ctx) -> list[Any]:
        return [
            c for c in ctx.exec_history.get(CONTAINER, []) if c.command == ensure_bucket_argv()
        ]

    def test_minio_answer_moves_artifacts_to_a_bucket_it_creates(
        self, ctx: Ctx, object_storage_ready
    ):
        out = ctx.run(
            ctx.on.relation_changed(object_storage_ready, remote_unit=0),
            make_state(object_storage_ready),
        )

        assert out.unit_status == testing.ActiveStatus(
            "metadata: embedded SQLite; artifacts: s3://mlflow-tracking (proxied)"
        )
        env = env_file(ctx, out)
        assert "MLFLOW_S3_ENDPOINT_URL='http://minio.kubeflow:9000'" in env
        assert f"AWS_SECRET_ACCESS_KEY='{MINIO_KEYS['secret-key']}'" in env
        [call] = self._bucket_calls(ctx)
        assert call.environment["CHARM_BUCKET"] == "mlflow-tracking"
        assert call.environment["MLFLOW_S3_ENDPOINT_URL"] == "http://minio.kubeflow:9000"
        sent = out.get_relation(object_storage_ready.id).local_app_data
        assert sent == {"_supported_versions": "- v1\n"}

    def test_configured_bucket_and_path_are_used(self, ctx: Ctx, object_storage_ready):
        state = make_state(object_storage_ready, config={"bucket": "team-ml", "bucket-path": "p"})

        out = ctx.run(ctx.on.relation_changed(object_storage_ready, remote_unit=0), state)

        assert out.unit_status.message.endswith("artifacts: s3://team-ml/p (proxied)")
        assert self._bucket_calls(ctx)[0].environment["CHARM_BUCKET"] == "team-ml"

    def test_the_bucket_is_checked_once_not_on_every_hook(self, ctx: Ctx, object_storage_ready):
        first = ctx.run(
            ctx.on.relation_changed(object_storage_ready, remote_unit=0),
            make_state(object_storage_ready),
        )
        ctx.run(ctx.on.update_status(), first)

        assert len(self._bucket_calls(ctx)) == 1

    def test_secure_minio_gives_an_https_endpoint(self, ctx: Ctx):
        relation = object_storage_relation(secure=True, namespace=None)

        out = ctx.run(ctx.on.relation_changed(relation, remote_unit=0), make_state(relation))

        assert "MLFLOW_S3_ENDPOINT_URL='https://minio:9000'" in env_file(ctx, out)

    def test_refused_keys_block_naming_what_to_check(self, ctx: Ctx, object_storage_ready):
        state = make_state(object_storage_ready, workload=container(bucket_rc=3))

        out = ctx.run(ctx.on.relation_changed(object_storage_ready, remote_unit=0), state)

        assert out.unit_status == testing.BlockedStatus(
            "minio refused its own keys for bucket 'mlflow-tracking'; "
            "check minio's access-key and secret-key"
        )

    def test_unreachable_minio_is_waiting_and_retried(self, ctx: Ctx, object_storage_ready):
        state = make_state(object_storage_ready, workload=container(bucket_rc=4))

        out = ctx.run(ctx.on.relation_changed(object_storage_ready, remote_unit=0), state)

        assert out.unit_status == testing.WaitingStatus(
            "could not reach http://minio.kubeflow:9000 to create bucket 'mlflow-tracking'; "
            "retrying"
        )

    def test_bare_relation_waits_and_sends_the_versions(self, ctx: Ctx, object_storage_bare):
        out = ctx.run(
            ctx.on.relation_created(object_storage_bare), make_state(object_storage_bare)
        )

        assert out.get_relation(object_storage_bare.id).local_app_data == {
            "_supported_versions": "- v1\n"
        }
        assert out.unit_status == testing.WaitingStatus(
            "object-storage: waiting for minio to answer (server not started yet)"
        )

    def test_data_off_the_schema_blocks_and_names_the_fix(self, ctx: Ctx):
        import yaml

        relation = object_storage_relation()
        bad = dict(relation.remote_app_data)
        bad["data"] = yaml.safe_dump({"service": "minio", "port": "nine"})
        relation = dataclasses.replace(relation, remote_app_data=bad)

        out = ctx.run(ctx.on.relation_changed(relation, remote_unit=0), make_state(relation))

        assert out.unit_status == testing.BlockedStatus(
            "object-storage: minio sent object-storage data that does not match its schema; "
            "check minio's config, then remove and re-add the relation"
        )

    def test_both_artifact_relations_block_naming_both(
        self, ctx: Ctx, object_storage_ready, s3_ready
    ):
        s3, secret = s3_ready
        state = make_state(object_storage_ready, s3, secrets=(secret,))

        out = ctx.run(ctx.on.relation_changed(object_storage_ready, remote_unit=0), state)

        assert out.unit_status == testing.BlockedStatus(
            "two artifact stores related: s3-credentials (seaweedfs) and object-storage (minio); "
            "remove one"
        )
        assert out.get_container(CONTAINER).plan.services == {}

    def test_keys_stay_out_of_status_logs_and_command_line(self, ctx: Ctx, object_storage_ready):
        out = ctx.run(
            ctx.on.relation_changed(object_storage_ready, remote_unit=0),
            make_state(object_storage_ready, config={"serve-artifacts": False}),
        )

        secret_key = MINIO_KEYS["secret-key"]
        assert secret_key not in out.unit_status.message
        assert secret_key not in command(out)
        assert not any(secret_key in log.message for log in ctx.juju_log)

    def test_direct_mode_hands_notebooks_the_minio_keys_by_secret_reference(
        self, ctx: Ctx, object_storage_ready, pod_defaults_relation, secrets_relation
    ):
        state = make_state(
            object_storage_ready,
            pod_defaults_relation,
            secrets_relation,
            config={"serve-artifacts": False},
        )

        out = ctx.run(ctx.on.relation_changed(object_storage_ready, remote_unit=0), state)

        [pod_default] = sent_manifests(out, pod_defaults_relation)
        [secret] = sent_manifests(out, secrets_relation)
        assert MINIO_KEYS["secret-key"] not in json.dumps(pod_default)
        data = {k: base64.b64decode(v).decode() for k, v in secret["data"].items()}
        assert data["AWS_SECRET_ACCESS_KEY"] == MINIO_KEYS["secret-key"]

    def test_removing_minio_returns_artifacts_to_local_storage(
        self, ctx: Ctx, object_storage_ready
    ):
        on_minio = ctx.run(
            ctx.on.relation_changed(object_storage_ready, remote_unit=0),
            make_state(object_storage_ready),
        )

        out = ctx.run(
            ctx.on.relation_broken(on_minio.get_relation(object_storage_ready.id)), on_minio
        )

        assert out.unit_status.message.endswith("artifacts: local storage (proxied)")
