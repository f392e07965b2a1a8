"""A hostile registry (a server this test runs on 127.0.0.1): sizes it declares are not
trusted, and credentials never go where it points unless that is safe. Each case: a
clear error, exit 1, nothing half-stored (no blob, no tag, no partial download)."""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import Ocibuild
from tests.registry.conftest import blob_files, make_layer, sha

MT_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
MT_LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"


@dataclass
class Server:
    """A registry (or a token service / blob host) with knobs for hostile answers."""

    port: int = 0
    blobs: dict[str, bytes] = field(default_factory=dict)
    manifests: dict[str, bytes] = field(default_factory=dict)  # "repo:ref" -> body
    realm: str | None = None  # Bearer challenge naming this realm; token "tok"
    extra: dict[str, bytes] = field(default_factory=dict)  # digest -> bytes served after
    endless: set[str] = field(default_factory=set)  # digests streamed without end
    redirect: dict[str, str] = field(default_factory=dict)  # digest -> URL
    seen: list[tuple[str, str | None]] = field(default_factory=list)  # (path, Authorization)
    sent: dict[str, int] = field(default_factory=dict)  # digest -> bytes written

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.port}"

    def add_image(
        self, repo: str, tag: str, files: dict[str, bytes], sizes: dict[str, int] | None = None
    ) -> dict[str, str]:
        """An image of one layer; ``sizes`` overrides descriptor sizes ("config", "layer")."""
        blob, diff_id = make_layer(files)
        config = json.dumps(
            {
                "architecture": "amd64",
                "os": "linux",
                "rootfs": {"type": "layers", "diff_ids": [diff_id]},
            }
        ).encode()
        self.blobs[sha(blob)] = blob
        self.blobs[sha(config)] = config
        sizes = sizes or {}
        manifest = json.dumps(
            {
                "schemaVersion": 2,
                "mediaType": MT_MANIFEST,
                "config": {
                    "mediaType": "application/vnd.oci.image.config.v1+json",
                    "digest": sha(config),
                    "size": sizes.get("config", len(config)),
                },
                "layers": [
                    {
                        "mediaType": MT_LAYER,
                        "digest": sha(blob),
                        "size": sizes.get("layer", len(blob)),
                    }
                ],
            }
        ).encode()
        self.manifests[f"{repo}:{tag}"] = manifest
        return {"config": sha(config), "layer": sha(blob)}


def _handler(state: Server) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:
            pass

        def _send(self, code: int, body: bytes = b"", headers: dict[str, str] | None = None):
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
            state.seen.append((path, self.headers.get("Authorization")))
            if path == "/token":
                self._send(200, b'{"token":"tok"}', {"Content-Type": "application/json"})
                return
            if path.startswith("/cdn/"):
                self._blob(path.rsplit("/", 1)[1])
                return
            if state.realm and self.headers.get("Authorization") != "Bearer tok":
                challenge = f'Bearer realm="{state.realm}",service="hostile"'
                self._send(401, b"{}", {"WWW-Authenticate": challenge})
                return
            parts = path.split("/")
            if path == "/v2/":
                self._send(200, b"{}")
            elif len(parts) >= 5 and parts[-2] == "manifests":
                body = state.manifests.get("/".join(parts[2:-2]) + ":" + parts[-1])
                if body is None:
                    self._send(404, b'{"errors":[{"code":"MANIFEST_UNKNOWN","message":"no"}]}')
                else:
                    self._send(200, body, {"Content-Type": MT_MANIFEST})
            elif len(parts) >= 5 and parts[-2] == "blobs":
                digest = parts[-1]
                if digest in state.redirect:
                    self._send(307, b"", {"Location": state.redirect[digest]})
                else:
                    self._blob(digest)
            else:
                self._send(404)

        def _blob(self, digest: str) -> None:
            data = state.blobs.get(digest)
            if data is None:
                self._send(404)
                return
            if digest not in state.endless:
                self._send(200, data + state.extra.get(digest, b""))
                return
            # a body without end (bounded here: the test must stop by itself)
            self.send_response(200)
            self.send_header("Content-Length", str(1 << 40))
            self.end_headers()
            chunk = data + bytes(1 << 20)
            state.sent[digest] = 0
            try:
                while state.sent[digest] < 512 << 20:
                    self.wfile.write(chunk)
                    state.sent[digest] += len(chunk)
            except OSError:
                pass
            self.close_connection = True

    return Handler


def _serve() -> Iterator[Server]:
    state = Server()
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
def hostile() -> Iterator[Server]:
    yield from _serve()


@pytest.fixture
def other() -> Iterator[Server]:
    """A second server on another port: a token service or a blob host."""
    yield from _serve()


def _failed_cleanly(ocb: Ocibuild, store: Path, ref: str, *args: str) -> str:
    res = ocb("pull", *args, ref, check=False)
    assert res.returncode == 1, res
    assert "Traceback" not in res.stderr, res.stderr
    assert res.stderr.startswith("error: ") or "\nerror: " in res.stderr, res.stderr
    assert blob_files(store) == set(), "nothing stored"
    assert ref not in ocb("images").stdout
    downloads = store / "registry" / "downloads"
    assert not downloads.exists() or os.listdir(downloads) == [], "no partial download"
    return res.stderr


def test_oversized_manifest(hostile: Server, tmp_path: Path) -> None:
    hostile.manifests["team/big:1"] = b'{"schemaVersion": 2, "pad": "' + b"x" * (5 << 20) + b'"}'
    store = tmp_path / "store"
    err = _failed_cleanly(Ocibuild(store), store, f"{hostile.host}/team/big:1")
    assert f"manifest {hostile.host}/team/big:1 is bigger than 4194304 bytes" in err


def test_config_longer_than_its_descriptor(hostile: Server, tmp_path: Path) -> None:
    image = hostile.add_image("team/cfg", "1", {"a": b"a\n"})
    hostile.extra[image["config"]] = b" " * (64 << 20)
    store = tmp_path / "store"
    err = _failed_cleanly(Ocibuild(store), store, f"{hostile.host}/team/cfg:1")
    assert "sent more than the" in err and "bytes its descriptor says" in err
    assert "nothing was stored" in err


def test_absurd_config_size_refused_before_download(hostile: Server, tmp_path: Path) -> None:
    image = hostile.add_image("team/cfgsize", "1", {"a": b"a\n"}, sizes={"config": 1 << 50})
    store = tmp_path / "store"
    err = _failed_cleanly(Ocibuild(store), store, f"{hostile.host}/team/cfgsize:1")
    assert f"config of {hostile.host}/team/cfgsize:1: its descriptor says {1 << 50} bytes" in err
    assert not [p for p, _ in hostile.seen if image["config"] in p], "never requested"


def test_layer_longer_than_its_descriptor_is_cut_off(hostile: Server, tmp_path: Path) -> None:
    image = hostile.add_image("team/endless", "1", {"a": b"a\n" * 1000})
    hostile.endless.add(image["layer"])
    store = tmp_path / "store"
    err = _failed_cleanly(Ocibuild(store), store, f"{hostile.host}/team/endless:1")
    assert f"layer {image['layer']}: the registry sent more than the" in err
    # cut off at once: what the server got out before the close is socket buffers, not
    # the 512 MiB it would have sent
    assert hostile.sent[image["layer"]] < 64 << 20, hostile.sent


def test_absurd_layer_size_refused_before_download(hostile: Server, tmp_path: Path) -> None:
    image = hostile.add_image("team/huge", "1", {"a": b"a\n"}, sizes={"layer": 1 << 50})
    store = tmp_path / "store"
    err = _failed_cleanly(Ocibuild(store), store, f"{hostile.host}/team/huge:1")
    assert f"1 layers to download needs {1 << 50} bytes, only" in err
    assert "free on the store's filesystem" in err
    assert not [p for p, _ in hostile.seen if image["layer"] in p], "never requested"


@pytest.mark.parametrize("size", ["12", -1, 1.5, None])
def test_malformed_descriptor_size(hostile: Server, tmp_path: Path, size: object) -> None:
    image = hostile.add_image("team/size", "1", {"a": b"a\n"})
    doc = json.loads(hostile.manifests["team/size:1"])
    doc["layers"][0]["size"] = size
    hostile.manifests["team/size:1"] = json.dumps(doc).encode()
    store = tmp_path / "store"
    err = _failed_cleanly(Ocibuild(store), store, f"{hostile.host}/team/size:1")
    assert f"layer {image['layer']}: its descriptor has no valid size" in err


def test_http_realm_on_another_host_gets_no_credentials(
    hostile: Server, other: Server, tmp_path: Path
) -> None:
    hostile.realm = f"http://{other.host}/token"
    hostile.add_image("team/realm", "1", {"a": b"a\n"})
    ocb = Ocibuild(tmp_path / "store")
    ref = f"{hostile.host}/team/realm:1"
    ocb("pull", "--creds", "alice:s3cret", ref)
    token_requests = [auth for path, auth in other.seen if path == "/token"]
    assert token_requests and token_requests == [None] * len(token_requests), other.seen
    assert ref in ocb("images").stdout, "an anonymous token still works"


def test_realm_on_the_registry_itself_gets_credentials(hostile: Server, tmp_path: Path) -> None:
    # the control: the same flow with the realm on the registry's own host and port
    hostile.realm = f"http://{hostile.host}/token"
    hostile.add_image("team/ownrealm", "1", {"a": b"a\n"})
    Ocibuild(tmp_path / "store")(
        "pull", "--creds", "alice:s3cret", f"{hostile.host}/team/ownrealm:1"
    )
    sent = {auth for path, auth in hostile.seen if path == "/token"}
    assert sent == {"Basic YWxpY2U6czNjcmV0"}, sent


def test_refused_token_says_why_credentials_were_withheld(
    hostile: Server, other: Server, tmp_path: Path
) -> None:
    hostile.realm = f"http://{other.host}/no-token-here"
    hostile.add_image("team/refused", "1", {"a": b"a\n"})
    store = tmp_path / "store"
    err = _failed_cleanly(
        Ocibuild(store), store, f"{hostile.host}/team/refused:1", "--creds", "alice:s3cret"
    )
    assert "the token service refused access" in err
    assert f"were not sent to http://{other.host}/no-token-here" in err
    assert [auth for _, auth in other.seen] == [None]


def test_blob_redirect_to_another_host_carries_no_credentials(
    hostile: Server, other: Server, tmp_path: Path
) -> None:
    hostile.realm = f"http://{hostile.host}/token"
    image = hostile.add_image("team/cdn", "1", {"a": b"a\n"})
    for digest in (image["layer"], image["config"]):
        other.blobs[digest] = hostile.blobs[digest]
        hostile.redirect[digest] = f"http://{other.host}/cdn/{digest}"
    ocb = Ocibuild(tmp_path / "store")
    ref = f"{hostile.host}/team/cdn:1"
    ocb("pull", "--creds", "alice:s3cret", ref)
    assert ref in ocb("images").stdout
    assert sorted(p for p, _ in other.seen) == sorted(
        f"/cdn/{d}" for d in (image["layer"], image["config"])
    )
    assert [auth for _, auth in other.seen] == [None, None], other.seen
    # while the registry itself got the bearer token for those requests
    assert ("/v2/team/cdn/blobs/" + image["layer"], "Bearer tok") in hostile.seen
