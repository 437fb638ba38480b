"""Every name, port and path the cratedb charm and its tests share."""

CONTAINER = "cratedb"
SERVICE = "cratedb"
LAYER_LABEL = "cratedb"
CHECK_HTTP = "http-ready"

HTTP_PORT = 4200
TRANSPORT_PORT = 4300
PG_PORT = 5432

STORAGE = "data"
DATA_DIR = "/data"
CRATE_BIN = "/crate/bin/crate"
# CrateDB refuses to run as root; the official image has this user (uid 1000).
CRATE_USER = "crate"
SUPERUSER = "crate"

PEER_RELATION = "cluster"
DATABASE_RELATION = "database"
S3_RELATION = "s3-parameters"

REPOSITORY = "backups"

# Peer databag keys.
ADDRESS_KEY = "address"
NODE_NAME_KEY = "node-name"
BOOTSTRAPPED_KEY = "bootstrapped"
USERS_KEY = "users"
