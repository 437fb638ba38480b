"""What notebooks get under ops.testing: pod defaults through resource-dispatcher, and get-client-env."""

from __future__ import annotations

import base64
import json
from typing import Any

from ops import testing

from constants import CONTAINER, SERVICE
from fake_kubernetes import FakeCluster
from helpers import (
    APP,
    make_state,
    sent_manifests,
)

Ctx = testing.Context[Any]


class TestPodDefaults:
    def test_proxied_mode_sends_a_pod_default_without_any_s3_key(
        self, ctx: Ctx, s3_ready, pod_defaults_relation, secrets_relation
    ):
        relation, secret = s3_ready
        state = make_state(relation, pod_defaults_relation, secrets_relation, secrets=(secret,))

        out = ctx.run(ctx.on.relation_created(pod_defaults_relation), state)

        [pod_default] = sent_manifests(out, pod_defaults_relation)
        assert pod_default["kind"] == "PodDefault"
        assert pod_default["spec"]["selector"] == {"matchLabels": {f"access-{APP}": "true"}}
        env = {e["name"]: e.get("value") for e in pod_default["spec"]["env"]}
        assert env == {
            "MLFLOW_ENABLE_PROXY_MULTIPART_UPLOAD": "true",
            "MLFLOW_ENABLE_PROXY_MULTIPART_DOWNLOAD": "true",
            "MLFLOW_MULTIPART_DOWNLOAD_CHUNK_SIZE": str(16 * 1024 * 1024),
            "MLFLOW_MULTIPART_UPLOAD_MINIMUM_FILE_SIZE": str(32 * 1024 * 1024),
            "MLFLOW_TRACKING_URI": f"http://{APP}.{out.model.name}.svc.cluster.local:5000",
            # The login, by reference only.
            "MLFLOW_TRACKING_USERNAME": None,
            "MLFLOW_TRACKING_PASSWORD": None,
        }
        [k8s_secret] = sent_manifests(out, secrets_relation)
        assert sorted(k8s_secret["data"]) == [
            "MLFLOW_TRACKING_PASSWORD",
            "MLFLOW_TRACKING_USERNAME",
        ]

    def test_proxied_mode_without_auth_sends_no_secret(
        self, ctx: Ctx, s3_ready, pod_defaults_relation, secrets_relation
    ):
        relation, secret = s3_ready
        state = make_state(
            relation,
            pod_defaults_relation,
            secrets_relation,
            secrets=(secret,),
            config={"auth": False},
        )

        out = ctx.run(ctx.on.relation_created(pod_defaults_relation), state)

        [pod_default] = sent_manifests(out, pod_defaults_relation)
        assert not [e for e in pod_default["spec"]["env"] if "valueFrom" in e]
        assert sent_manifests(out, secrets_relation) == []

    def test_direct_mode_sends_keys_in_a_secret_and_only_references_in_the_pod_default(
        self, ctx: Ctx, s3_ready, pod_defaults_relation, secrets_relation
    ):
        relation, secret = s3_ready
        state = make_state(
            relation,
            pod_defaults_relation,
            secrets_relation,
            secrets=(secret,),
            config={"serve-artifacts": False},
        )

        out = ctx.run(ctx.on.config_changed(), state)

        [k8s_secret] = sent_manifests(out, secrets_relation)
        assert (
            base64.b64decode(k8s_secret["data"]["AWS_SECRET_ACCESS_KEY"]).decode()
            == "SKEY-very-secret"
        )
        [pod_default] = sent_manifests(out, pod_defaults_relation)
        assert "SKEY-very-secret" not in json.dumps(pod_default)
        refs = {
            e["name"]: e["valueFrom"]["secretKeyRef"]
            for e in pod_default["spec"]["env"]
            if "valueFrom" in e
        }
        assert refs == {
            name: {"name": f"{APP}-credentials", "key": name}
            for name in (
                "AWS_ACCESS_KEY_ID",
                "AWS_SECRET_ACCESS_KEY",
                "MLFLOW_TRACKING_USERNAME",
                "MLFLOW_TRACKING_PASSWORD",
            )
        }
        assert (
            base64.b64decode(k8s_secret["data"]["MLFLOW_TRACKING_PASSWORD"]).decode()
            == "notebook-pw-0123456789abcdef"
        )
        assert "notebook-pw-0123456789abcdef" not in json.dumps(pod_default)
        plain = {e["name"]: e["value"] for e in pod_default["spec"]["env"] if "value" in e}
        assert plain["MLFLOW_S3_ENDPOINT_URL"] == "http://seaweedfs.model.svc.cluster.local:8333"

    def test_non_leader_sends_nothing(self, ctx: Ctx, pod_defaults_relation):
        out = ctx.run(ctx.on.config_changed(), make_state(pod_defaults_relation, leader=False))

        assert out.get_relation(pod_defaults_relation.id).local_app_data == {}

    def test_direct_kubernetes_mode_applies_to_selected_namespaces(
        self, ctx: Ctx, kubernetes: FakeCluster
    ):
        kubernetes.namespaces["other-ns"] = {}
        config = {"pod-defaults-namespace-selector": "user.kubeflow.org/enabled=true"}

        ctx.run(ctx.on.config_changed(), make_state(config=config))

        assert sorted(kubernetes.objects) == [
            ("PodDefault", "user-ns", f"{APP}-access"),
            ("Secret", "user-ns", f"{APP}-credentials"),
        ]

    def test_direct_kubernetes_mode_without_trust_blocks_with_the_command(
        self, ctx: Ctx, kubernetes: FakeCluster
    ):
        kubernetes.refuse = 403
        config = {"pod-defaults-namespace-selector": "user.kubeflow.org/enabled=true"}

        out = ctx.run(ctx.on.config_changed(), make_state(config=config))

        assert out.unit_status == testing.BlockedStatus(
            f"not allowed to apply pod defaults: run 'juju trust {APP} --scope=cluster'"
        )
        assert SERVICE in out.get_container(CONTAINER).plan.services


class TestClientEnvAction:
    def test_proxied_mode_prints_no_s3_key(self, ctx: Ctx, s3_ready):
        relation, secret = s3_ready

        ctx.run(ctx.on.action("get-client-env"), make_state(relation, secrets=(secret,)))

        assert ctx.action_results is not None
        assert f"export MLFLOW_TRACKING_URI=http://{APP}." in ctx.action_results["exports"]
        assert "AWS" not in ctx.action_results["exports"]

    def test_a_given_tracking_uri_means_outside_the_cluster_and_only_that(
        self, ctx: Ctx, s3_ready
    ):
        relation, secret = s3_ready

        ctx.run(
            ctx.on.action("get-client-env", params={"tracking-uri": "http://localhost:5000"}),
            make_state(relation, secrets=(secret,)),
        )

        assert ctx.action_results == {
            "exports": "export MLFLOW_TRACKING_PASSWORD=notebook-pw-0123456789abcdef\n"
            "export MLFLOW_TRACKING_URI=http://localhost:5000\n"
            "export MLFLOW_TRACKING_USERNAME=notebook"
        }

    def test_direct_mode_prints_s3_settings_and_a_given_uri(self, ctx: Ctx, s3_ready):
        relation, secret = s3_ready
        state = make_state(relation, secrets=(secret,), config={"serve-artifacts": False})

        ctx.run(
            ctx.on.action("get-client-env", params={"tracking-uri": "http://localhost:5000"}),
            state,
        )

        assert ctx.action_results is not None
        assert ctx.action_results["exports"].splitlines() == [
            "export AWS_ACCESS_KEY_ID=AKEY1234567890",
            "export AWS_DEFAULT_REGION=us-east-1",
            "export AWS_SECRET_ACCESS_KEY=SKEY-very-secret",
            "export MLFLOW_S3_ENDPOINT_URL=http://seaweedfs.model.svc.cluster.local:8333",
            "export MLFLOW_TRACKING_PASSWORD=notebook-pw-0123456789abcdef",
            "export MLFLOW_TRACKING_URI=http://localhost:5000",
            "export MLFLOW_TRACKING_USERNAME=notebook",
        ]
