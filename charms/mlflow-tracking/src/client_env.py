"""What a client of the server gets: its URL, the CAs it trusts, its environment.

Pure builders, shared by the notebook pod defaults, the manifests sent to
Kubeflow and the ``get-client-env`` action, so that all three say the same.
"""

from __future__ import annotations

import shlex
from collections.abc import Iterable

from constants import CLIENT_CA_DIR, PORT
from state import ArtifactStore
from workload import s3_env


def service_url(
    app: str, model: str, cluster_domain: str, port: int = PORT, scheme: str = "http"
) -> str:
    """The in-cluster URL of the tracking server's Kubernetes service."""
    return f"{scheme}://{app}.{model}.svc.{cluster_domain}:{port}"


# Proxied uploads from this size on go as S3 multipart uploads through
# presigned URLs: the bytes skip the server (measured: 256 MB uploads twice as
# fast, server RSS +12 MiB instead of +599 MiB) and the client still holds no key.
# Downloads likewise fetch presigned ranges straight from the bucket instead of
# waiting for the server to stage the whole file; the client holds each range
# in memory, and 16 MiB ranges measured 1.3-1.5x faster than MLflow's 100 MiB
# default (see docs/benchmarks).
MULTIPART_MIN_BYTES = 32 * 1024 * 1024
DOWNLOAD_CHUNK_BYTES = 16 * 1024 * 1024


# The CA files a client may need, by name: the keys of the Secret the PodDefault
# mounts at CLIENT_CA_DIR.
TRACKING_CA = "mlflow-ca.crt"
S3_CA = "s3-ca.crt"


def client_ca_files(
    tracking_ca: str, artifacts: ArtifactStore, serve_artifacts: bool
) -> dict[str, str]:
    """The CAs a notebook must trust, by file name: the server's; the bucket's in direct mode."""
    files = {TRACKING_CA: tracking_ca} if tracking_ca else {}
    if artifacts.is_s3 and artifacts.ca_chain and not serve_artifacts:
        files[S3_CA] = artifacts.ca_chain
    return files


def client_env(
    tracking_uri: str,
    artifacts: ArtifactStore,
    serve_artifacts: bool,
    in_cluster: bool = True,
    login: tuple[str, str] | None = None,
    ca_files: Iterable[str] = (),
    ca_dir: str = CLIENT_CA_DIR,
) -> dict[str, str]:
    """What a notebook needs: the tracking URI, plus S3 settings when it talks to S3 itself.

    In proxied mode with an S3 bucket, in-cluster clients also move file
    bytes through presigned URLs (large uploads, all downloads): they must
    reach the S3 endpoint, not hold keys. ``in_cluster=False`` leaves that
    out, for clients that reach only the tracking server (e.g. through a
    port-forward), and so does a bucket behind a private CA: MLflow fetches
    presigned URLs trusting only the public CAs. ``login`` is the (user,
    password) MLflow's auth asks for; ``ca_files`` the names (from
    ``client_ca_files``) of the CAs found in ``ca_dir``.
    """
    env = {"MLFLOW_TRACKING_URI": tracking_uri}
    names = set(ca_files)
    if TRACKING_CA in names:
        env["MLFLOW_TRACKING_SERVER_CERT_PATH"] = f"{ca_dir}/{TRACKING_CA}"
    if login is not None:
        env["MLFLOW_TRACKING_USERNAME"], env["MLFLOW_TRACKING_PASSWORD"] = login
    if not serve_artifacts:
        env.update(s3_env(artifacts))
        if S3_CA in names:
            env["AWS_CA_BUNDLE"] = f"{ca_dir}/{S3_CA}"
    elif artifacts.is_s3 and in_cluster and not artifacts.ca_chain:
        env["MLFLOW_ENABLE_PROXY_MULTIPART_UPLOAD"] = "true"
        env["MLFLOW_MULTIPART_UPLOAD_MINIMUM_FILE_SIZE"] = str(MULTIPART_MIN_BYTES)
        env["MLFLOW_ENABLE_PROXY_MULTIPART_DOWNLOAD"] = "true"
        env["MLFLOW_MULTIPART_DOWNLOAD_CHUNK_SIZE"] = str(DOWNLOAD_CHUNK_BYTES)
    return env


def client_env_results(
    env: dict[str, str],
    ca_files: dict[str, str],
    outside_env: dict[str, str] | None = None,
    ui_url: str | None = None,
) -> dict[str, str]:
    """The ``get-client-env`` action's results: shell exports, each CA, the ingress view."""
    results = {"exports": exports(env)}
    # "mlflow-ca.crt" -> "mlflow-ca": action result keys take no dots.
    results.update({name.rsplit(".", 1)[0]: pem for name, pem in ca_files.items()})
    if outside_env is not None:
        results["external-exports"] = exports(outside_env)
    if ui_url:
        results["ui-url"] = ui_url
    return results


def exports(env: dict[str, str]) -> str:
    """``export NAME=value`` lines, quoted for a POSIX shell, in name order."""
    return "\n".join(f"export {k}={shlex.quote(v)}" for k, v in sorted(env.items()))
