"""Put, list and read back an object in SeaweedFS with plain boto3.

The endpoint and keys come from the environment, never from code:

    juju run seaweedfs/0 get-admin-credentials     # endpoint, access-key, secret-key
    kubectl -n <model> port-forward svc/seaweedfs 8333 &
    export S3_ENDPOINT=http://127.0.0.1:8333
    export AWS_ACCESS_KEY_ID=<access-key> AWS_SECRET_ACCESS_KEY=<secret-key>
    python3 examples/s3_roundtrip.py my-bucket

A related application's own keys work the same way, on its bucket only.
"""

from __future__ import annotations

import os
import sys

import boto3
from botocore.client import Config


def main(bucket: str) -> None:
    """Write one object into ``bucket``, list the bucket, read the object back."""
    s3 = boto3.client(
        "s3",
        endpoint_url=os.environ["S3_ENDPOINT"],
        region_name=os.environ.get("AWS_DEFAULT_REGION", "us-east-1"),
        # SeaweedFS serves path-style URLs (http://host:8333/bucket/key).
        config=Config(s3={"addressing_style": "path"}),
    )
    s3.put_object(Bucket=bucket, Key="hello.txt", Body=b"hello from boto3\n")
    keys = [obj["Key"] for obj in s3.list_objects_v2(Bucket=bucket).get("Contents", [])]
    body = s3.get_object(Bucket=bucket, Key="hello.txt")["Body"].read().decode()
    print(f"bucket {bucket}: {len(keys)} object(s); hello.txt says: {body.strip()}")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "examples")
