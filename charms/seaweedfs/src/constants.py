"""Every name, port and path the seaweedfs charm and its tests share."""

CONTAINER = "seaweedfs"
SERVICE = "seaweedfs"
LAYER_LABEL = "seaweedfs"

PEER_RELATION = "cluster"
S3_RELATION = "s3-credentials"
# HTTPS for the S3 gateway: the tls-certificates interface.
TLS_RELATION = "certificates"
STORAGE = "data"

# Paths inside the workload container.
DATA_DIR = "/data"
CONFIG_DIR = "/etc/seaweedfs"
IDENTITIES_FILE = f"{CONFIG_DIR}/identities.json"
# The S3 gateway's certificate (leaf, then chain) and key, from the certificates relation.
TLS_CERT_FILE = f"{CONFIG_DIR}/tls/s3.crt"
TLS_KEY_FILE = f"{CONFIG_DIR}/tls/s3.key"
# SeaweedFS's own locks: security.toml, the CA, the shared gRPC certificate and key
# (``security``), read with ``weed -config_dir``.
SECURITY_DIR = f"{CONFIG_DIR}/security"
# How often weed looks at them again: a renewal is served within this, without a restart.
TLS_REFRESH_INTERVAL = "1m"

# Listeners. Only S3 and metrics face the network; master, volume and filer
# listen on the pod's loopback, where only the charm and weed itself reach them.
S3_PORT = 8333
MASTER_PORT = 9333
VOLUME_PORT = 8080
FILER_PORT = 8888
METRICS_PORT = 9327
# gRPC ports are SeaweedFS's default of HTTP port + 10000, spelled out so two
# stores on one host (the workload tests) never collide.
GRPC_OFFSET = 10000

# Pebble check names.
CHECK_S3 = "s3-ready"
# A one-shot Pebble service waits (in the container, never in a hook) until S3
# answers, then records this Pebble custom notice: Juju wakes the charm with
# pebble-custom-notice and the buckets are made then.
READY_SERVICE = "seaweedfs-ready"
READY_NOTICE = "seaweedfs.charm/s3-ready"
# Juju mounts its Pebble into every workload container here.
PEBBLE_BIN = "/charm/bin/pebble"
CHECK_MASTER = "master-ready"

# Secret labels (app-owned secrets, created by the leader).
ADMIN_SECRET_LABEL = "admin-credentials"  # noqa: S105 (a label, not a password)
IDENTITY_SECRET_PREFIX = "s3-identity-"  # noqa: S105 (a label prefix)

# Peer app-databag key listing the relation ids that own an identity.
PEER_IDENTITIES_KEY = "identities"
# Peer app-databag key (leader): who owns which bucket (``ownership``).
LEDGER_KEY = "bucket-owners"

# Volume growth: SeaweedFS grows 7 volumes at once for each new bucket
# (collection) by default; two per bucket leaves room for far more buckets on
# a small disk (see workload.volume_layout).
VOLUMES_PER_GROWTH = 2

# What the charm records about the data it serves, in this folder of the data
# storage (it follows the storage, whichever pod mounts it): the ``weed version``
# that last served the data (written by the ready service once S3 answers), and
# the move of a one-unit store's master state (``upgrades``).
RECORDS_DIR = "charm"
VERSION_RECORD = "weed-version"
MIGRATION_RECORD = "one-unit-migration.json"

# Peer databag keys. Unit: how the others reach it. App (leader): the units
# running a master, and the replication the volumes were last given.
ADDRESS_KEY = "address"
MASTERS_KEY = "masters"
REPLICATION_KEY = "replication"
# Unit: set while the unit moves a one-unit store to its cluster identity (the
# old master state's new path); the other units wait and the masters stay its.
MOVING_KEY = "moving-one-unit-store"
