"""Every name, port and path the cratedb charm and its tests share."""

CONTAINER = "cratedb"
SERVICE = "cratedb"
LAYER_LABEL = "cratedb"
CHECK_HTTP = "http-ready"

HTTP_PORT = 4200
TRANSPORT_PORT = 4300
PG_PORT = 5432
# COS: the node's metrics from its sys tables, by the charm's own exporter (metrics.py)
# run with the image's python3 beside the node.
METRICS_PORT = 9103
METRICS_SERVICE = "cratedb-metrics"
METRICS_LAYER_LABEL = "metrics"
METRICS_FILE = "/etc/cratedb/metrics.py"
PYTHON = "python3"

STORAGE = "data"
DATA_DIR = "/data"
CRATE_BIN = "/crate/bin/crate"
# CrateDB refuses to run as root; the official image has this user (uid 1000).
CRATE_USER = "crate"
SUPERUSER = "crate"

PEER_RELATION = "cluster"
DATABASE_RELATION = "database"
S3_RELATION = "s3-parameters"
# HTTPS on 4200 and SSL on the PostgreSQL port: the tls-certificates interface.
TLS_RELATION = "certificates"
# The node's key and certificate chain as CrateDB reads them: a PKCS#12 keystore.
KEYSTORE_FILE = "/etc/cratedb/keystore.p12"
KEYSTORE_SECRET_LABEL = "keystore-password"  # noqa: S105 (a label)
# How often CrateDB looks at the keystore again: a renewal needs no restart.
TLS_POLL_INTERVAL = "1m"

REPOSITORY = "backups"
# Scheduled backups: the leader's runner (in_container/backup_runner.py) under Pebble.
BACKUP_SERVICE = "backup-schedule"
BACKUP_LAYER_LABEL = "backup-schedule"
# Files pushed beside the exporter; the runner imports the other two by name.
SCRIPTS_DIR = "/etc/cratedb"
# Written by the runner (the crate user), read by the charm and the exporter.
BACKUP_STATE_DIR = "/var/lib/cratedb-charm"
BACKUP_STATE_FILE = f"{BACKUP_STATE_DIR}/backup-state.json"

# Peer databag keys.
ADDRESS_KEY = "address"
NODE_NAME_KEY = "node-name"
BOOTSTRAPPED_KEY = "bootstrapped"
USERS_KEY = "users"
# Unit: the CrateDB version this unit's node last ran (its data's), for the refresh.
VERSION_KEY = "crate-version"
# App (leader): who owns which schema (``ownership``).
LEDGER_KEY = "schema-owners"
