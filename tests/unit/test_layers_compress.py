"""DigestingSink, detect_compression, open_decompressed."""

from __future__ import annotations

import bz2
import gzip
import hashlib
import io
import lzma
import os

import pytest
import zstandard

from ocibuild.layers.compress import (
    MEDIA_TYPE_GZIP,
    MEDIA_TYPE_TAR,
    MEDIA_TYPE_ZSTD,
    DigestingSink,
    compression_of_media_type,
    detect_compression,
    open_decompressed,
)

DATA = os.urandom(200_000) + b"a" * 3_000_000


def sink_output(compression: str, **kw: int) -> tuple[DigestingSink, bytes]:
    out = io.BytesIO()
    sink = DigestingSink(compression, out, **kw)  # type: ignore[arg-type]
    for i in range(0, len(DATA), 65536):
        sink.write(memoryview(DATA)[i : i + 65536])
    sink.close()
    return sink, out.getvalue()


@pytest.mark.parametrize("compression", ["gzip", "zstd", "none"])
def test_sink_digests_and_roundtrip(compression: str) -> None:
    sink, blob = sink_output(compression)
    assert sink.diff_id == "sha256:" + hashlib.sha256(DATA).hexdigest()
    assert sink.size == len(DATA)
    assert sink.digest == "sha256:" + hashlib.sha256(blob).hexdigest()
    assert sink.compressed_size == len(blob)
    assert open_decompressed(io.BytesIO(blob)).read() == DATA
    assert (
        sink.media_type
        == {
            "gzip": MEDIA_TYPE_GZIP,
            "zstd": MEDIA_TYPE_ZSTD,
            "none": MEDIA_TYPE_TAR,
        }[compression]
    )
    if compression == "none":
        assert sink.digest == sink.diff_id and blob == DATA


def test_gzip_deterministic_header() -> None:
    _, a = sink_output("gzip")
    _, b = sink_output("gzip")
    assert a == b
    assert a[:4] == b"\x1f\x8b\x08\x00"  # no FNAME flag
    assert a[4:8] == b"\0\0\0\0"  # mtime 0
    assert gzip.decompress(a) == DATA


def test_zstd_deterministic_across_thread_counts() -> None:
    assert sink_output("zstd", threads=1)[1] == sink_output("zstd", threads=3)[1]


def test_detect_and_open() -> None:
    payload = b"x" * 1000
    cases = {
        "gzip": gzip.compress(payload),
        "bzip2": bz2.compress(payload),
        "xz": lzma.compress(payload),
        "zstd": zstandard.ZstdCompressor().compress(payload),
    }
    for kind, blob in cases.items():
        assert detect_compression(blob[:8]) == kind
        assert open_decompressed(io.BytesIO(blob)).read() == payload
    assert detect_compression(payload) is None
    assert open_decompressed(io.BytesIO(payload)).read() == payload
    assert open_decompressed(io.BytesIO(b"ab")).read() == b"ab"


def test_media_type_compression() -> None:
    assert compression_of_media_type("application/vnd.docker.image.rootfs.diff.tar.gzip") == "gzip"
    assert compression_of_media_type(MEDIA_TYPE_ZSTD) == "zstd"
    assert compression_of_media_type(MEDIA_TYPE_TAR) == "none"
