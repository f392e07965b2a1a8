"""Debian's docker-registry on 127.0.0.1, started and stopped by hand: a plain module
(not a conftest) so bench/ and hardening/ use it too."""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

USER = "tester"
PASSWORD = "s3cret-pw"


def find_tool(name: str) -> str:
    """The path of ``name``, or FileNotFoundError naming the package step that installs it."""
    path = shutil.which(name)
    if path is None:
        raise FileNotFoundError(f"{name} is not installed (make setup installs it)")
    return path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


class Registry:
    """docker-registry serving 127.0.0.1:PORT from ``data``."""

    def __init__(self, work: Path, *, htpasswd: bool) -> None:
        self.binary = find_tool("docker-registry")
        self.work = work
        self.port = free_port()
        self.host = f"127.0.0.1:{self.port}"
        self.auth = htpasswd
        self.proc: subprocess.Popen[bytes] | None = None
        auth = ""
        if htpasswd:
            tool = find_tool("htpasswd")
            hfile = work / "htpasswd"
            subprocess.run(
                [tool, "-B", "-b", "-c", str(hfile), USER, PASSWORD],
                check=True,
                capture_output=True,
            )
            auth = f"auth:\n  htpasswd:\n    realm: ocibuild-test\n    path: {hfile}\n"
        self.config = work / "config.yml"
        self.config.write_text(
            "version: 0.1\nlog:\n  level: error\n  accesslog:\n    disabled: true\n"
            f"storage:\n  filesystem:\n    rootdirectory: {work / 'data'}\n"
            "  delete:\n    enabled: true\n"
            f"http:\n  addr: {self.host}\n{auth}"
        )

    def start(self) -> None:
        log = open(self.work / "registry.log", "ab")  # noqa: SIM115 - kept by the process
        self.proc = subprocess.Popen(
            [self.binary, "serve", str(self.config)], stdout=log, stderr=log
        )
        log.close()
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            try:
                urllib.request.urlopen(f"http://{self.host}/v2/", timeout=1)
                return
            except urllib.error.HTTPError:
                return  # 401: up, wants auth
            except OSError:
                time.sleep(0.05)
        raise RuntimeError(
            f"docker-registry did not start: {(self.work / 'registry.log').read_text()}"
        )

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
            self.proc = None

    @property
    def creds(self) -> str:
        return f"{USER}:{PASSWORD}"

    def tool_auth(self) -> list[str]:
        """skopeo/buildah flags for this registry (plain HTTP, credentials if needed)."""
        return ["--tls-verify=false"] + ([f"--creds={self.creds}"] if self.auth else [])
