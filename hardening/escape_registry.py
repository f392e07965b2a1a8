"""Hostile registries (mode-independent attacks of hardening/escapes.py).

A small HTTP registry on 127.0.0.1 that lies: manifests without end, blobs longer than
their descriptor, descriptors claiming a terabyte, a token realm on another host
(127.0.0.2) and a foreign layer URL there. ``ocibuild pull`` from it must stop with a
clear error having read little more than what was declared, and must send the user's
registry password to no other host. Every byte is counted on the server side.
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import tarfile
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from hardening.escapes import Cell, Outcome, attack, judge

CAP = 64 << 20  # the most the hostile server ever sends for one response
SLACK = 16 << 20  # past a declared size: loopback socket buffers hold several MB
USER, PASSWORD = "ocb-user", "ocb-password-4e1d"
MANIFEST = "application/vnd.oci.image.manifest.v1+json"


def _digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


@dataclass
class Hostile:
    """What the server answers, and what it saw."""

    manifest: Callable[[], tuple[bytes, int]] | None = None  # (body, bytes to stream)
    blobs: dict[str, tuple[bytes, int]] = field(default_factory=dict)  # digest -> body, extra
    challenge: str = ""  # WWW-Authenticate for /v2/ and everything (Bearer ...)
    sent: dict[str, int] = field(default_factory=dict)  # path -> bytes written
    auth_seen: list[tuple[str, str, str]] = field(default_factory=list)  # host, path, header


def _handler(state: Hostile, host: str) -> type[BaseHTTPRequestHandler]:
    class H(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args: Any) -> None:
            pass

        def _auth(self) -> bool:
            header = self.headers.get("Authorization", "")
            if header:
                state.auth_seen.append((host, self.path, header))
            if state.challenge and host == "registry" and not header.startswith("Bearer "):
                self.send_response(401)
                self.send_header("WWW-Authenticate", state.challenge)
                self.send_header("Content-Length", "0")
                self.end_headers()
                return False
            return True

        def _stream(self, head: bytes, total: int, ctype: str, length: int | None) -> None:
            self.send_response(200)
            self.send_header("Content-Type", ctype)
            if length is not None:
                self.send_header("Content-Length", str(length))
            self.send_header("Connection", "close")
            self.end_headers()
            sent = 0
            try:
                self.wfile.write(head)
                sent = len(head)
                chunk = b" " * 65536 if ctype == MANIFEST else b"\0" * 65536
                while sent < total:
                    n = min(len(chunk), total - sent)
                    self.wfile.write(chunk[:n])
                    sent += n
            except OSError:
                pass
            state.sent[self.path] = state.sent.get(self.path, 0) + sent
            self.close_connection = True

        def do_HEAD(self) -> None:
            self.do_GET()

        def do_GET(self) -> None:
            if host == "foreign":
                self._auth()
                body = b'{"token": "ocb-token", "access_token": "ocb-token"}'
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)
                return
            if not self._auth():
                return
            if self.path in ("/v2/", "/v2"):
                self.send_response(200)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"{}")
                return
            if "/manifests/" in self.path and state.manifest:
                mbody, total = state.manifest()
                if self.command == "HEAD":
                    self.send_response(200)
                    self.send_header("Content-Type", MANIFEST)
                    self.send_header("Docker-Content-Digest", _digest(mbody))
                    self.send_header("Content-Length", str(len(mbody)))
                    self.end_headers()
                    return
                length = len(mbody) if total <= len(mbody) else None
                self._stream(mbody, max(total, len(mbody)), MANIFEST, length)
                return
            digest = self.path.rsplit("/", 1)[-1]
            if "/blobs/" in self.path and digest in state.blobs:
                body, extra = state.blobs[digest]
                if self.command == "HEAD":
                    self.send_response(200)
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    return
                self._stream(body, len(body) + extra, "application/octet-stream", None)
                return
            self.send_response(404)
            self.send_header("Content-Length", "0")
            self.end_headers()

    return H


class Server:
    def __init__(self, state: Hostile, host: str, addr: str) -> None:
        self.httpd = ThreadingHTTPServer((addr, 0), _handler(state, host))
        self.port = self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def _manifest(config: bytes, layers: list[tuple[str, int]], urls: list[str] | None = None) -> bytes:
    layer_descs: list[dict[str, Any]] = []
    for digest, size in layers:
        d: dict[str, Any] = {
            "mediaType": "application/vnd.oci.image.layer.v1.tar",
            "digest": digest,
            "size": size,
        }
        if urls:
            d["mediaType"] = "application/vnd.oci.image.layer.nondistributable.v1.tar"
            d["urls"] = urls
        layer_descs.append(d)
    return json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": MANIFEST,
            "config": {
                "mediaType": "application/vnd.oci.image.config.v1+json",
                "digest": _digest(config),
                "size": len(config),
            },
            "layers": layer_descs,
        }
    ).encode()


def _config(diff_ids: list[str]) -> bytes:
    rootfs = {"type": "layers", "diff_ids": diff_ids}
    return json.dumps({"architecture": "amd64", "os": "linux", "rootfs": rootfs}).encode()


def _layer() -> bytes:
    """A valid uncompressed layer: one small file."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tf:
        info = tarfile.TarInfo("hello")
        info.size = 3
        tf.addfile(info, io.BytesIO(b"hi\n"))
    return buf.getvalue()


def _pull(cell: Cell, state: Hostile, *extra: str) -> tuple[Any, Server]:
    server = Server(state, "registry", "127.0.0.1")
    run = cell.cli("pull", "-q", *extra, f"127.0.0.1:{server.port}/evil/img:1", timeout=120)
    return run, server


def _mb(n: int) -> str:
    return f"{n / (1 << 20):.1f} MB"


@attack("registry-manifest-unbounded", independent=True)
def manifest_unbounded(cell: Cell) -> Outcome:
    """A manifest without Content-Length that never ends (64 MB sent at most): the pull
    must stop early with an error."""
    head = b'{"schemaVersion":2,"mediaType":"' + MANIFEST.encode() + b'","x":"'
    state = Hostile(manifest=lambda: (head, CAP))
    run, server = _pull(cell, state)
    server.close()
    read = sum(v for k, v in state.sent.items() if "/manifests/" in k)
    if read >= CAP:
        cell.escapes.append(f"read the whole {_mb(CAP)} manifest stream (no size cap)")
    return judge(cell, run, None, f"read {_mb(read)}")


@attack("registry-blob-longer", independent=True)
def blob_longer(cell: Cell) -> Outcome:
    """A layer blob that keeps coming past its descriptor's size (a 10 KiB tar, then
    64 MB of zeros): the pull must stop at about the declared size."""
    layer = _layer()
    digest = _digest(layer)
    config = _config([digest])
    manifest = _manifest(config, [(digest, len(layer))])
    state = Hostile(
        manifest=lambda: (manifest, 0),
        blobs={_digest(config): (config, 0), digest: (layer, CAP)},
    )
    run, server = _pull(cell, state)
    server.close()
    read = state.sent.get(f"/v2/evil/img/blobs/{digest}", 0)
    if read > len(layer) + SLACK:
        cell.escapes.append(f"read {_mb(read)} of a blob declared as {len(layer)} bytes")
    return judge(cell, run, None, f"read {read} bytes")


@attack("registry-huge-descriptor", independent=True)
def huge_descriptor(cell: Cell) -> Outcome:
    """A layer descriptor claiming 1 TiB: refused before downloading (the server would
    stream 64 MB of zeros)."""
    digest = "sha256:" + "ab" * 32
    config = _config([digest])
    manifest = _manifest(config, [(digest, 1 << 40)])
    state = Hostile(
        manifest=lambda: (manifest, 0),
        blobs={_digest(config): (config, 0), digest: (b"", CAP)},
    )
    run, server = _pull(cell, state)
    server.close()
    read = state.sent.get(f"/v2/evil/img/blobs/{digest}", 0)
    if read >= CAP:
        cell.escapes.append(f"downloaded {_mb(read)} for a 1 TiB descriptor before stopping")
    return judge(cell, run, None, f"read {_mb(read)}")


@attack("registry-credential-leak", independent=True)
def credential_leak(cell: Cell) -> Outcome:
    """The user's password for 127.0.0.1:PORT must reach no other host: the registry's
    Bearer challenge names a token realm on 127.0.0.2 over plain http, and the manifest's
    layer has a foreign URL there (CVE-2020-15157)."""
    foreign_state = Hostile()
    foreign = Server(foreign_state, "foreign", "127.0.0.2")
    layer = _layer()
    config = _config([_digest(layer)])
    manifest = _manifest(
        config, [(_digest(layer), len(layer))], urls=[f"http://127.0.0.2:{foreign.port}/layer"]
    )
    state = Hostile(
        manifest=lambda: (manifest, 0),
        blobs={_digest(config): (config, 0)},
        challenge=f'Bearer realm="http://127.0.0.2:{foreign.port}/token",service=evil',
    )
    server = Server(state, "registry", "127.0.0.1")
    authfile = cell.work / "auth.json"
    basic = base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
    authfile.write_text(json.dumps({"auths": {f"127.0.0.1:{server.port}": {"auth": basic}}}))
    if cell.cli.user is None:
        authfile.chmod(0o600)
    run = cell.cli(
        "pull",
        "-q",
        "--authfile",
        str(authfile),
        f"127.0.0.1:{server.port}/evil/img:1",
        timeout=120,
    )
    server.close()
    foreign.close()
    leaked = [
        (path, header)
        for _host, path, header in foreign_state.auth_seen
        if header.startswith("Basic ") and basic in header
    ]
    if leaked:
        cell.escapes.append(f"the registry password was sent to http://127.0.0.2 ({leaked[0][0]})")
    seen = sorted({p.split("?")[0] for _h, p, _a in foreign_state.auth_seen})
    return judge(cell, run, None, f"127.0.0.2 got auth on {', '.join(seen) or 'nothing'}")
