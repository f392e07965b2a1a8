"""What the conformance cases cannot see: history, secrets, caches across builds, errors."""

from __future__ import annotations

import hashlib
import http.server
import json
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar

import pytest

from tests.conftest import Ocibuild


class _Handler(http.server.BaseHTTPRequestHandler):
    files: ClassVar[dict[str, bytes]] = {"/file.txt": b"remote\n"}

    def do_GET(self) -> None:
        body = self.files.get(self.path)
        if body is None:
            self.send_error(404)
            return
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def server() -> Iterator[str]:
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{srv.server_address[1]}"
    srv.shutdown()
    srv.server_close()


def _history(ocb: Ocibuild, tag: str) -> str:
    return json.dumps(ocb.config(tag).get("history", []))


def test_secret_never_stored(ocb: Ocibuild, base_image: str, context: Path, tmp_path: Path) -> None:
    secret = tmp_path / "s"
    secret.write_text("TOPSECRET-VALUE")
    (context / "Dockerfile").write_text(
        f"FROM {base_image}\n"
        "RUN --mount=type=secret,id=tok cp /run/secrets/tok /tmp/copy && rm /tmp/copy "
        "&& test -s /run/secrets/tok\n"
        "RUN --mount=type=secret,id=tok,env=TOK test ${#TOK} -eq 15\n"
    )
    out = ocb.build(context, "-t", "t-secret", env={"OCIBUILD_SECRET_tok": str(secret)})
    config = json.dumps(ocb.config("t-secret"))
    assert "TOPSECRET" not in config and "TOPSECRET" not in out.stderr
    layout = tmp_path / "layout"
    ocb.build(context, "-t", "t-secret", "--output", f"type=oci,dest={layout}",
              env={"OCIBUILD_SECRET_tok": str(secret)})  # fmt: skip
    for blob in (layout / "blobs" / "sha256").iterdir():
        assert b"TOPSECRET" not in blob.read_bytes()
    # the base has no /run: the mount point made for the secret must not be left behind
    assert ocb.run("t-secret", "ls", "/run", check=False).returncode != 0


def test_secret_flag(ocb: Ocibuild, base_image: str, context: Path, tmp_path: Path) -> None:
    secret = tmp_path / "s"
    secret.write_text("FROM-A-FILE")
    md5_file = hashlib.md5(b"FROM-A-FILE").hexdigest()
    md5_env = hashlib.md5(b"FROM-THE-ENV").hexdigest()
    (context / "Dockerfile").write_text(
        f"FROM {base_image}\n"
        "RUN --mount=type=secret,id=file"
        f" test $(md5sum < /run/secrets/file | cut -d' ' -f1) = {md5_file}\n"
        "RUN --mount=type=secret,id=envsec,env=V"
        f" test $(printf %s \"$V\" | md5sum | cut -d' ' -f1) = {md5_env}\n"
        "RUN --mount=type=secret,id=missing,required=true true\n"
    )
    res = ocb.build(
        context,
        "--secret", f"id=file,src={secret}",
        "--secret", "id=envsec,env=MY_TOKEN",
        env={"MY_TOKEN": "FROM-THE-ENV"},
        check=False,
    )  # fmt: skip
    assert res.returncode == 1, res.stderr
    assert "Dockerfile:4" in res.stderr and "missing" in res.stderr, res.stderr
    assert "FROM-A-FILE" not in res.stderr and "FROM-THE-ENV" not in res.stderr
    bad = ocb.build(context, "--secret", "src=/nowhere", check=False)
    assert bad.returncode == 1 and "--secret 'src=/nowhere' has no id" in bad.stderr


def test_cache_mount_persists_across_builds(ocb: Ocibuild, base_image: str, context: Path) -> None:
    (context / "Dockerfile").write_text(
        f"FROM {base_image}\n"
        "RUN --mount=type=cache,target=/c,id=lang-test-persist sh -c "
        "'echo run >> /c/log; wc -l < /c/log > /count'\n"
    )
    ocb.build(context, "--no-cache", "-t", "t-cache1")
    ocb.build(context, "--no-cache", "-t", "t-cache2")
    first = int(ocb.run("t-cache1", "cat", "/count").stdout)
    second = int(ocb.run("t-cache2", "cat", "/count").stdout)
    assert second == first + 1
    assert ocb.run("t-cache2", "ls", "-d", "/c", check=False).returncode != 0


def test_add_url_checksum(ocb: Ocibuild, base_image: str, context: Path, server: str) -> None:
    good = hashlib.sha256(b"remote\n").hexdigest()
    (context / "Dockerfile").write_text(
        f"FROM {base_image}\nADD --checksum=sha256:{good} {server}/file.txt /dl/\n"
    )
    ocb.build(context, "-t", "t-url")
    assert ocb.run("t-url", "stat", "-c", "%a %s", "/dl/file.txt").stdout == "600 7\n"
    (context / "Dockerfile").write_text(
        f"FROM {base_image}\nADD --checksum=sha256:{'0' * 64} {server}/file.txt /dl/\n"
    )
    bad = ocb.build(context, check=False)
    assert bad.returncode == 1 and "digest mismatch" in bad.stderr
    (context / "Dockerfile").write_text(f"FROM {base_image}\nADD {server}/missing /x\n")
    missing = ocb.build(context, check=False)
    assert missing.returncode == 1 and "404" in missing.stderr


def test_proxy_args_not_in_history(ocb: Ocibuild, base_image: str, context: Path) -> None:
    (context / "Dockerfile").write_text(
        f'FROM {base_image}\nARG VISIBLE=1\nRUN echo "$HTTP_PROXY" > /p\n'
    )
    ocb.build(context, "--build-arg", "HTTP_PROXY=http://proxy.invalid:1",
              "--build-arg", "VISIBLE=2", "-t", "t-proxy")  # fmt: skip
    assert ocb.run("t-proxy", "cat", "/p").stdout == "http://proxy.invalid:1\n"
    history = _history(ocb, "t-proxy")
    assert "proxy.invalid" not in history and "VISIBLE=2" in history
    assert not any(e.startswith("HTTP_PROXY") for e in ocb.config("t-proxy")["config"]["Env"])


def test_onbuild_from_stored_image(ocb: Ocibuild, base_image: str, context: Path) -> None:
    (context / "Dockerfile").write_text(
        f"FROM {base_image}\nONBUILD RUN echo trig > /trig\nONBUILD COPY f /f\n"
    )
    (context / "f").write_text("F\n")
    ocb.build(context, "-t", "t-onbuild-parent")
    assert ocb.config("t-onbuild-parent")["config"]["OnBuild"] == [
        "RUN echo trig > /trig",
        "COPY f /f",
    ]
    (context / "Dockerfile").write_text("FROM t-onbuild-parent\nRUN cat /trig /f > /both\n")
    ocb.build(context, "-t", "t-onbuild-child")
    assert ocb.run("t-onbuild-child", "cat", "/both").stdout == "trig\nF\n"
    assert "OnBuild" not in ocb.config("t-onbuild-child")["config"]


@pytest.mark.parametrize(
    ("dockerfile", "message"),
    [
        ("RUN --mount=type=bogus true", "unsupported mount type"),
        ("RUN --mount=type=cache true", "requires a target"),
        ("RUN --mount=type=bind,target=/x,color=red true", "unexpected key 'color'"),
        ("RUN --network=bridge true", "unsupported network mode"),
        ("RUN --security=insecure true", "not allowed"),
        ("COPY --chmod=u+q f /f", "invalid chmod parameter"),
        ("ADD --checksum=sha256:abc f /f", "non-HTTP(S) sources"),
        ("STOPSIGNAL SIGBOGUS", "invalid signal"),
        ("EXPOSE 80/icmp", "invalid protocol"),
        ("COPY --from=9 /x /x", "9"),
    ],
)
def test_step_errors(
    ocb: Ocibuild, base_image: str, context: Path, dockerfile: str, message: str
) -> None:
    (context / "f").write_text("f")
    (context / "Dockerfile").write_text(f"FROM {base_image}\n{dockerfile}\n")
    result = ocb.build(context, check=False)
    assert result.returncode == 1, result.stderr
    assert "Dockerfile:2" in result.stderr and message in result.stderr, result.stderr
    assert "Traceback" not in result.stderr
