"""A real S3-compatible server for tests and benchmarks: moto's server mode (`moto[server]`),
started on 127.0.0.1 and a free port, stopped at the end.

Authentication is on: requests are signed and checked. Before it starts, moto's root key makes a
user whose policy allows S3 except on LOCKED (nothing) and READ_ONLY (no writes), and the buckets;
the standard credential chain (AWS_* variables, which Ray's workers and `ray start` nodes inherit)
then points at that user. The server's request log, one line a request, shows how each object
was written.
"""

from __future__ import annotations

import ctypes
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

BUCKET = "kpbench-test"
LOCKED = "kpbench-locked"  # exists; the user may do nothing with it
READ_ONLY = "kpbench-readonly"  # exists; the user may list and read, not write
REGION = "us-east-1"
_POLICY = {"Version": "2012-10-17", "Statement": [
    {"Effect": "Allow", "Action": "s3:*", "Resource": "*"},
    {"Effect": "Deny", "Action": "s3:*",
     "Resource": [f"arn:aws:s3:::{LOCKED}", f"arn:aws:s3:::{LOCKED}/*"]},
    {"Effect": "Deny", "Action": ["s3:PutObject", "s3:DeleteObject"],
     "Resource": f"arn:aws:s3:::{READ_ONLY}/*"},
]}
_SETUP_REQUESTS = 6  # the buckets, the user, its policy and its key, made before authentication
# a request line of the log, such as "PUT /bucket/key HTTP/1.1" 200 (with colour codes for some)
_REQUEST = re.compile(r'(GET|PUT|POST|DELETE|HEAD) (/\S*) HTTP/[\d.]+\S*" (\d{3})')


@dataclass(frozen=True)
class S3Server:
    endpoint: str
    log: Path
    access_key: str
    secret_key: str

    def environment(self) -> dict[str, str]:
        """The standard chain's variables for the test user, and nothing read from this machine."""
        return {
            "AWS_ACCESS_KEY_ID": self.access_key, "AWS_SECRET_ACCESS_KEY": self.secret_key,
            "AWS_ENDPOINT_URL": self.endpoint, "AWS_DEFAULT_REGION": REGION, "AWS_REGION": REGION,
            "AWS_EC2_METADATA_DISABLED": "true", "AWS_CONFIG_FILE": os.devnull,
            "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
        }

    def client(self):
        import boto3

        return boto3.client("s3", endpoint_url=self.endpoint, region_name=REGION,
                            aws_access_key_id=self.access_key, aws_secret_access_key=self.secret_key)

    def keys(self, prefix: str, bucket: str = BUCKET) -> list[str]:
        pages = self.client().get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
        return sorted(item["Key"] for page in pages for item in page.get("Contents", []))

    def multipart_uploads(self, bucket: str = BUCKET) -> list[dict]:
        return self.client().list_multipart_uploads(Bucket=bucket).get("Uploads", [])

    def requests(self, method: str, prefix: str) -> Counter:
        """How often each URL path under /BUCKET/prefix got `method` and succeeded (query string
        included)."""
        wanted = f"/{BUCKET}/{prefix}"
        found = (_REQUEST.search(line) for line in self.log.read_text(errors="replace").splitlines())
        return Counter(m[2] for m in found
                       if m and m[1] == method and m[2].startswith(wanted) and m[3].startswith("2"))


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _wait_for(port: int, process: subprocess.Popen, seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"moto server exited with {process.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return  # a bare connection is no request: it does not count against the setup
        except OSError:
            time.sleep(0.2)
    raise RuntimeError(f"moto server did not listen on port {port} within {seconds} s")


def _stop_with_parent() -> None:
    """In the server's process: SIGTERM when the process that started it dies, however it dies
    (Linux; elsewhere the `finally` below is all)."""
    if sys.platform == "linux":
        ctypes.CDLL(None).prctl(1, signal.SIGTERM)  # 1: PR_SET_PDEATHSIG


def _set_up(endpoint: str) -> tuple[str, str]:
    import boto3

    root = {"endpoint_url": endpoint, "region_name": REGION, "aws_access_key_id": "root",
            "aws_secret_access_key": "root"}
    s3, iam = boto3.client("s3", **root), boto3.client("iam", **root)
    for bucket in (BUCKET, LOCKED, READ_ONLY):
        s3.create_bucket(Bucket=bucket)
    iam.create_user(UserName="kpbench")
    iam.put_user_policy(UserName="kpbench", PolicyName="s3", PolicyDocument=json.dumps(_POLICY))
    key = iam.create_access_key(UserName="kpbench")["AccessKey"]
    return key["AccessKeyId"], key["SecretAccessKey"]


@contextmanager
def running_s3_server(folder: Path) -> Iterator[S3Server]:
    port = free_port()
    log = folder / "moto.log"
    env = {**os.environ, "INITIAL_NO_AUTH_ACTION_COUNT": str(_SETUP_REQUESTS)}
    with open(log, "w") as output:
        process = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p",
                                    str(port)], stdout=output, stderr=subprocess.STDOUT, env=env,
                                   preexec_fn=_stop_with_parent)
    try:
        _wait_for(port, process)
        endpoint = f"http://127.0.0.1:{port}"
        yield S3Server(endpoint, log, *_set_up(endpoint))
    finally:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@pytest.fixture(scope="module")
def s3_server(tmp_path_factory) -> Iterator[S3Server]:
    """The server, with this process's standard chain pointing at its user for the module."""
    with running_s3_server(tmp_path_factory.mktemp("s3")) as server, pytest.MonkeyPatch.context() as env:
        for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL_S3"):
            env.delenv(name, raising=False)
        for name, value in server.environment().items():
            env.setenv(name, value)
        yield server
