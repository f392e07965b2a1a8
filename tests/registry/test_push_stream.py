"""A built layer is compressed and uploaded at the same time (one chunked PATCH fed from
memory); a registry that refuses the streamed body still gets the image, uploaded whole,
with the same digests."""

from __future__ import annotations

import http.client
import threading
import urllib.request
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from ocibuild.image.store import Store
from ocibuild.registry import RegistryOptions, parse_reference
from ocibuild.registry.auth import Credentials
from ocibuild.registry.errors import RegistryError
from ocibuild.registry.progress import NoProgress
from ocibuild.registry.push import PushResult, _Pipe, push
from tests.conftest import Ocibuild
from tests.registry.server import PASSWORD, USER, Registry

_HOP = {"connection", "keep-alive", "transfer-encoding", "te", "upgrade", "proxy-connection"}


class NoPatchProxy:
    """Forwards every request to a real registry (with the client's Host, so the upload
    URLs it hands out point back here), except ``PATCH``: refused with 405, the body
    unread, the connection closed; what a registry without chunked uploads does."""

    def __init__(self, upstream: Registry) -> None:
        self.upstream = upstream
        self.patches = 0
        self.methods: list[str] = []
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.host = f"127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: object) -> None:
                pass

            def _forward(self) -> None:
                proxy.methods.append(self.command)
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else None
                conn = http.client.HTTPConnection(proxy.upstream.host, timeout=60)
                headers = {k: v for k, v in self.headers.items() if k.lower() not in _HOP}
                conn.request(self.command, self.path, body=body, headers=headers)
                resp = conn.getresponse()
                data = resp.read()
                self.send_response(resp.status)
                for k, v in resp.getheaders():
                    if k.lower() not in _HOP and k.lower() != "content-length":
                        self.send_header(k, v)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)
                conn.close()

            do_GET = do_HEAD = do_POST = do_PUT = do_DELETE = _forward

            def do_PATCH(self) -> None:
                proxy.patches += 1
                proxy.methods.append("PATCH")
                self.send_response(405)
                self.send_header("Content-Length", "0")
                self.send_header("Connection", "close")
                self.end_headers()
                self.close_connection = True

        return Handler

    def __enter__(self) -> NoPatchProxy:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def no_patch(fresh_registry: Registry) -> Iterator[NoPatchProxy]:
    with NoPatchProxy(fresh_registry) as proxy:
        yield proxy


def _push(store_root: Path, image: str, dest: str, creds: Credentials | None = None) -> PushResult:
    store = Store(str(store_root))
    ropts = RegistryOptions(retries=1, backoff=0.05, credentials=creds)
    return push(store, store.resolve(image), parse_reference(dest), ropts=ropts)


def _blob_of(host: str, repo: str, digest: str) -> bytes:
    with urllib.request.urlopen(f"http://{host}/v2/{repo}/blobs/{digest}", timeout=30) as r:
        data: bytes = r.read()
    return data


def test_built_layers_stream_to_every_registry_with_the_same_digest(
    ocb: Ocibuild, base_image: str, store_root: Path, registry: Registry, fresh_registry: Registry
) -> None:
    first = _push(store_root, base_image, f"{registry.host}/stream/a:1")
    # the compressed digests are recorded now; a registry that lacks them gets the
    # layers compressed and uploaded at the same time again, byte for byte the same
    second = _push(store_root, base_image, f"{fresh_registry.host}/stream/b:1")
    assert second.manifest_digest == first.manifest_digest
    streamed = [d for d, a in second.actions.items() if a.startswith("uploaded while compress")]
    store = Store(str(store_root))
    assert len(streamed) == len(store.get_image(store.resolve(base_image)).diff_ids)
    for digest in streamed:
        assert _blob_of(fresh_registry.host, "stream/b", digest) == _blob_of(
            registry.host, "stream/a", digest
        )


def test_a_registry_with_credentials_takes_the_streamed_body(
    ocb: Ocibuild,
    base_image: str,
    store_root: Path,
    registry: Registry,
    fresh_auth_registry: Registry,
) -> None:
    """The 401 and the login happen before the PATCH (the upload's POST): the streamed
    body is sent once, not refused for want of a resend."""
    reference = _push(store_root, base_image, f"{registry.host}/stream/plain:1")
    dest = f"{fresh_auth_registry.host}/stream/auth:1"
    result = _push(store_root, base_image, dest, Credentials(USER, PASSWORD))
    assert result.manifest_digest == reference.manifest_digest
    actions = list(result.actions.values())
    assert any(a.startswith("uploaded while compressing") for a in actions), actions


def test_refused_stream_falls_back_to_a_whole_upload(
    ocb: Ocibuild, base_image: str, store_root: Path, registry: Registry, no_patch: NoPatchProxy
) -> None:
    reference = _push(store_root, base_image, f"{registry.host}/stream/ref:1")
    result = _push(store_root, base_image, f"{no_patch.host}/stream/nopatch:1")
    assert no_patch.patches >= 1
    assert result.manifest_digest == reference.manifest_digest
    layers = [a for a in result.actions.values() if a.startswith("uploaded (")]
    assert layers and not any("while compressing" in a for a in result.actions.values())
    assert "DELETE" in no_patch.methods  # the refused upload session is not left open
    manifest = urllib.request.Request(
        f"http://{no_patch.upstream.host}/v2/stream/nopatch/manifests/1",
        headers={"Accept": "application/vnd.oci.image.manifest.v1+json"},
    )
    with urllib.request.urlopen(manifest, timeout=30) as r:
        assert r.headers["Docker-Content-Digest"] == result.manifest_digest


def test_a_streamed_body_is_never_resent_partially() -> None:
    pipe = _Pipe(depth=2)
    cancel = threading.Event()
    chunks = pipe.body(NoProgress(), "k", cancel)
    pipe.write(b"a" * 10)
    assert next(chunks) == b"a" * 10
    with pytest.raises(RegistryError, match="cannot be sent twice"):
        pipe.body(NoProgress(), "k", cancel)  # e.g. a resend after a 401: fall back
    # the upload gave up: the maker's writes no longer block, even on a full pipe
    pipe.abandon()
    done = threading.Event()

    def maker() -> None:
        for _ in range(10):
            pipe.write(b"b" * 10)
        pipe.close()
        done.set()

    threading.Thread(target=maker, daemon=True).start()
    assert done.wait(5)
