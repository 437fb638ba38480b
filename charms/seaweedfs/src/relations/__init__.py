"""One module per relation endpoint family: what the charm reads from it and writes to it.

``s3`` (s3-credentials: one bucket and identity per relation), ``membership``
(the peer relation: the store's members), ``tls`` (certificates),
``observability`` (metrics-endpoint, grafana-dashboard), ``log_forwarding``
(logging).
"""
