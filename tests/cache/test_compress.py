"""Parallel gzip on export: a valid gzip any gunzip reads, the same bytes whatever the
number of threads, and about the size of a single zlib stream."""

from __future__ import annotations

import gzip
import hashlib
import os
import subprocess
import zlib

from ocibuild.layers.compress import DigestingSink, ParallelGzip


def _data() -> bytes:
    text = b"".join(b"line %d of a fairly compressible layer\n" % i for i in range(120_000))
    return text + os.urandom(700_000) + text[:1_000_000]


def _compress(comp: ParallelGzip, data: bytes) -> bytes:
    out = bytearray()
    for i in range(0, len(data), 300_000):  # writes not aligned to the 1 MiB blocks
        out += comp.compress(memoryview(data)[i : i + 300_000])
    return bytes(out + comp.flush())


def test_parallel_gzip_is_valid_deterministic_and_close_to_zlib(tmp_path: object) -> None:
    data = _data()
    one = _compress(ParallelGzip(1, 1), data)
    two = _compress(ParallelGzip(1, 2), data)
    assert one == two
    assert gzip.decompress(two) == data
    proc = subprocess.run(["gzip", "-dc"], input=two, capture_output=True, check=True)
    assert proc.stdout == data
    single = zlib.compressobj(1, zlib.DEFLATED, 31)
    reference = single.compress(data) + single.flush()
    assert len(two) < len(reference) * 1.02


def test_digesting_sink_gzip_digests_match_the_bytes() -> None:
    data = _data()
    chunks: list[bytes] = []

    class Out:
        def write(self, b: bytes) -> int:
            chunks.append(bytes(b))
            return len(b)

    sink = DigestingSink("gzip", Out(), threads=2)  # type: ignore[arg-type]
    sink.write(data)
    sink.close()
    blob = b"".join(chunks)
    assert sink.digest == "sha256:" + hashlib.sha256(blob).hexdigest()
    assert sink.diff_id == "sha256:" + hashlib.sha256(data).hexdigest()
    assert gzip.decompress(blob) == data and sink.compressed_size == len(blob)


def test_empty_input_is_a_valid_gzip() -> None:
    assert gzip.decompress(_compress(ParallelGzip(1, 2), b"")) == b""
