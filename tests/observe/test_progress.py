"""Long operations show progress in plain output (a pipe, a log): ADD of a large archive
or URL, pull, push, retries against a registry that does not answer, and exports say
what they wrote where. ``OCIBUILD_PROGRESS_INTERVAL`` (seconds between two progress
lines of one transfer, default 2) is made small so that a few megabytes show lines."""

from __future__ import annotations

import functools
import http.server
import io
import os
import re
import socket
import tarfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import Ocibuild
from tests.registry.server import Registry

OFTEN = {"OCIBUILD_PROGRESS_INTERVAL": "0.01"}
ALWAYS = {"OCIBUILD_PROGRESS_INTERVAL": "0"}  # a line on every update: any machine shows some
MB = 1 << 20
PROGRESS = r"(\d+\.\d) MB / (\d+\.\d) MB \((\d+)%\)"


def progress_lines(text: str, label: str) -> list[tuple[float, float, int]]:
    """(done, total, percent) of each progress line of ``label``."""
    out = []
    for m in re.finditer(re.escape(label) + ": " + PROGRESS, text):
        out.append((float(m[1]), float(m[2]), int(m[3])))
    return out


def big_archive(path: Path, size: int) -> None:
    data = os.urandom(size)  # random: gzip cannot make it small
    with tarfile.open(path, "w:gz") as tf:
        info = tarfile.TarInfo("payload.bin")
        info.size = len(data)
        tf.addfile(info, io.BytesIO(data))


def test_add_of_a_large_archive(ocb: Ocibuild, base_image: str, context: Path) -> None:
    big_archive(context / "big.tar.gz", 12 * MB)
    (context / "Dockerfile").write_text(f"FROM {base_image}\nADD big.tar.gz /dst/\n")
    r = ocb.build(context, "--no-cache", "-t", "progress:add", env=OFTEN)
    step = r.stderr.split("ADD big.tar.gz /dst/", 1)[1]
    assert re.search(r"^  unpacking big\.tar\.gz \(12\.\d MB\) into /dst$", step, re.M), step
    lines = progress_lines(step, "  big.tar.gz")
    assert lines, step
    assert all(total == lines[0][1] for _, total, _ in lines)
    assert [p for _, _, p in lines] == sorted(p for _, _, p in lines)
    assert re.search(r"^  big\.tar\.gz: unpacked into /dst in \d+\.\ds$", step, re.M), step
    assert ocb.run("progress:add", "wc", "-c", "/dst/payload.bin").stdout.split()[0] == str(12 * MB)


class SlowHandler(http.server.SimpleHTTPRequestHandler):
    """Serves files 256 kB at a time, 20 ms apart: a download lasts long enough for
    progress lines on any machine (a 6 MB file: about half a second)."""

    def log_message(self, *args: object) -> None:
        pass

    def copyfile(self, source: Any, outputfile: Any) -> None:
        while chunk := source.read(256 * 1024):
            outputfile.write(chunk)
            outputfile.flush()
            time.sleep(0.02)


@pytest.fixture
def http_server(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """A plain HTTP server on 127.0.0.1 serving ``tmp_path/www`` (slowly)."""
    root = tmp_path / "www"
    root.mkdir()
    handler = functools.partial(SlowHandler, directory=str(root))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", root
    finally:
        server.shutdown()
        server.server_close()


def test_add_of_a_url(
    ocb: Ocibuild, base_image: str, context: Path, http_server: tuple[str, Path]
) -> None:
    url, root = http_server
    (root / "blob.bin").write_bytes(os.urandom(6 * MB))
    (context / "Dockerfile").write_text(f"FROM {base_image}\nADD {url}/blob.bin /blob.bin\n")
    r = ocb.build(context, "--no-cache", env=OFTEN)
    assert f"  downloading {url}/blob.bin (6.3 MB)\n" in r.stderr
    assert progress_lines(r.stderr, f"  {url}/blob.bin"), r.stderr
    assert re.search(rf"^  {re.escape(url)}/blob\.bin: downloaded 6\.3 MB in \d", r.stderr, re.M)


def test_push_and_pull_show_progress(
    ocb: Ocibuild, base_image: str, context: Path, registry: Registry, tmp_path: Path
) -> None:
    (context / "Dockerfile").write_text(
        f"FROM {base_image}\nRUN head -c {10 * MB} /dev/urandom > /big\n"
    )
    ocb.build(context, "-t", "progress:big")
    ref = f"{registry.host}/progress/big:1"
    r = ocb("push", "progress:big", ref, env=ALWAYS)
    assert re.search(rf"^pushing {re.escape(ref)}: \d+ layers", r.stderr, re.M), r.stderr
    # a layer is uploaded while it is compressed (its size not known yet: "N MB sent"),
    # or, when the registry refuses a streamed body, made first ("N MB / M MB (P%)")
    assert re.search(r"^\w{12}: \d+\.\d MB( sent$| / \d+\.\d MB \(\d+%\)$)", r.stderr, re.M), (
        r.stderr
    )
    assert f"pushed {ref} in " in r.stderr
    # into an empty store: every layer is downloaded, the big one with progress lines
    fresh = Ocibuild(tmp_path / "fresh")
    r = fresh("pull", ref, env=OFTEN)
    assert re.search(rf"^pulling {re.escape(ref)} \(sha256:", r.stderr, re.M), r.stderr
    labels = re.findall(r"^(\w{12}): downloaded, unpacked \((\d+\.\d) MB\)$", r.stderr, re.M)
    big = [label for label, size in labels if float(size) >= 10]
    assert len(big) == 1, r.stderr
    lines = progress_lines(r.stderr, big[0])
    assert lines and all(p < 100 for _, _, p in lines), r.stderr


def test_retries_against_an_unreachable_registry_are_said(tmp_path: Path) -> None:
    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    r = Ocibuild(tmp_path / "store")(
        "pull", f"127.0.0.1:{port}/nothing:1", check=False, timeout=120
    )
    assert r.returncode == 1
    retries = re.findall(
        rf"^cannot reach 127\.0\.0\.1:{port}: .+; retrying in (\d+\.\d)s "
        r"\(attempt (\d) of (\d)\)$",
        r.stderr,
        re.M,
    )
    assert [(d, a) for d, a, _ in retries] == [
        ("0.5", "2"),
        ("1.0", "3"),
        ("2.0", "4"),
        ("4.0", "5"),
    ]
    assert r.stderr.rstrip().splitlines()[-2] == (
        f"error: cannot reach registry 127.0.0.1:{port}: Connection refused"
    )


def test_exports_say_what_they_wrote_where(
    ocb: Ocibuild, base_image: str, context: Path, tmp_path: Path
) -> None:
    (context / "Dockerfile").write_text(f"FROM {base_image}\nRUN echo x > /x\n")
    layout = tmp_path / "layout"
    r = ocb.build(context, "-o", f"type=oci,dest={layout}")
    assert re.search(rf"^wrote an OCI image layout to {layout} \(\d+\.\d MB\)$", r.stderr, re.M)
    rootfs = tmp_path / "rootfs.tar"
    r = ocb.build(context, "--output", f"type=tar,dest={rootfs}")
    size = rootfs.stat().st_size
    assert f"wrote a tar of the root filesystem to {rootfs} (" in r.stderr
    assert size > MB
    ocb.build(context, "-t", "progress:save")
    archive = tmp_path / "saved.tar"
    r = ocb("save", "progress:save", "-o", str(archive))
    assert f"wrote a docker archive (for docker load) to {archive} (" in r.stderr
