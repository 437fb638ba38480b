"""Every name, port and path the mlflow-tracking charm and its tests share."""

CONTAINER = "mlflow-server"
SERVICE = "mlflow-server"
# In the service environment: which store the running server uses (for status messages).
STORE_ENV = "CHARM_METADATA_STORE"
LAYER_LABEL = "mlflow-server"
CHECK_READY = "mlflow-ready"
# The leader's scheduled `mlflow gc` (a second service in the same container).
GC_SERVICE = "mlflow-gc"

PORT = 5000
# The server's Prometheus metrics, on a port of their own without a login (see metrics.py).
METRICS_PORT = 9102
METRICS_SERVICE = "mlflow-metrics"

STORAGE = "mlflow"
# Paths inside the workload container.
DATA_DIR = "/var/lib/mlflow"
SQLITE_FILE = f"{DATA_DIR}/mlflow.db"
LOCAL_ARTIFACTS_DIR = f"{DATA_DIR}/artifacts"
CONFIG_DIR = "/etc/mlflow"
ENV_FILE = f"{CONFIG_DIR}/server.env"
S3_CA_FILE = f"{CONFIG_DIR}/s3-ca.pem"
DB_CA_FILE = f"{CONFIG_DIR}/db-ca.pem"
# The server's own certificate (leaf first, then its chain), key and CA, from `certificates`.
TLS_CERT_FILE = f"{CONFIG_DIR}/tls/server.crt"
TLS_KEY_FILE = f"{CONFIG_DIR}/tls/server.key"
TLS_CA_FILE = f"{CONFIG_DIR}/tls/ca.crt"
# Where notebook pods find the CAs they must trust (a Secret volume the PodDefault mounts).
CLIENT_CA_DIR = "/etc/mlflow-ca"
# MLflow's basic-auth app: its config file, and its users when not in the metadata database.
AUTH_FILE = f"{CONFIG_DIR}/basic_auth.ini"
AUTH_SQLITE_FILE = f"{DATA_DIR}/basic_auth.db"
# Runs the server so that Pebble controls every process of it (see supervise.py);
# its state lives in the container's own filesystem, gone with the container.
SUPERVISOR_FILE = f"{CONFIG_DIR}/supervise.py"
SUPERVISOR_STATE = "/tmp/mlflow-server.pgid"  # noqa: S108 (in the container)
# The workload container's Pebble (Juju mounts it there) and the custom notice
# the supervisor records once the server answers /health: it wakes the charm.
PEBBLE_BIN = "/charm/bin/pebble"
READY_NOTICE = "mlflow-tracking.charm/server-ready"
# Runs `mlflow gc` (see mlflow_gc.py) with its own env file: the store URI, S3
# settings and the server's admin login, which the server's env file lacks.
GC_FILE = f"{CONFIG_DIR}/mlflow_gc.py"
GC_ENV_FILE = f"{CONFIG_DIR}/gc.env"
METRICS_FILE = f"{CONFIG_DIR}/metrics.py"
# Reads where the store's schema stands (see in_container/schema.py, migration.py).
SCHEMA_FILE = f"{CONFIG_DIR}/schema.py"
# Peer app data: the schema revision the leader last served or migrated to.
STORE_SCHEMA_KEY = "store-schema"
METRICS_DIR = "/tmp/mlflow-metrics"  # noqa: S108 (prometheus multiprocess scratch, in the container)

# Metadata-store relations: endpoint name -> store kind.
CRATEDB_RELATION = "cratedb"
POSTGRESQL_RELATION = "postgresql"
MYSQL_RELATION = "mysql"
DATABASE_RELATIONS = (CRATEDB_RELATION, POSTGRESQL_RELATION, MYSQL_RELATION)

S3_RELATION = "s3-credentials"
# Charmed Kubeflow's minio (serialized-data-interface): an alternative to S3_RELATION.
OBJECT_STORAGE_RELATION = "object-storage"

# HTTPS for the server: the tls-certificates interface.
TLS_RELATION = "certificates"

# Ingress: traefik-k8s (ingress v2) or istio-ingress-k8s (istio_ingress_route), one at a time.
INGRESS_RELATION = "ingress"
ISTIO_INGRESS_RELATION = "istio-ingress-route"

# Charmed Kubeflow's dashboard sidebar (kubeflow_dashboard_links).
DASHBOARD_LINKS_RELATION = "dashboard-links"

# kubernetes_manifest relations (Charmed Kubeflow's resource-dispatcher).
POD_DEFAULTS_RELATION = "pod-defaults"
SECRETS_RELATION = "secrets"
MANIFEST_RELATIONS = (POD_DEFAULTS_RELATION, SECRETS_RELATION)

# Python modules the charm's features need from the workload image.
IMAGE_MODULES = (
    "mlflow_cratedb",
    "psycopg2",
    "pymysql",
    "prometheus_flask_exporter",
    "httptools",
    "uvloop",
    # MLflow's basic-auth app (config auth, on by default): pip's mlflow[auth].
    "flask_wtf",
)

# The peer relation, and its app-databag key (leader) recording that direct mode
# applied pod defaults: they are cleaned up even after the selector is unset.
PEER_RELATION = "cluster"
DIRECT_APPLIED_KEY = "pod-defaults-applied"
# MLflow's server app and its basic-auth app, in workers patched for CrateDB
# (cratedb_app.py), and the folder (on the server's PYTHONPATH) that holds them,
# beside supervise.py.
CRATEDB_APP = "cratedb"
CRATEDB_AUTH_APP = "cratedb-basic-auth"
APPS_DIR = f"{CONFIG_DIR}/apps"
