"""A real S3-compatible HTTP server on loopback for tests and benchmarks: moto's standalone
server, started as a subprocess on 127.0.0.1 and a free port. Never the internet.

The server enforces credentials: it is set up with one IAM user allowed ``s3:*`` (whose keys
:attr:`S3Server.env` hands to clients), then IAM authentication is switched on, so wrong
keys get the same 403 errors a real store gives.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import boto3
from botocore.config import Config

REGION = "us-east-1"

_ALLOW_S3 = json.dumps({
    "Version": "2012-10-17",
    "Statement": [{"Effect": "Allow", "Action": "s3:*", "Resource": "*"}],
})


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class S3Server:
    """A moto S3 server subprocess; ``with S3Server.start() as server: ...`` stops it after."""

    def __init__(self, process: subprocess.Popen, port: int):
        self.process = process
        self.port = port
        self.endpoint = f"http://127.0.0.1:{port}"
        self.access_key = "unset"
        self.secret_key = "unset"

    @classmethod
    def start(cls, log_path: str | os.PathLike[str] | None = None, *,
              authenticate: bool = True) -> S3Server:
        """Start a server and wait until it answers; ``log_path`` receives its output."""
        port = _free_port()
        out = open(log_path, "ab") if log_path else subprocess.DEVNULL
        process = subprocess.Popen(
            [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
            stdout=out, stderr=subprocess.STDOUT, env=_clean_env(),
        )
        if log_path:
            out.close()
        server = cls(process, port)
        try:
            server._wait_ready()
            server._make_user(authenticate)
        except BaseException:
            server.stop()
            raise
        return server

    def _wait_ready(self, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while True:
            if self.process.poll() is not None:
                raise RuntimeError(f"moto server exited with {self.process.returncode}")
            try:
                with urllib.request.urlopen(self.endpoint + "/moto-api/", timeout=1):
                    return
            except OSError:
                if time.monotonic() > deadline:
                    raise RuntimeError("moto server did not start") from None
                time.sleep(0.1)

    def _make_user(self, authenticate: bool) -> None:
        iam = boto3.client("iam", endpoint_url=self.endpoint, region_name=REGION,
                           aws_access_key_id="setup", aws_secret_access_key="setup")
        iam.create_user(UserName="pond")
        iam.put_user_policy(UserName="pond", PolicyName="s3", PolicyDocument=_ALLOW_S3)
        key = iam.create_access_key(UserName="pond")["AccessKey"]
        self.access_key, self.secret_key = key["AccessKeyId"], key["SecretAccessKey"]
        if authenticate:
            request = urllib.request.Request(self.endpoint + "/moto-api/reset-auth",
                                             data=b"0", method="POST",
                                             headers={"Content-Type": "text/plain"})
            with urllib.request.urlopen(request, timeout=5):
                pass

    def env(self, **overrides: str) -> dict[str, str]:
        """The AWS settings a client of this server needs (endpoint, keys, region), added to
        a copy of this process' environment without any other AWS settings."""
        env = _clean_env()
        env.update({
            "AWS_ENDPOINT_URL": self.endpoint,
            "AWS_ACCESS_KEY_ID": self.access_key,
            "AWS_SECRET_ACCESS_KEY": self.secret_key,
            "AWS_DEFAULT_REGION": REGION,
            "AWS_CONFIG_FILE": os.devnull,
            "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
        })
        env.update(overrides)
        return env

    def client(self):
        """A boto3 S3 client with this server's credentials."""
        return boto3.client(
            "s3", endpoint_url=self.endpoint, region_name=REGION,
            aws_access_key_id=self.access_key, aws_secret_access_key=self.secret_key,
            config=Config(max_pool_connections=32),
        )

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def __enter__(self) -> S3Server:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _clean_env() -> dict[str, str]:
    """This process' environment without AWS settings, so no real profile leaks in."""
    return {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}


if __name__ == "__main__":
    # Run a server by hand: prints the settings to export, serves until interrupted.
    with S3Server.start(Path(os.environ.get("TMPDIR", "/tmp")) / "moto.log") as server:
        for name, value in server.env().items():
            if name.startswith("AWS_"):
                print(f"export {name}={value}")
        try:
            server.process.wait()
        except KeyboardInterrupt:
            pass
