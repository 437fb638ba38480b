"""One module per relation endpoint family: what the charm reads from it and writes to it.

``database`` (database: one user and schema per client), ``backup``
(s3-parameters), ``tls`` (certificates), ``observability`` (metrics-endpoint,
grafana-dashboard), ``log_forwarding`` (logging).
"""
