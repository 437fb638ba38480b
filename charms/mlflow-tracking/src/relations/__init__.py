"""One module per relation endpoint family: what the charm reads from it and writes to it.

``database`` (cratedb, postgresql, mysql; ``database_v0`` the legacy protocol),
``s3`` (s3-credentials), ``minio`` (object-storage), ``ingress`` (ingress,
istio-ingress-route), ``tls`` (certificates), ``dashboard_links``
(dashboard-links), ``manifests`` (pod-defaults, secrets), ``observability``
(metrics-endpoint, grafana-dashboard), ``log_forwarding`` (logging).
"""
