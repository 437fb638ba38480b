"""Pure builders for the MLflow server: store URIs, command line, env file, Pebble layer.

Plain data in, plain data out. The charm applies what these return, and the
workload tests feed the very same output to a real Pebble running the real
MLflow server.
"""

from __future__ import annotations

import hashlib
import shlex
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote, unquote, urlencode, urlsplit, urlunsplit

import untrusted
from auth import AuthSettings
from constants import (
    AUTH_FILE,
    CHECK_READY,
    CRATEDB_APP,
    CRATEDB_AUTH_APP,
    DATA_DIR,
    DB_CA_FILE,
    ENV_FILE,
    GC_ENV_FILE,
    GC_FILE,
    GC_SERVICE,
    LOCAL_ARTIFACTS_DIR,
    METRICS_DIR,
    METRICS_FILE,
    METRICS_PORT,
    METRICS_SERVICE,
    PEBBLE_BIN,
    PORT,
    READY_NOTICE,
    S3_CA_FILE,
    SCHEMA_FILE,
    SERVICE,
    SQLITE_FILE,
    STORE_ENV,
    SUPERVISOR_FILE,
    SUPERVISOR_STATE,
    TLS_CA_FILE,
    TLS_CERT_FILE,
    TLS_KEY_FILE,
)
from in_container import envfile
from relations.tls import ServerTls
from state import ArtifactStore, MetadataStore, StoreKind

SCHEMES = {
    StoreKind.CRATEDB: "crate",
    StoreKind.POSTGRESQL: "postgresql+psycopg2",
    StoreKind.MYSQL: "mysql+pymysql",
}
DEFAULT_PORTS = {StoreKind.CRATEDB: 4200, StoreKind.POSTGRESQL: 5432, StoreKind.MYSQL: 3306}


def sqlite_store(path: str = SQLITE_FILE) -> MetadataStore:
    """The embedded store on the unit's own storage."""
    return MetadataStore(kind=StoreKind.SQLITE, uri=f"sqlite:///{path}")


def build_store(
    kind: StoreKind,
    database: str,
    username: str | None,
    password: str | None,
    endpoints: str | None,
    uris: str | None,
    tls: bool = False,
    ca_chain: str = "",
    ca_file: str = DB_CA_FILE,
) -> MetadataStore:
    """The SQLAlchemy URI MLflow needs, from what a database relation handed over.

    Credentials and endpoints are preferred; when the password is withheld
    (seen across models), the provider's ``uris`` supply it. The scheme always
    names the driver: ``postgresql://`` alone makes SQLAlchemy 2.1 look for
    psycopg 3, which the image does not carry.

    With ``tls`` the connection is encrypted; with a CA as well, the server's
    certificate must chain to it (``ca_file`` is where the charm puts it). The
    host name is not checked: the endpoints database charms hand out are
    service names their certificates need not carry.
    Raises ValueError when the relation did not give enough to connect, and
    ``untrusted.UntrustedValueError`` (a ValueError) when a field is not what it
    must be: a host that smuggles a query into the URI, a control character.
    """
    parsed = urlsplit(uris) if uris else None
    if parsed is not None and parsed.password and not password:
        # The userinfo of a URI is percent-encoded.
        password = unquote(parsed.password)
        username = username or unquote(parsed.username or "")
    first = (endpoints or "").split(",")[0].strip()
    if not first and parsed is not None and parsed.hostname:
        first = parsed.netloc.rpartition("@")[2]
    if not (username and password and first):
        raise ValueError("the relation has not provided username, password and endpoint")
    host, port = untrusted.host_port("endpoints", first, DEFAULT_PORTS[kind])
    username = untrusted.username("username", username)
    password = untrusted.text("password", password)
    ca_chain = untrusted.pem("tls-ca", ca_chain) if tls and ca_chain else ""
    at = f"[{host}]" if ":" in host else host
    netloc = f"{quote(username, safe='')}:{quote(password, safe='')}@{at}:{port}"
    tls_query = _tls_query(kind, ca_file if ca_chain else None) if tls else []
    if kind is StoreKind.CRATEDB:
        query = urlencode([("schema", database), *tls_query])
        uri = urlunsplit((SCHEMES[kind], netloc, "/", query, ""))
    else:
        query = urlencode(tls_query)
        uri = urlunsplit((SCHEMES[kind], netloc, f"/{quote(database, safe='')}", query, ""))
    return MetadataStore(
        kind=kind, uri=uri, host=host, port=port, database=database, ca_chain=ca_chain
    )


def _tls_query(kind: StoreKind, ca_file: str | None) -> list[tuple[str, str]]:
    """The URI options for an encrypted connection, verified against ``ca_file`` if given."""
    if kind is StoreKind.MYSQL:
        # PyMySQL: any ssl_* option turns TLS on; without a CA it does not verify.
        return (
            [("ssl_ca", ca_file), ("ssl_check_hostname", "false")]
            if ca_file
            else [("ssl_check_hostname", "false")]
        )
    ca_option = "ca_cert" if kind is StoreKind.CRATEDB else "sslrootcert"
    if ca_file:
        return [("sslmode", "verify-ca"), (ca_option, ca_file)]
    return [("sslmode", "require")]


@dataclass(frozen=True)
class ServerSettings:
    """Everything the MLflow server's command line and environment depend on."""

    store: MetadataStore
    artifacts: ArtifactStore
    serve_artifacts: bool = True
    workers: int = 2
    job_execution: bool = False
    metrics: bool = True
    allowed_hosts: tuple[str, ...] = ()
    # Origins whose browsers may change state (POST...): MLflow 3 refuses other
    # origins than localhost, so a UI behind an ingress needs the ingress's.
    cors_allowed_origins: tuple[str, ...] = ()
    host: str = "0.0.0.0"  # noqa: S104 (the pod's service needs it)
    port: int = PORT
    data_dir: str = DATA_DIR
    local_artifacts_dir: str = LOCAL_ARTIFACTS_DIR
    env_file: str = ENV_FILE
    ca_file: str = S3_CA_FILE
    db_ca_file: str = DB_CA_FILE
    metrics_dir: str = METRICS_DIR
    metrics_file: str = METRICS_FILE
    metrics_host: str = "0.0.0.0"  # noqa: S104 (Prometheus scrapes the pod)
    metrics_port: int = METRICS_PORT
    # MLflow's basic-auth app, or None for a server anyone who reaches it may use.
    auth: AuthSettings | None = None
    auth_file: str = AUTH_FILE
    # HTTPS from the certificates relation, or None for plain HTTP.
    tls: ServerTls | None = None
    tls_cert_file: str = TLS_CERT_FILE
    tls_key_file: str = TLS_KEY_FILE
    tls_ca_file: str = TLS_CA_FILE
    # The leader's scheduled mlflow gc: every this many seconds (0: not scheduled here).
    gc_every: float = 0.0
    gc_older_than: str = "30d"
    # The URL gc calls the server at (proxied artifacts are deleted through it);
    # empty: this unit's loopback. With TLS the charm gives the service's name.
    gc_tracking_uri: str = ""
    gc_file: str = GC_FILE
    schema_file: str = SCHEMA_FILE
    gc_env_file: str = GC_ENV_FILE
    supervisor_file: str = SUPERVISOR_FILE
    supervisor_state: str = SUPERVISOR_STATE
    pebble_bin: str = PEBBLE_BIN
    # The executables: "mlflow" / "mlflow-cratedb" / "python3" on the image's PATH.
    bin_dir: str = ""

    def _bin(self, name: str) -> str:
        return f"{self.bin_dir.rstrip('/')}/{name}" if self.bin_dir else name

    @property
    def executable(self) -> str:
        """``mlflow-cratedb`` for CrateDB (its patches break other stores), else ``mlflow``."""
        return self._bin("mlflow-cratedb" if self.store.kind is StoreKind.CRATEDB else "mlflow")

    @property
    def apps_dir(self) -> str:
        """Where the charm's MLflow apps live (``cratedb_app.py``), beside the scripts."""
        return str(Path(self.supervisor_file).with_name("apps"))

    @property
    def app_name(self) -> str | None:
        """The MLflow app the server runs: the charm's on CrateDB, else basic-auth or MLflow's own.

        None: MLflow's own app, open (auth off, not CrateDB).
        """
        if self.store.kind is StoreKind.CRATEDB:
            return CRATEDB_AUTH_APP if self.auth is not None else CRATEDB_APP
        return "basic-auth" if self.auth is not None else None

    @property
    def python(self) -> str:
        """The image's Python (the one MLflow is installed in)."""
        return self._bin("python3")

    @property
    def scheme(self) -> str:
        """``https`` with a certificate, else ``http``."""
        return "https" if self.tls is not None else "http"

    @property
    def artifact_location(self) -> str:
        """Where artifacts land: the S3 URI, or the unit's storage."""
        return self.artifacts.s3_uri if self.artifacts.is_s3 else self.local_artifacts_dir


def allowed_hosts(
    app: str, model: str, cluster_domain: str, extra: Iterable[str] = ()
) -> tuple[str, ...]:
    """Host headers the server accepts: its service names, loopback, pod IPs, and ``extra``.

    MLflow 3 refuses other Host headers (DNS-rebinding protection); the
    in-cluster service name is not among its defaults, so without this every
    notebook request through the service would get a 403 (measured).
    """
    names = [app, f"{app}.{model}", f"{app}.{model}.svc", f"{app}.{model}.svc.{cluster_domain}"]
    hosts = [h for name in names for h in (name, f"{name}:*")]
    hosts += ["localhost", "localhost:*", "127.0.0.1", "127.0.0.1:*", "10.*", "172.*", "192.168.*"]
    hosts += [h for h in extra if h]
    return tuple(dict.fromkeys(hosts))


def cors_origins(ingress_url: str | None, extra_hosts: Iterable[str] = ()) -> tuple[str, ...]:
    """Origins allowed to change state from a browser: the ingress's, and the extra hosts'.

    MLflow 3 refuses a POST whose ``Origin`` is not localhost or listed, and
    browsers send ``Origin`` on same-origin POSTs too: without this, the UI
    behind an ingress can read but not search runs or edit anything.
    """
    origins: list[str] = []
    if ingress_url:
        parts = urlsplit(ingress_url)
        origins.append(f"{parts.scheme}://{parts.netloc}")
    for host in extra_hosts:
        if "*" not in host:
            origins += [f"http://{host}", f"https://{host}"]
    return tuple(dict.fromkeys(origins))


def server_command(settings: ServerSettings) -> list[str]:
    """The MLflow server argv. Credentials stay out of it: they are in the env file."""
    argv = [
        settings.executable,
        "server",
        *(["--app-name", settings.app_name] if settings.app_name else []),
        "--host",
        settings.host,
        "--port",
        str(settings.port),
        "--workers",
        str(settings.workers),
        "--allowed-hosts",
        ",".join(settings.allowed_hosts),
    ]
    if settings.cors_allowed_origins:
        argv += ["--cors-allowed-origins", ",".join(settings.cors_allowed_origins)]
    if settings.serve_artifacts:
        argv += ["--serve-artifacts", "--artifacts-destination", settings.artifact_location]
    else:
        argv += ["--no-serve-artifacts", "--default-artifact-root", settings.artifact_location]
    if settings.metrics:
        argv += ["--expose-prometheus", settings.metrics_dir]
    if settings.tls is not None:
        # uvicorn reads the pair once, at start: a renewed certificate restarts the server.
        ssl = ["--ssl-certfile", settings.tls_cert_file, "--ssl-keyfile", settings.tls_key_file]
        argv += ["--uvicorn-opts", shlex.join(ssl)]
    return argv


def container_scripts(settings: ServerSettings) -> dict[str, str]:
    """Path -> content of every script the charm pushes into the container.

    They run with the image's Python, never in the charm; ``envfile.py`` sits
    beside the others, which import it.
    """
    here = Path(__file__).parent / "in_container"
    scripts = {
        settings.supervisor_file: "supervise.py",
        settings.metrics_file: "metrics.py",
        settings.gc_file: "mlflow_gc.py",
        settings.schema_file: "schema.py",
        str(Path(settings.schema_file).with_name("cratedb_schema.py")): "cratedb_schema.py",
        str(Path(settings.supervisor_file).with_name("envfile.py")): "envfile.py",
        f"{settings.apps_dir}/cratedb_app.py": "cratedb_app.py",
    }
    files = {path: (here / name).read_text() for path, name in scripts.items()}
    # A distribution's metadata, so that MLflow finds the app by its entry point name.
    dist_info = f"{settings.apps_dir}/charm_mlflow_apps-1.0.dist-info"
    files[f"{dist_info}/METADATA"] = (
        "Metadata-Version: 2.1\nName: charm-mlflow-apps\nVersion: 1.0\n"
    )
    files[f"{dist_info}/entry_points.txt"] = (
        f"[mlflow.app]\n{CRATEDB_APP} = cratedb_app:create_app\n"
        f"{CRATEDB_AUTH_APP} = cratedb_app:create_auth_app\n"
    )
    return files


def service_command(settings: ServerSettings) -> list[str]:
    """The Pebble service's argv: the server under ``supervise.py``.

    ``mlflow server`` forks uvicorn instead of becoming it; the supervisor ends
    what is left of the server whenever its main process dies, so that Pebble's
    restart always finds the port free (see supervise.py).
    """
    scheme = "https" if settings.tls is not None else "http"
    return [
        settings.python,
        settings.supervisor_file,
        settings.supervisor_state,
        "--env-file",
        settings.env_file,
        # Once /health answers, the supervisor wakes the charm (no hook waits for it).
        "--ready-url",
        f"{scheme}://127.0.0.1:{settings.port}/health",
        "--ready-notice",
        READY_NOTICE,
        "--pebble",
        settings.pebble_bin,
        "--",
        *server_command(settings),
    ]


def s3_env(artifacts: ArtifactStore) -> dict[str, str]:
    """The variables boto3 (inside MLflow) needs to reach the artifact bucket."""
    if not artifacts.is_s3:
        return {}
    env = {}
    if artifacts.endpoint:
        env["MLFLOW_S3_ENDPOINT_URL"] = artifacts.endpoint
    if artifacts.region:
        env["AWS_DEFAULT_REGION"] = artifacts.region
    if artifacts.credentials is not None:
        env["AWS_ACCESS_KEY_ID"] = artifacts.credentials.access_key
        env["AWS_SECRET_ACCESS_KEY"] = artifacts.credentials.secret_key
    return env


def server_env(settings: ServerSettings) -> dict[str, str]:
    """The server's environment that carries credentials (goes to the env file)."""
    env = {"MLFLOW_BACKEND_STORE_URI": settings.store.uri, **s3_env(settings.artifacts)}
    if settings.store.ca_chain:
        # The CA is part of the store: a new one restarts the server, like a new URI.
        env["CHARM_DB_CA_SHA256"] = hashlib.sha256(settings.store.ca_chain.encode()).hexdigest()[
            :16
        ]
    if settings.auth is not None:
        env["MLFLOW_AUTH_CONFIG_PATH"] = settings.auth_file
        env["MLFLOW_FLASK_SERVER_SECRET_KEY"] = settings.auth.flask_secret_key
        # The users' database and the default permission restart the server; a
        # rotated password does not (it is applied to the users' database).
        env["CHARM_AUTH_SHA256"] = settings.auth.restart_digest
    return env


def env_file(settings: ServerSettings) -> str:
    """The env file ``supervise.py`` gives the server (pushed with mode 0600).

    ValueError when a value cannot be written (``envfile.render``).
    """
    return envfile.render(server_env(settings))


# Pebble's HTTP checks trust only the system's CAs: with TLS the check is this
# script, which trusts the relation's CA. The host name is not checked (the
# certificate names the service, the check calls loopback); the chain is.
_HTTPS_HEALTH = """
import ssl, sys, urllib.request
ctx = ssl.create_default_context(cafile=sys.argv[2])
ctx.check_hostname = False
with urllib.request.urlopen(sys.argv[1], context=ctx, timeout=4) as r:
    sys.exit(0 if r.status == 200 else 1)
"""


# Failed checks (10 s apart) before Pebble restarts the server. On a fresh CrateDB
# store the server's first start creates MLflow's 47 tables: 32 s on a 3-node
# cluster (measured, CrateDB 6.4.0, 2 cores); at 3 checks it was killed midway,
# every time, and never served. Elsewhere tables come from migrations run
# before the server starts.
READY_THRESHOLD = 3
READY_THRESHOLD_CRATEDB = 18


def ready_threshold(settings: ServerSettings) -> int:
    """How many failed readiness checks restart the server (its first start included)."""
    return READY_THRESHOLD_CRATEDB if settings.store.kind is StoreKind.CRATEDB else READY_THRESHOLD


def ready_check(settings: ServerSettings) -> dict:
    """The readiness check: ``/health`` over HTTP, or over HTTPS verified against the CA."""
    url = f"{settings.scheme}://127.0.0.1:{settings.port}/health"
    if settings.tls is None:
        return {"http": {"url": url}}
    argv = [settings.python, "-c", _HTTPS_HEALTH, url, settings.tls_ca_file]
    return {"exec": {"command": shlex.join(argv)}}


def gc_env(settings: ServerSettings, admin: tuple[str, str] | None) -> dict[str, str]:
    """What ``mlflow gc`` needs: the store, the bucket, and the server with its login.

    With proxied artifacts MLflow deletes a run's artifacts through the
    tracking server (``MLFLOW_TRACKING_URI``), so the admin logs in there.
    """
    uri = settings.gc_tracking_uri or f"{settings.scheme}://127.0.0.1:{settings.port}"
    env = {
        "MLFLOW_BACKEND_STORE_URI": settings.store.uri,
        "MLFLOW_TRACKING_URI": uri,
        **s3_env(settings.artifacts),
    }
    if admin is not None:
        env["MLFLOW_TRACKING_USERNAME"], env["MLFLOW_TRACKING_PASSWORD"] = admin
    if settings.tls is not None:
        env["MLFLOW_TRACKING_SERVER_CERT_PATH"] = settings.tls_ca_file
    if settings.artifacts.is_s3 and settings.artifacts.ca_chain:
        env["AWS_CA_BUNDLE"] = settings.ca_file
    return env


def gc_env_file(settings: ServerSettings, admin: tuple[str, str] | None) -> str:
    """The gc env file (pushed with mode 0600; read again before every run)."""
    return envfile.render(gc_env(settings, admin))


def gc_argv(
    older_than: str,
    every: float = 0.0,
    python: str = "python3",
    gc_file: str = GC_FILE,
    gc_env_file: str = GC_ENV_FILE,
) -> list[str]:
    """``mlflow_gc.py``'s argv: once (the action), or every ``every`` seconds (the service)."""
    argv = [python, gc_file, "--env-file", gc_env_file]
    if every > 0:
        argv += ["--every", f"{every:g}"]
    return [*argv, "--", "--older-than", older_than]


def pebble_layer(settings: ServerSettings, log_targets: dict[str, dict] | None = None) -> dict:
    """The Pebble layer that runs and watches the MLflow server (and, on the leader, gc).

    ``log_targets``: where Pebble forwards the services' output (``log_forwarding``).
    """
    environment = {
        # ~2.7 GB with the job consumers, ~0.8 GB without (measured).
        "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "true" if settings.job_execution else "false",
        # No usage data leaves the cluster from the server.
        "MLFLOW_DISABLE_TELEMETRY": "true",
        # The env file is read at start: its digest in the layer restarts the
        # server exactly when the file's content changes.
        "CHARM_ENV_FILE_SHA256": hashlib.sha256(env_file(settings).encode()).hexdigest()[:16],
        # Which store the running server uses: the status names it while another comes up.
        STORE_ENV: settings.store.kind.value,
    }
    if settings.metrics:
        environment["PROMETHEUS_MULTIPROC_DIR"] = settings.metrics_dir
    if settings.store.kind is StoreKind.CRATEDB:
        # The server and its workers find the app there (cratedb_app.py).
        environment["PYTHONPATH"] = settings.apps_dir
    if settings.tls is not None:
        environment["CHARM_TLS_SHA256"] = settings.tls.digest
    if settings.artifacts.is_s3 and settings.artifacts.ca_chain:
        # In the layer, not the env file: the env file never overrides a
        # variable the process already has (measured: an image-wide
        # AWS_CA_BUNDLE won, and every artifact upload failed verification).
        environment["AWS_CA_BUNDLE"] = settings.ca_file
        environment["CHARM_S3_CA_SHA256"] = hashlib.sha256(
            settings.artifacts.ca_chain.encode()
        ).hexdigest()[:16]
    return {
        "summary": "MLflow tracking server",
        "description": f"MLflow on {settings.store.kind.label}",
        "services": {
            SERVICE: {
                "override": "replace",
                "summary": "MLflow tracking server",
                "command": shlex.join(service_command(settings)),
                "startup": "enabled",
                "working-dir": settings.data_dir,
                "environment": environment,
                "kill-delay": "30s",
                "on-check-failure": {CHECK_READY: "restart"},
            },
            # Metrics without a login, read from the workers' multiprocess files.
            METRICS_SERVICE: {
                "override": "replace",
                "summary": "MLflow's Prometheus metrics on a port of their own",
                "command": shlex.join(
                    [
                        settings.python,
                        settings.metrics_file,
                        settings.metrics_host,
                        str(settings.metrics_port),
                        # For the store's counts of runs and experiments.
                        settings.env_file,
                    ]
                ),
                "startup": "enabled" if settings.metrics else "disabled",
                "environment": {"PROMETHEUS_MULTIPROC_DIR": settings.metrics_dir},
            },
            # Always defined, so that a unit that stops leading also stops collecting.
            GC_SERVICE: {
                "override": "replace",
                "summary": "mlflow gc of deleted runs, on a schedule (leader)",
                "command": shlex.join(
                    gc_argv(
                        settings.gc_older_than,
                        settings.gc_every or 86400,
                        settings.python,
                        settings.gc_file,
                        settings.gc_env_file,
                    )
                ),
                "startup": "enabled" if settings.gc_every > 0 else "disabled",
                "working-dir": settings.data_dir,
                "environment": {"MLFLOW_DISABLE_TELEMETRY": "true"},
            },
        },
        "checks": {
            CHECK_READY: {
                "override": "replace",
                "level": "ready",
                "period": "10s",
                "timeout": "5s",
                "threshold": ready_threshold(settings),
                **ready_check(settings),
            }
        },
        **({"log-targets": log_targets} if log_targets else {}),
    }


def schema_argv(settings: ServerSettings) -> list[str]:
    """``schema.py`` with the image's Python (the store's URI goes in the environment)."""
    return [settings.python, settings.schema_file]


def cratedb_upgrade_argv(settings: ServerSettings) -> list[str]:
    """``cratedb_schema.py upgrade`` with the image's Python (mlflow-cratedb has no migrations)."""
    return [
        settings.python,
        str(Path(settings.schema_file).with_name("cratedb_schema.py")),
        "upgrade",
    ]


def db_upgrade_argv(executable: str = "mlflow") -> list[str]:
    """``mlflow db upgrade`` reading the URI from the environment, never from argv."""
    return ["sh", "-c", f'exec {shlex.quote(executable)} db upgrade "$MLFLOW_BACKEND_STORE_URI"']


def probe_argv(modules: Iterable[str]) -> list[str]:
    """A command printing which of ``modules`` the image's Python can import."""
    names = ",".join(modules)
    script = (
        "import importlib.util as u;"
        f"print(','.join(m for m in '{names}'.split(',') if u.find_spec(m)))"
    )
    return [
        "sh",
        "-c",
        f'exec "$(command -v python3 || command -v python)" -c {shlex.quote(script)}',
    ]


# Exit codes of the bucket script.
BUCKET_READY = 0
BUCKET_ACCESS_DENIED = 3
BUCKET_UNREACHABLE = 4

_ENSURE_BUCKET = """
import os, sys
import boto3, botocore.config, botocore.exceptions as e
s3 = boto3.client("s3", endpoint_url=os.environ["MLFLOW_S3_ENDPOINT_URL"],
                  config=botocore.config.Config(s3={"addressing_style": "path"}))
bucket = os.environ["CHARM_BUCKET"]
try:
    s3.head_bucket(Bucket=bucket)
    print("exists")
except e.ClientError as err:
    code = str(err.response.get("Error", {}).get("Code"))
    if code in ("403", "AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch"):
        sys.exit(3)
    if code not in ("404", "NoSuchBucket", "NotFound"):
        print(code, file=sys.stderr)
        sys.exit(4)
    try:
        s3.create_bucket(Bucket=bucket)
    except e.ClientError as err:
        print(err.response.get("Error", {}).get("Code"), file=sys.stderr)
        sys.exit(3 if "Denied" in str(err) else 4)
    print("created")
except (e.EndpointConnectionError, e.ConnectTimeoutError, e.ReadTimeoutError) as err:
    print(type(err).__name__, file=sys.stderr)
    sys.exit(4)
"""


def ensure_bucket_argv() -> list[str]:
    """A command creating the artifact bucket if missing, with the image's boto3.

    The endpoint, keys and bucket come from the environment (``bucket_env``),
    never from argv. Exit 0: the bucket exists; 3: the keys were refused;
    4: the endpoint could not be reached or answered otherwise.
    """
    return [
        "sh",
        "-c",
        f'exec "$(command -v python3 || command -v python)" -c {shlex.quote(_ENSURE_BUCKET)}',
    ]


def bucket_env(artifacts: ArtifactStore, ca_file: str = "") -> dict[str, str]:
    """The environment ``ensure_bucket_argv`` reads: S3 settings and the bucket."""
    env = {**s3_env(artifacts), "CHARM_BUCKET": artifacts.bucket}
    if ca_file:
        env["AWS_CA_BUNDLE"] = ca_file
    return env
