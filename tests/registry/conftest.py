"""Real registries for the registry tests: Debian's docker-registry on 127.0.0.1.

``registry`` is plain (no auth); ``auth_registry`` uses a bcrypt htpasswd file made with
``htpasswd -B``. Both are started once per session on free ports and stopped at the end.
``Registry`` can be stopped and restarted on the same port and storage (the mid-push
fault). ``FaultRegistry`` is a small HTTP server of our own that speaks just enough of
the distribution API (with an anonymous bearer-token flow) to serve corrupt or cut blobs.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import socket
import tarfile
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import require_tool
from tests.registry.server import Registry


def _start(
    tmp_path_factory: pytest.TempPathFactory, name: str, htpasswd: bool
) -> Iterator[Registry]:
    require_tool("docker-registry")
    require_tool("htpasswd")
    reg = Registry(tmp_path_factory.mktemp(name), htpasswd=htpasswd)
    reg.start()
    try:
        yield reg
    finally:
        reg.stop()


@pytest.fixture(scope="session")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Registry]:
    yield from _start(tmp_path_factory, "registry", False)


@pytest.fixture(scope="session")
def auth_registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Registry]:
    yield from _start(tmp_path_factory, "authregistry", True)


@pytest.fixture(params=["plain", "htpasswd"])
def any_registry(request: pytest.FixtureRequest) -> Registry:
    name = "registry" if request.param == "plain" else "auth_registry"
    reg: Registry = request.getfixturevalue(name)
    return reg


def _own_registry(work: Path, *, htpasswd: bool) -> Iterator[Registry]:
    require_tool("docker-registry")
    if htpasswd:
        require_tool("htpasswd")
    work.mkdir()
    reg = Registry(work, htpasswd=htpasswd)
    reg.start()
    try:
        yield reg
    finally:
        reg.stop()


@pytest.fixture
def fresh_registry(tmp_path: Path) -> Iterator[Registry]:
    """A registry of its own (to be stopped mid-test)."""
    yield from _own_registry(tmp_path / "reg", htpasswd=False)


@pytest.fixture
def fresh_auth_registry(tmp_path: Path) -> Iterator[Registry]:
    """A registry with htpasswd of its own: none of the session's pushes are in it."""
    yield from _own_registry(tmp_path / "authreg", htpasswd=True)


# -- a registry we control, for faults ---------------------------------------------------
def sha(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def make_layer(files: dict[str, bytes]) -> tuple[bytes, str]:
    """(gzip blob, diffID) of a deterministic layer holding ``files``."""
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tf:
        for name, data in sorted(files.items()):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            info.mode = 0o644
            tf.addfile(info, io.BytesIO(data))
    tar = raw.getvalue()
    return gzip.compress(tar, mtime=0), sha(tar)


@dataclass
class FaultRegistry:
    """A minimal OCI distribution server with anonymous bearer tokens and fault knobs."""

    port: int = 0
    blobs: dict[str, bytes] = field(default_factory=dict)
    manifests: dict[str, tuple[str, bytes]] = field(default_factory=dict)  # "repo:ref"
    corrupt: set[str] = field(default_factory=set)  # digests served with one byte flipped
    cut_once: set[str] = field(default_factory=set)  # digests whose first GET is cut short
    token_requests: int = 0
    blob_gets: list[str] = field(default_factory=list)
    ranges: list[str] = field(default_factory=list)

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.port}"

    def add_image(self, repo: str, tag: str, layers: list[dict[str, bytes]]) -> dict[str, Any]:
        descs, diff_ids = [], []
        for files in layers:
            blob, diff_id = make_layer(files)
            self.blobs[sha(blob)] = blob
            descs.append(
                {
                    "mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
                    "digest": sha(blob),
                    "size": len(blob),
                }
            )
            diff_ids.append(diff_id)
        config = json.dumps(
            {
                "architecture": "amd64",
                "os": "linux",
                "config": {"Cmd": ["/bin/sh"]},
                "rootfs": {"type": "layers", "diff_ids": diff_ids},
            }
        ).encode()
        self.blobs[sha(config)] = config
        manifest = json.dumps(
            {
                "schemaVersion": 2,
                "mediaType": "application/vnd.oci.image.manifest.v1+json",
                "config": {
                    "mediaType": "application/vnd.oci.image.config.v1+json",
                    "digest": sha(config),
                    "size": len(config),
                },
                "layers": descs,
            }
        ).encode()
        mt = "application/vnd.oci.image.manifest.v1+json"
        self.manifests[f"{repo}:{tag}"] = (mt, manifest)
        self.manifests[f"{repo}:{sha(manifest)}"] = (mt, manifest)
        return {
            "config": sha(config),
            "layers": [d["digest"] for d in descs],
            "manifest": sha(manifest),
        }


def _handler(state: FaultRegistry) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:
            pass

        def _send(
            self, code: int, body: bytes = b"", headers: dict[str, str] | None = None
        ) -> None:
            self.send_response(code)
            for k, v in (headers or {}).items():
                self.send_header(k, v)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body)

        def do_HEAD(self) -> None:
            self.do_GET()

        def do_GET(self) -> None:
            path = self.path.split("?", 1)[0]
            if path == "/token":
                state.token_requests += 1
                self._send(200, b'{"token":"anon-token"}', {"Content-Type": "application/json"})
                return
            if self.headers.get("Authorization") != "Bearer anon-token":
                challenge = (
                    f'Bearer realm="http://{state.host}/token",service="fault",'
                    f'scope="repository:x:pull"'
                )
                self._send(
                    401,
                    b'{"errors":[{"code":"UNAUTHORIZED","message":"auth"}]}',
                    {"WWW-Authenticate": challenge},
                )
                return
            parts = path.split("/")
            if path == "/v2/":
                self._send(200, b"{}")
            elif len(parts) >= 5 and parts[-2] == "manifests":
                repo = "/".join(parts[2:-2])
                found = state.manifests.get(f"{repo}:{parts[-1]}")
                if found is None:
                    self._send(
                        404,
                        b'{"errors":[{"code":"MANIFEST_UNKNOWN","message":"manifest unknown"}]}',
                    )
                else:
                    self._send(200, found[1], {"Content-Type": found[0]})
            elif len(parts) >= 5 and parts[-2] == "blobs":
                self._blob(parts[-1])
            else:
                self._send(404)

        def _blob(self, digest: str) -> None:
            data = state.blobs.get(digest)
            if data is None:
                self._send(404)
                return
            state.blob_gets.append(digest)
            if digest in state.corrupt:
                data = bytes([data[0] ^ 0xFF]) + data[1:]
            start = 0
            rng = self.headers.get("Range")
            if rng:
                state.ranges.append(rng)
                start = int(rng.split("=")[1].split("-")[0])
            body = data[start:]
            self.send_response(206 if rng else 200)
            self.send_header("Content-Length", str(len(body)))
            if rng:
                self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
            self.end_headers()
            if digest in state.cut_once and not rng:
                state.cut_once.discard(digest)
                self.wfile.write(body[: len(body) // 2])
                self.wfile.flush()
                self.close_connection = True
                self.connection.shutdown(socket.SHUT_RDWR)
                return
            self.wfile.write(body)

    return Handler


@pytest.fixture
def fault_registry() -> Iterator[FaultRegistry]:
    state = FaultRegistry()
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(state))
    state.port = server.server_address[1]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def authfile(tmp_path: Path) -> Path:
    """An empty credentials file location (REGISTRY_AUTH_FILE)."""
    return tmp_path / "auth.json"


def env_for(authfile: Path) -> dict[str, str]:
    return {
        "REGISTRY_AUTH_FILE": str(authfile),
        "XDG_RUNTIME_DIR": str(authfile.parent / "xdg"),
        "HOME": str(authfile.parent / "home"),
    }


def blob_files(store: Path) -> set[str]:
    return (
        set(os.listdir(store / "blobs" / "sha256"))
        if (store / "blobs" / "sha256").exists()
        else set()
    )
