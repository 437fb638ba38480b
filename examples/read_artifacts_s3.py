"""Read a run's artifacts straight from the SeaweedFS bucket with boto3.

MLflow keeps artifacts as plain objects: any S3 client can read them. Needs
S3_ENDPOINT, S3_BUCKET and keys for that bucket in the environment (the local
stack exports MLflow's own bucket-scoped keys; on Juju, use seaweedfs's
`get-admin-credentials` action or the keys of a relation).

    python examples/read_artifacts_s3.py RUN_ID
"""

from __future__ import annotations

import os
import sys

import boto3
from botocore.client import Config


def main(run_id: str) -> None:
    """List every object of the run and print the first text artifact."""
    s3 = boto3.client(
        "s3",
        endpoint_url=os.environ["S3_ENDPOINT"],
        region_name=os.environ.get("AWS_DEFAULT_REGION", "us-east-1"),
        config=Config(s3={"addressing_style": "path"}),
    )
    bucket = os.environ["S3_BUCKET"]
    pages = s3.get_paginator("list_objects_v2").paginate(Bucket=bucket)
    keys = [
        o["Key"] for page in pages for o in page.get("Contents", []) if f"/{run_id}/" in o["Key"]
    ]
    for key in keys:
        print(key)
    text = next((k for k in keys if k.endswith(".txt")), None)
    if text:
        print("---", text)
        print(s3.get_object(Bucket=bucket, Key=text)["Body"].read().decode(), end="")


if __name__ == "__main__":
    main(sys.argv[1])
