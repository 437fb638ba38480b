"""CrateDB over TLS, as the cratedb charm configures it from the certificates relation.

The real ``crate`` (``CRATEDB_HOME``; skipped without it, saying how to get
one) under a real Pebble, with the charm's flags and the PKCS#12 keystore the
charm builds from the issued PEM material (``tls.keystore``). The CA is made
in the test (``stack.tls``). MLflow then connects as the mlflow-tracking charm
does when the database relation says ``tls: true`` and hands over the CA.
"""

from __future__ import annotations

import json
import os
import secrets
import ssl
import subprocess
import sys
import urllib.error
import urllib.request
from base64 import b64encode
from collections.abc import Iterator
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from stack.charm_loader import REPO
from stack.cratedb import (
    HOW_TO_GET_ONE,
    NOFILE,
    CrateNode,
    NodePorts,
    cr,
    cratedb_home,
    nofile_allows_bootstrap_checks,
    peer,
)
from stack.mlflow_server import MlflowServer, mt
from stack.pebble import PebbleDaemon, free_port
from stack.tls import TestCA
from tests.workload.conftest import PebbleFactory, record

HOME = cratedb_home()
pytestmark = pytest.mark.skipif(HOME is None, reason=HOW_TO_GET_ONE)


@pytest.fixture(scope="module")
def ca() -> TestCA:
    return TestCA("cratedb workload-test CA")


@pytest.fixture(scope="module")
def tls_node(
    pebble_bin: str, tmp_path_factory: pytest.TempPathFactory, ca: TestCA
) -> Iterator[CrateNode]:
    """One node serving HTTPS on its HTTP port and SSL on its PostgreSQL port."""
    assert HOME is not None
    daemon = PebbleDaemon(pebble_bin, tmp_path_factory.mktemp("cratedb-tls"), nofile=NOFILE)
    daemon.start()
    try:
        ports = NodePorts.free()
        node = CrateNode(
            daemon,
            HOME,
            ports,
            name="cratedb-0",
            enforce_bootstrap_checks=nofile_allows_bootstrap_checks(),
        )
        node.push_keystore(ca.issue(), secrets.token_urlsafe(24))
        me = peer(0, ports)
        node.apply(cr.workload.discovery_settings("cratedb", me, [me], 1, False, me.node_name))
        record("cratedb over TLS: replan -> SQL answers", f"{node.wait_sql():.1f} s")
        yield node
    finally:
        daemon.stop()


def _https_sql(node: CrateNode, context: ssl.SSLContext, statement: str) -> dict:
    request = urllib.request.Request(
        f"https://localhost:{node.ports.http}/_sql",
        data=json.dumps({"stmt": statement}).encode(),
        headers={
            "Content-Type": "application/json",
            "Authorization": "Basic " + b64encode(b"crate:").decode(),
        },
    )
    with urllib.request.urlopen(request, timeout=20, context=context) as response:
        return dict(json.loads(response.read()))


def _psql(node: CrateNode, root_cert: Path) -> subprocess.CompletedProcess[str]:
    pg_bin = os.environ.get("PG_BIN", "")
    psql = Path(pg_bin) / "psql"
    if not psql.exists():
        pytest.skip(
            "psql missing (PG_BIN names PostgreSQL's bin directory; scripts/setup.sh sets it)"
        )
    dsn = (
        f"host=localhost port={node.ports.pg} user=crate dbname=doc "
        f"sslmode=verify-full sslrootcert={root_cert}"
    )
    return subprocess.run(
        [str(psql), dsn, "-tAc", "SELECT 41 + 1"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={"PATH": "/usr/bin:/bin", "PGCONNECT_TIMEOUT": "10"},
    )


def test_http_and_postgresql_clients_that_trust_the_ca_connect_and_others_are_refused(
    tls_node: CrateNode, ca: TestCA, tmp_path: Path
):
    trusting = ssl.create_default_context(cadata=ca.pem)
    assert _https_sql(tls_node, trusting, "SELECT 1")["rows"] == [[1]]
    with pytest.raises(urllib.error.URLError) as refused:
        _https_sql(tls_node, ssl.create_default_context(), "SELECT 1")
    assert isinstance(refused.value.reason, ssl.SSLCertVerificationError)
    # The charm's own client (superuser, loopback) speaks HTTPS too.
    assert tls_node.sql().query("SELECT 2") == [(2,)]

    good, other = tmp_path / "ca.pem", tmp_path / "other-ca.pem"
    good.write_text(ca.pem)
    other.write_text(TestCA("another CA").pem)
    trusted = _psql(tls_node, good)
    assert (trusted.returncode, trusted.stdout.strip()) == (0, "42"), trusted.stderr
    untrusted = _psql(tls_node, other)
    assert untrusted.returncode != 0
    assert "certificate verify failed" in untrusted.stderr, untrusted.stderr


def test_the_metrics_exporter_reads_the_node_over_https(tls_node: CrateNode):
    settings = cr.workload.MetricsSettings(
        node_name=tls_node.name,
        https=True,
        http_port=tls_node.ports.http,
        host="127.0.0.1",
        port=free_port(),
        script=str(REPO / "charms/cratedb/src/in_container/metrics.py"),
        python=sys.executable,
        user=None,
    )
    tls_node.daemon.apply(cr.workload.metrics_layer(settings), "metrics")
    url = f"http://127.0.0.1:{settings.port}/metrics"

    def scraped() -> str:
        try:
            with urllib.request.urlopen(url, timeout=10) as response:
                return response.read().decode()
        except OSError:
            return ""

    tls_node.daemon.wait_for(lambda: "cratedb_up 1" in scraped(), timeout=60, what="the scrape")
    assert "\ncratedb_nodes 1\n" in scraped()


def test_a_renewed_certificate_is_served_without_a_restart(tls_node: CrateNode, ca: TestCA):
    pid = tls_node.pid()
    renewed = ca.issue()
    tls_node.push_keystore(renewed, tls_node.keystore_password)  # same password, as the charm
    seconds = tls_node.daemon.wait_for(
        lambda: (
            ssl.get_server_certificate(("127.0.0.1", tls_node.ports.http)).strip()
            == renewed.certificate.strip()
        ),
        timeout=150,
        what="CrateDB's renewed certificate",
    )
    record("cratedb: renewed certificate served after (no restart, poll 1m)", f"{seconds:.1f} s")
    assert tls_node.pid() == pid
    assert tls_node.sql().query("SELECT 3") == [(3,)]


def test_mlflow_logs_runs_into_cratedb_over_verified_tls(
    tls_node: CrateNode, ca: TestCA, module_pebble_factory: PebbleFactory, mlflow_venv_dir: Path
):
    user, schema, password = "mlflow_tls", "mlflow_tls", secrets.token_urlsafe(16)
    sql = tls_node.sql()
    sql.execute(cr.sql.drop_user(user))
    sql.execute(cr.sql.create_user(user, password))
    sql.execute(cr.sql.grant_schema(user, schema))
    daemon = module_pebble_factory("mlflow-on-cratedb-tls")
    # What the mlflow-tracking charm builds from the answer's tls and tls-ca.
    store = mt.workload.build_store(
        mt.state.StoreKind.CRATEDB,
        schema,
        user,
        password,
        f"localhost:{tls_node.ports.http}",
        None,
        tls=True,
        ca_chain=ca.pem,
        ca_file=str(daemon.directory / "etc" / "db-ca.pem"),
    )
    assert "sslmode=verify-ca" in store.uri
    server = MlflowServer.start(daemon, mlflow_venv_dir, store, mt.state.LOCAL_ARTIFACTS)
    logged = server.notebook(mlflow_venv_dir, "log", "on-cratedb-over-tls")
    checked = server.notebook(mlflow_venv_dir, "check", logged["run_id"], logged["model_uri"])
    assert checked["params"] == {"C": "0.5"}
    assert checked["loss_steps"] == 5
    # The metrics listener counts the runs in CrateDB through the same URI.
    url = f"http://127.0.0.1:{server.settings.metrics_port}/metrics"
    with urllib.request.urlopen(url, timeout=30) as response:
        samples = {
            (sample.name, tuple(sample.labels.items())): sample.value
            for family in text_string_to_metric_families(response.read().decode())
            for sample in family.samples
        }
    assert samples[("mlflow_store_readable", ())] == 1
    assert samples[("mlflow_runs", (("lifecycle_stage", "active"),))] >= 1
